"""core.visual.match_video: the frame | best match video of a run (H.264 checked with PyAV)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD, read_video
from core.errors import InvalidArgumentError, VideoOpenError
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import load_run
from core.matching.sampling import Sampling
from core.visual.colours import image_rgb
from core.visual.drawing import letterbox
from core.visual.match_video import render_match_video


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


def test_boxes_and_outline_are_drawn_on_matched_frames(index, stored_run, tmp_path):
    """--box draws a stored region (here one written through the db API), --outline the heat map's."""
    view = stored_run
    res = view.results
    row = int(np.flatnonzero(view.matched())[0])
    image_id = int(view.best_image[row])
    box = np.array([[40, 30, 200, 150]], np.float32)  # frame pixels of the 320x240 video
    index.add_frame_regions(view.run.id, res.frame_index[row : row + 1], [image_id], [0.999], box)
    boxed = load_run(index, view.run.id)
    calls = []

    def fit_map(frame, image):
        calls.append(image)
        heat = np.zeros((8, 8), np.float32)
        heat[2:5, 2:5] = 1.0  # the top quarter: a square in the frame's upper left
        return heat, (0.0, 0.0, 1.0, 1.0)

    out = tmp_path / "marked.mp4"
    render_match_video(
        boxed, index.get_thumbnails, out, panel_height=240, max_frames=row + 1, boxes=True, outline=fit_map
    )
    _, frames = read_video(out)
    marked = frames[int(res.frame_index[row])][:, :320].astype(int)
    colour = np.array(image_rgb(image_id))
    near = np.abs(marked - colour).max(axis=-1) < 40
    assert near[30:150, 38:43].mean() > 0.5  # the box's left edge
    assert near[58:62, 80:120].mean() > 0.3  # the outline's top edge (row 2 of 8 → y = 60)
    assert calls and set(calls) == {image_id}
