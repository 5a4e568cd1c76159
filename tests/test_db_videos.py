"""db.videos: videos and the frame-embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import add_video
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


def _another_video(index, path="/videos/a.mp4", sha="a" * 64):
    return add_video(index, path, sha, duration_s=4.0)


def test_searchable_videos_are_every_video_with_cached_frames(index, video):
    """What ``find`` searches: frames cached by index-videos and by match runs alike."""
    other = _another_video(index)
    index.add_frame_embeddings(video.sha256, "k1", [0, 5], [0, 0.2], np.ones((2, 4)))  # a match run's
    index.mark_library_video(other.sha256, "k1", sampling={"mode": "auto"}, complete=False)
    index.add_frame_embeddings(other.sha256, "k1", [0, 1, 2], [0, 0.04, 0.08], np.ones((3, 4)))
    index.mark_library_video(other.sha256, "k1", sampling={"mode": "auto"}, complete=True)
    index.add_frame_embeddings(other.sha256, "k2", [0], [0], np.ones((1, 4)))
    _another_video(index, "/videos/never-analysed.mp4", "n" * 64)
    rows = index.searchable_videos()
    assert [(r.video.path, r.embed_key, r.frames, r.indexed, r.complete) for r in rows] == [
        ("/videos/a.mp4", "k1", 3, True, True),
        ("/videos/a.mp4", "k2", 1, False, False),
        ("/videos/clip.mp4", "k1", 2, False, False),
    ]
    assert [(r.video.path, r.embed_key) for r in index.searchable_videos(["k2"])] == [("/videos/a.mp4", "k2")]


def test_forget_videos_drops_their_frames_and_library_entries_and_keeps_their_runs(index, video, collection):
    other = _another_video(index)
    for v in (video, other):
        index.add_frame_embeddings(v.sha256, "k", [0, 1], [0, 0.04], np.ones((2, 4)))
        index.mark_library_video(v.sha256, "k", sampling={}, complete=True)
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id="m", params={})
    assert index.forget_videos([video.sha256, other.sha256]) == 4
    assert index.searchable_videos() == [] and index.list_library_videos() == []
    assert index.get_run(run_id).video_id == video.id  # a run's video stays, with the run
    assert index.find_video(video.sha256) is not None
    assert index.find_video(other.sha256) is None  # nothing refers to it any more
    assert index.forget_videos(["unknown"]) == 0


def test_a_cleared_frame_cache_is_no_longer_counted_as_indexed(index, video):
    """index-videos skips a video its library entry calls complete: an entry whose frames were
    cleared would never be indexed again, and find would never see it."""
    index.add_frame_embeddings(video.sha256, "k", [0, 1], [0, 0.04], np.ones((2, 4)))
    index.mark_library_video(video.sha256, "k", sampling={}, complete=True)
    index.clear_frame_cache(video.sha256)
    assert index.library_video(video.sha256, "k") is None
    index.add_frame_embeddings(video.sha256, "k", [0], [0], np.ones((1, 4)))
    index.mark_library_video(video.sha256, "k", sampling={}, complete=True)
    index.clear_frame_cache()
    assert index.list_library_videos() == []


def test_add_frame_embeddings_checks_lengths(index):
    with pytest.raises(ValueError, match="Expected N frame indices"):
        index.add_frame_embeddings("v1", "k", [0, 1], [0.0], np.ones((2, 4)))


def test_frame_counts_follow_every_change_of_the_cache(index, video, statements):
    """The library lists videos from a per-video count kept by the database itself, so neither the
    list nor the total walks every cached frame (200,000 for 100 hours)."""
    other = _another_video(index)
    index.add_frame_embeddings(video.sha256, "k", [0, 1, 2], [0, 0.04, 0.08], np.ones((3, 4)))
    index.add_frame_embeddings(video.sha256, "k", [2, 3], [0.08, 0.12], np.ones((2, 4)))  # 2 is replaced
    index.add_frame_embeddings(video.sha256, "k2", [0], [0], np.ones((1, 4)))
    index.add_frame_embeddings(other.sha256, "k", [0, 1], [0, 0.04], np.ones((2, 4)))

    def listed():
        return {(r.video.path, r.embed_key): r.frames for r in index.searchable_videos()}

    assert listed() == {
        ("/videos/clip.mp4", "k"): 4,
        ("/videos/clip.mp4", "k2"): 1,
        ("/videos/a.mp4", "k"): 2,
    }
    assert index.stats().cached_frames == 7
    statements.clear()
    index.searchable_videos()
    index.stats()
    assert not [s for s in statements if "frame_embeddings" in s], statements
    index.clear_frame_cache(other.sha256)
    assert listed() == {("/videos/clip.mp4", "k"): 4, ("/videos/clip.mp4", "k2"): 1}
    index.forget_videos([video.sha256])
    assert listed() == {} and index.stats().cached_frames == 0


def test_one_library_entry_is_read_without_reading_the_others(index):
    """``index-videos`` asks for each video's entry: reading every entry for each one made a
    folder of 5,000 indexed videos take 290 s to find that nothing was left to do. The work of
    one lookup (SQLite's virtual machine steps) must not grow with the library."""
    from conftest import add_video

    def lookup_steps(sha: str) -> int:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        index.db.conn.set_progress_handler(count, 10)
        try:
            entry = index.library_video(sha, "k")
        finally:
            index.db.conn.set_progress_handler(None, 0)
        assert entry is not None and entry.video.sha256 == sha and entry.complete
        return steps[0]

    def add(start: int, count: int) -> None:
        for i in range(start, start + count):
            sha = f"{i:064x}"
            add_video(index, path=f"/videos/{i:04d}.mp4", sha256=sha)
            index.mark_library_video(sha, "k", sampling={"mode": "auto"}, complete=True)

    add(0, 5)
    few = lookup_steps(f"{3:064x}")
    add(5, 995)
    many = lookup_steps(f"{3:064x}")
    assert many <= 2 * few + 5, (few, many)
    assert index.library_video(f"{3:064x}", "other key") is None
