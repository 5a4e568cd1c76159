"""core.matching.frame_embedding: a video's sampled frames embedded, without matching."""

from __future__ import annotations

import numpy as np

from core.matching.frame_embedding import embed_video
from core.matching.sampling import Sampling


def test_every_recorded_frame_has_a_source_and_only_analysed_frames_are_computed(extractor, shots_video):
    got = embed_video(shots_video.path, extractor)
    assert got.frame_index.tolist() == list(range(shots_video.frame_count))
    analysed = np.unique(got.source_frame)
    assert got.computed_index.tolist() == analysed.tolist() and got.analysed == len(analysed)
    assert (got.source_frame <= got.frame_index).all()  # a frame inherits from an earlier one
    assert got.vectors.shape == (len(analysed), extractor.hidden_size)
    assert got.decisions["first"] == 1 and sum(got.decisions.values()) == shots_video.frame_count
    assert got.embed_key == extractor.embed_key() and got.info.sha256


def test_cached_frames_get_no_model_pass_and_the_sink_gets_each_batch(extractor, shots_video):
    seen = []
    got = embed_video(
        shots_video.path,
        extractor,
        sampling=Sampling.every_nth(5),
        cached={0, 5},
        batch_size=2,
        sink=lambda frames, times, vectors: seen.append((frames.tolist(), vectors.shape)),
        keep_vectors=False,
    )
    assert got.frame_index.tolist() == list(range(0, 40, 5))
    assert got.computed_index.tolist() == list(range(10, 40, 5))
    assert [f for frames, _ in seen for f in frames] == got.computed_index.tolist()
    assert all(shape[0] <= 2 for _, shape in seen)
    assert got.vectors.shape[1] == 0  # not kept
