"""Rendered videos: layer evolution, colour-stable PCA video, matched video; H.264 checked with PyAV."""

from __future__ import annotations

import gc
import io
import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD, pattern_image, write_video
from core.errors import InvalidArgumentError, VideoOpenError
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import load_run
from core.matching.sampling import Sampling
from core.progress import Cancelled
from core.visual.colours import image_rgb
from core.visual.drawing import letterbox
from core.visual.layer_video import render_layers
from core.visual.match_video import render_match_video
from core.visual.pca_video import fit_video_pca, render_pca_video

P = 14  # the tiny model's patch size


def read_video(path: Path) -> tuple[dict, list[np.ndarray]]:
    """Codec facts and all frames (RGB) of a rendered file, as a browser would get them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "frames": stream.frames,
            "size": (stream.width, stream.height),
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return facts, frames


def patch_colours(frame: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean colour of the centre of every 14-px block (away from codec edges): rows×cols×3."""
    blocks = frame[: rows * P, : cols * P].reshape(rows, P, cols, P, 3)
    return blocks[:, 3:11, :, 3:11].astype(np.float64).mean(axis=(1, 3))


# -- layer evolution ------------------------------------------------------------------------------
def test_layer_video_has_one_labelled_frame_per_layer(extractor, tmp_path):
    events = []
    result = render_layers(
        extractor,
        pattern_image(0, (240, 320)),
        tmp_path / "l" / "layers.mp4",
        panel_size=112,
        gif=True,
        progress=events.append,
    )
    facts, frames = read_video(result.path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["frames"] == len(frames) == result.frames == extractor.num_layers == 3
    assert facts["size"] == (224, 112) == (result.width, result.height)  # image | map, 112 px each
    assert facts["rate"] == 2
    assert not np.allclose(frames[0][:, 112:], frames[-1][:, 112:], atol=10)  # the layers differ
    assert events[-1].done == events[-1].total == 3
    assert result.gif == tmp_path / "l" / "layers.gif"
    with Image.open(result.gif) as gif:
        assert gif.n_frames == 3 and gif.size == (224, 112) and gif.info["duration"] == 500


def test_layer_video_in_full_mode_without_the_image(extractor, tmp_path):
    result = render_layers(
        extractor,
        pattern_image(1, (360, 640)),
        tmp_path / "full.mp4",
        mode="full",
        short_side=224,
        panel_size=112,
        with_image=False,
        fps=4,
    )
    facts, _ = read_video(result.path)
    assert facts["size"] == (196, 112)  # 16×28 patches (224 × 392), aspect kept
    assert facts["rate"] == 4 and result.gif is None


def test_bad_render_arguments_fail_up_front(extractor, shots_video, tmp_path):
    img = pattern_image(0)
    with pytest.raises(InvalidArgumentError, match=r"\.mp4"):
        render_layers(extractor, img, tmp_path / "layers.avi")
    with pytest.raises(InvalidArgumentError, match="fps"):
        render_layers(extractor, img, tmp_path / "layers.mp4", fps=0)
    with pytest.raises(VideoOpenError, match="file not found"):
        render_pca_video(extractor, tmp_path / "missing.mp4", tmp_path / "out.mp4")
    with pytest.raises(InvalidArgumentError, match="max frames"):
        render_pca_video(extractor, tmp_path / "missing.mp4", tmp_path / "out.mp4", max_frames=0)
    with pytest.raises(InvalidArgumentError, match="is the source video"):
        render_pca_video(extractor, shots_video.path, shots_video.path)
    assert shots_video.path.stat().st_size > 0
    assert sorted(tmp_path.glob("*.mp4")) == [shots_video.path]


# -- PCA of a video -------------------------------------------------------------------------------
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


# -- matched video --------------------------------------------------------------------------------
@pytest.fixture
def stored_run(index, extractor, image_folder, shots_video):
    index_images(index, "shots", [image_folder.folder], extractor)
    summary = match_video(
        index,
        shots_video.path,
        "shots",
        extractor,
        sampling=Sampling.every_nth(2),
        params=MatchParams(threshold=TEST_THRESHOLD, top_k=3),
    )
    return load_run(index, summary.run_id)


def right_panel_kind(frame: np.ndarray, width: int) -> str:
    """'empty' for the dark no-match panel, 'image' for a thumbnail."""
    right = frame[:, width:].astype(int)
    dark = (np.abs(right - 24).max(axis=-1) < 12).mean()
    return "empty" if dark > 0.8 else "image"


def test_matched_video_shows_the_best_image_or_no_match(
    index, stored_run, image_folder, shots_video, tmp_path
):
    result = render_match_video(stored_run, index.get_thumbnails, tmp_path / "match.mp4", panel_height=120)
    facts, frames = read_video(result.path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["frames"] == len(frames) == result.frames == shots_video.frame_count
    assert facts["size"] == (320, 120) and facts["rate"] == 10  # two 160×120 panels (4:3), source fps
    kinds = [right_panel_kind(f, 160) for f in frames]
    for i, kind in enumerate(kinds):
        expected = "empty" if shots_video.expected_image(i) < 0 else "image"
        if i in (12, 13, 18, 19, 28, 29, 36, 37):  # near a cut: a skipped frame reuses the result before it
            continue
        assert kind == expected, (i, kind)
    # frame 5 shows image 0's thumbnail, letterboxed (4:3 into 4:3: no bars), not stretched,
    # framed in the image's own colour (the one the timeline uses)
    alpha = _image_id(index, "alpha.jpg")
    thumb = np.asarray(Image.open(io.BytesIO(index.get_thumbnails([alpha])[alpha])))
    expected = letterbox(thumb, 148, 108)
    body = frames[5][50:-6, 166:-6].astype(int)  # below the name / score label, inside the frame
    assert np.abs(body - expected[44:].astype(int)).mean() < 8
    border = frames[5][-4:, 162:-2].reshape(-1, 3).mean(axis=0)
    assert np.abs(border - np.array(image_rgb(alpha))).max() < 30
    # odd frames were skipped by the stride: they repeat the previous frame's panel
    assert np.abs(frames[3][50:, 160:].astype(int) - frames[2][50:, 160:].astype(int)).mean() < 3


def _image_id(index, name: str) -> int:
    coll = index.get_collection("shots")
    return next(rec.id for rec in index.list_images(coll.id, limit=100) if rec.name == name)


def test_matched_video_threshold_max_frames_and_a_moved_video(index, stored_run, shots_video, tmp_path):
    result = render_match_video(
        stored_run.relabel(threshold=1.0),
        index.get_thumbnails,
        tmp_path / "m.mp4",
        max_frames=9,
        panel_height=60,
    )
    facts, frames = read_video(result.path)
    assert facts["frames"] == 9 and facts["size"] == (160, 60)
    assert all(right_panel_kind(f, 80) == "empty" for f in frames)  # nothing reaches 1.0
    with pytest.raises(InvalidArgumentError, match="threshold"):
        stored_run.relabel(threshold=2.0)
    shots_video.path.rename(tmp_path / "moved.mp4")
    with pytest.raises(VideoOpenError, match="no longer there"):
        render_match_video(stored_run, index.get_thumbnails, tmp_path / "m2.mp4")
    assert not (tmp_path / "m2.mp4").exists()


def test_fps_fraction_is_kept(extractor, tmp_path):
    path = write_video(
        tmp_path / "ntsc.mp4", [pattern_image(i, (48, 64)) for i in range(6)], fps=30000 / 1001
    )
    result = render_pca_video(extractor, path, tmp_path / "pca.mp4", panel_height=32, fit_samples=2)
    facts, _ = read_video(result.path)
    assert facts["rate"] == Fraction(30000, 1001)
