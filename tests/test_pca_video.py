"""core.visual.pca_video: the colour-stable PCA video of a video (H.264 checked with PyAV)."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import pattern_image, read_video, write_video
from core.progress import Cancelled
from core.visual.pca_video import fit_video_pca, render_pca_video

P = 14  # the tiny model's patch size


def patch_colours(frame: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean colour of the centre of every 14-px block (away from codec edges): rows×cols×3."""
    blocks = frame[: rows * P, : cols * P].reshape(rows, P, cols, P, 3)
    return blocks[:, 3:11, :, 3:11].astype(np.float64).mean(axis=(1, 3))


@pytest.fixture
def moving_video(tmp_path) -> Path:
    """84×112 frames (6×8 patches at short side 84: no resize) panning over a picture one patch a frame."""
    strip = pattern_image(3, (6 * P, 14 * P))
    frames = [np.ascontiguousarray(strip[:, k * P : k * P + 8 * P]) for k in range(6)]
    return write_video(tmp_path / "moving.mp4", frames, fps=10)


def test_pca_video_codec_size_frames_and_fps(extractor, shots_video, tmp_path):
    result = render_pca_video(
        extractor, shots_video.path, tmp_path / "pca.mp4", panel_height=112, fit_samples=8
    )
    facts, frames = read_video(result.path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["frames"] == len(frames) == result.frames == 40
    assert facts["size"] == (112, 112) and facts["rate"] == 10  # crop mode: square; source fps

    side = render_pca_video(
        extractor,
        shots_video.path,
        tmp_path / "side.mp4",
        side_by_side=True,
        max_frames=12,
        fps=25,
        panel_height=112,
        fit_samples=4,
    )
    facts, frames = read_video(side.path)
    assert facts["frames"] == 12 and facts["size"] == (224, 112) and facts["rate"] == 25
    assert (side.frames, side.width, side.height, side.fps) == (12, 224, 112, 25)
    # the left half is the model's view of the frame (image 0 of the shot list), the right the map
    assert frames[0][:, :112].std() > 20


def test_same_content_keeps_its_colour_as_it_moves(extractor, moving_video, tmp_path):
    result = render_pca_video(
        extractor,
        moving_video,
        tmp_path / "pca.mp4",
        mode="full",
        short_side=6 * P,
        panel_height=6 * P,
    )
    _, frames = read_video(result.path)
    assert len(frames) == 6 and frames[0].shape == (84, 112, 3)
    grids = [patch_colours(f, 6, 8) for f in frames]
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        # the content of column c + k in frame 0 is in column c of frame k (rows 0-1 hold the label)
        before, after = grids[0][2:, k:], grids[k][2:, : 8 - k]
        same = np.abs(before - after).mean()
        shuffled = rng.permutation(after.reshape(-1, 3))
        other = np.abs(before.reshape(-1, 3) - shuffled).mean()
        assert same < 6 and same < 0.2 * other, (k, same, other)


def test_reappearing_content_gets_the_same_colours(extractor, tmp_path):
    a, b = pattern_image(1, (96, 128)), 255 - pattern_image(2, (96, 128))
    path = write_video(tmp_path / "aba.mp4", [a] * 4 + [b] * 4 + [a] * 4, fps=8)
    result = render_pca_video(extractor, path, tmp_path / "pca.mp4", panel_height=112, fit_samples=6)
    _, frames = read_video(result.path)
    body = [f[40:].astype(int) for f in frames]  # below the frame label
    assert np.abs(body[1] - body[10]).mean() < 3  # a, then a again after b
    assert np.abs(body[1] - body[5]).mean() > 20  # b looks different


def test_colours_are_fitted_on_frames_across_the_whole_video(extractor, shots_video):
    fitted = fit_video_pca(extractor, shots_video.path, fit_samples=5)
    assert fitted.frame_indices == (0, 10, 20, 29, 39)
    assert fitted.samples == 5 * 256 and fitted.grid == (16, 16)
    few = fit_video_pca(extractor, shots_video.path, fit_samples=100, max_frames=10, max_patches=500)
    assert few.frame_indices == tuple(range(10)) and few.samples == 10 * 50


def test_long_video_renders_with_bounded_memory(extractor, tmp_path):
    """Peak traced memory (numpy buffers, decoded frames) must not grow with the video's length."""
    base = pattern_image(0, (48, 64))

    def frames(n):
        for i in range(n):
            yield np.roll(base, i % 64, axis=1)

    short = write_video(tmp_path / "short.mp4", frames(80), fps=25)
    long = write_video(tmp_path / "long.mp4", frames(320), fps=25)
    options = dict(
        side_by_side=True, panel_height=48, fit_samples=8, batch_size=8, mode="full", short_side=48
    )
    render_pca_video(extractor, short, tmp_path / "warmup.mp4", max_frames=8, **options)

    def peak(path: Path) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            result = render_pca_video(extractor, path, tmp_path / f"{path.stem}_pca.mp4", **options)
            return result.frames, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    n_short, peak_short = peak(short)
    n_long, peak_long = peak(long)
    assert (n_short, n_long) == (80, 320)
    # keeping the 240 extra decoded frames alone would add 240 × 9 KB = 2.2 MB
    assert peak_long < 1.5 * peak_short + 512 * 1024, (peak_short, peak_long)


def test_pca_render_can_be_cancelled(extractor, shots_video, tmp_path):
    cancel = threading.Event()

    def progress(event):
        if event.done >= 8:
            cancel.set()

    with pytest.raises(Cancelled):
        render_pca_video(
            extractor,
            shots_video.path,
            tmp_path / "pca.mp4",
            panel_height=64,
            fit_samples=4,
            batch_size=4,
            progress=progress,
            cancel=cancel,
        )


def test_fps_fraction_is_kept(extractor, tmp_path):
    path = write_video(
        tmp_path / "ntsc.mp4", [pattern_image(i, (48, 64)) for i in range(6)], fps=30000 / 1001
    )
    result = render_pca_video(extractor, path, tmp_path / "pca.mp4", panel_height=32, fit_samples=2)
    facts, _ = read_video(result.path)
    assert facts["rate"] == Fraction(30000, 1001)


def test_progress_counts_each_stage_against_its_own_total(extractor, shots_video, tmp_path):
    """The progress of a 40-frame video used to read "44 frames" (fit samples + frames) (issue 10)."""
    events = []
    render_pca_video(
        extractor,
        shots_video.path,
        tmp_path / "pca.mp4",
        panel_height=32,
        fit_samples=4,
        progress=events.append,
    )
    by_stage = {}
    for event in events:
        by_stage.setdefault(event.stage, []).append(event)
    assert list(by_stage) == ["fitting colours", "rendering"]
    assert {e.total for e in by_stage["fitting colours"]} == {4}
    assert {e.total for e in by_stage["rendering"]} == {shots_video.frame_count}
    assert by_stage["rendering"][-1].done == shots_video.frame_count
