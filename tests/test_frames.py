"""core/model/frames.py: a video's frames as batches of model input."""

from __future__ import annotations

import numpy as np

from core.model.frames import COMPUTE, frame_batches


def test_batches_hold_at_most_batch_size_frames_to_compute(shots_video, extractor):
    batches = list(frame_batches(str(shots_video.path), extractor.preprocessing, 8))
    assert [len(b) for b in batches] == [8, 8, 8, 8, 8, 0]  # the last one reports the decoded count
    assert batches[-1].decoded == shots_video.frame_count and batches[-1].pixels is None
    first = batches[0]
    assert first.pixels.shape == (8, 3, 224, 224) and first.pixels.dtype.is_floating_point
    np.testing.assert_array_equal(first.index, np.arange(8))
    np.testing.assert_array_equal(first.source, first.index)
    assert (first.tag == COMPUTE).all() and np.all(np.diff(first.time) > 0)


def test_frames_that_need_no_pass_are_recorded_without_pixels(shots_video, extractor):
    def classify(frame):
        return (COMPUTE, frame.index) if frame.index % 10 == 0 else (1, frame.index - frame.index % 10)

    batches = list(
        frame_batches(
            str(shots_video.path),
            extractor.preprocessing,
            2,
            classify=classify,
            select=lambda i, _t: i < 25,
            max_pending=7,
        )
    )
    recorded = np.concatenate([b.index for b in batches])
    np.testing.assert_array_equal(recorded, np.arange(25))  # frames 25..39 decoded but not selected
    assert all(len(b) <= 7 for b in batches)
    computed = [b.pixels.shape[0] if b.pixels is not None else 0 for b in batches]
    assert sum(computed) == 3  # frames 0, 10, 20
    sources = np.concatenate([b.source for b in batches])
    assert sources[13] == 10 and sources[20] == 20
    assert batches[-1].decoded == shots_video.frame_count


def test_extra_is_made_from_the_frames_to_compute(shots_video, extractor):
    from core.model.frames import frame_batches

    batches = list(frame_batches(str(shots_video.path), extractor.preprocessing, 4, max_frames=10, extra=len))
    assert [b.extra for b in batches if len(b)] == [4, 4, 2]
    assert batches[-1].extra is None or len(batches[-1])  # an empty last batch has no extra
