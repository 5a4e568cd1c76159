"""db.videos: videos and the frame-embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from db import NotFoundError


def test_upsert_video(index, video):
    assert video.path == "/videos/clip.mp4" and video.fps == 25.0 and video.frame_count == 250
    again = index.upsert_video(
        path="/moved/clip.mp4",
        sha256=video.sha256,
        fps=25.0,
        frame_count=251,
        duration_s=10.04,
        width=1920,
        height=1080,
        rotation=90,
        size_bytes=123456,
    )
    assert again.id == video.id and again.added == video.added
    assert (again.path, again.frame_count, again.rotation) == ("/moved/clip.mp4", 251, 90)
    assert index.get_video(video.id) == again
    assert index.find_video(video.sha256) == again
    assert index.find_video("unknown") is None
    with pytest.raises(NotFoundError, match="No video with id 999"):
        index.get_video(999)


def test_frame_cache_round_trip(index, statements):
    vectors = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32) * 3
    index.add_frame_embeddings("v1", "dino|224", [30, 10, 20, 0], [1.2, 0.4, 0.8, 0.0], vectors)
    assert index.cached_frame_indices("v1", "dino|224") == {0, 10, 20, 30}
    assert index.cached_frame_indices("v1", "other") == set()
    statements.clear()
    frames, times, loaded = index.load_frame_embeddings("v1", "dino|224")
    assert len(statements) == 1
    assert frames.tolist() == [0, 10, 20, 30] and frames.dtype == np.int64
    assert times.tolist() == [0.0, 0.4, 0.8, 1.2] and times.dtype == np.float64
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, vectors[[3, 1, 2, 0]])  # raw, not normalised


def test_frame_cache_subsets_and_replace(index):
    vectors = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    vectors[:, -1] = 0  # blobs ending in zero bytes survive the round trip
    vectors[2] = 0
    index.add_frame_embeddings("v1", "k", range(5), np.arange(5) / 10, vectors)
    np.testing.assert_array_equal(index.load_frame_embeddings("v1", "k")[2], vectors)
    frames, times, loaded = index.load_frame_embeddings("v1", "k", [4, 1, 99])
    assert frames.tolist() == [1, 4]
    np.testing.assert_allclose(times, [0.1, 0.4])
    np.testing.assert_array_equal(loaded, vectors[[1, 4]])
    index.add_frame_embeddings("v1", "k", [1], [0.1], np.full((1, 4), 7.0))
    np.testing.assert_array_equal(index.load_frame_embeddings("v1", "k", [1])[2], np.full((1, 4), 7.0))
    frames, times, loaded = index.load_frame_embeddings("v1", "k", [])
    assert frames.shape == (0,) and loaded.shape == (0, 0)
    assert index.load_frame_embeddings("v2", "k")[2].shape == (0, 0)


def test_frame_cache_subset_of_many_frames(index):
    vectors = np.random.default_rng(2).normal(size=(3000, 4)).astype(np.float32)
    index.add_frame_embeddings("v1", "k", np.arange(3000), np.arange(3000) / 25, vectors)
    wanted = np.arange(0, 3000, 2)
    frames, _, loaded = index.load_frame_embeddings("v1", "k", wanted)
    assert frames.tolist() == wanted.tolist()
    np.testing.assert_array_equal(loaded, vectors[wanted])


def test_clear_frame_cache(index):
    index.add_frame_embeddings("v1", "k", [0, 1], [0, 0.1], np.ones((2, 4)))
    index.add_frame_embeddings("v2", "k", [0], [0], np.ones((1, 4)))
    assert index.clear_frame_cache("v1") == 2
    assert index.cached_frame_indices("v2", "k") == {0}
    assert index.clear_frame_cache() == 1
    assert index.stats().cached_frames == 0


def test_add_frame_embeddings_checks_lengths(index):
    with pytest.raises(ValueError, match="Expected N frame indices"):
        index.add_frame_embeddings("v1", "k", [0, 1], [0.0], np.ones((2, 4)))
