"""db.vectors: vector sets, the change log written by triggers, index-file records."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DIM, new_image
from db import NotFoundError


def scope(collection) -> str:
    return str(collection.id)


def test_changes_are_logged_only_while_a_set_is_tracked(index, collection):
    index.add_images(collection.id, [new_image(0)])
    assert len(index.vector_changes("images", scope(collection), 0)) == 0  # untracked: no log
    start = index.track_vectors("images", scope(collection), DIM)
    (added,) = index.add_images(collection.id, [new_image(1)])
    index.remove_images(collection.id, [added])
    changes = index.vector_changes("images", scope(collection), start)
    assert changes.item_ids.tolist() == [added, added]
    assert changes.removed.tolist() == [False, True]
    assert (np.diff(changes.seq) > 0).all()


def test_recording_a_file_drops_the_log_it_includes(index, collection):
    start = index.track_vectors("images", scope(collection), DIM)
    ids = index.add_images(collection.id, [new_image(i) for i in range(3)])
    changes = index.vector_changes("images", scope(collection), start)
    assert index.record_vector_file("images", scope(collection), "a.usearch", int(changes.seq[1]), 2) is None
    rest = index.vector_changes("images", scope(collection), 0)
    assert rest.item_ids.tolist() == [ids[2]]
    record = index.vector_index("images", scope(collection))
    assert (record.file, record.seq, record.count, record.dim) == ("a.usearch", changes.seq[1], 2, DIM)
    assert (
        index.record_vector_file("images", scope(collection), "b.usearch", int(changes.seq[2]), 3)
        == "a.usearch"
    )
    with pytest.raises(NotFoundError):
        index.record_vector_file("frames", "nope", "c.usearch", 1, 1)


def test_change_numbers_are_never_reused(index, collection):
    """AUTOINCREMENT: after the log is emptied, new changes still come after the recorded seq."""
    start = index.track_vectors("images", scope(collection), DIM)
    index.add_images(collection.id, [new_image(0)])
    last = int(index.vector_changes("images", scope(collection), start).seq[-1])
    index.record_vector_file("images", scope(collection), "a.usearch", last, 1)
    index.add_images(collection.id, [new_image(1)])
    assert int(index.vector_changes("images", scope(collection), last).seq[0]) > last


def test_deleting_a_collection_drops_its_record_log_and_file(index, collection):
    index.track_vectors("images", scope(collection), DIM)
    index.add_images(collection.id, [new_image(i) for i in range(3)])
    index.vector_dir.mkdir()
    (index.vector_dir / "a.usearch").write_bytes(b"x")
    index.record_vector_file("images", scope(collection), "a.usearch", 0, 0)
    index.delete_collection(collection.name)
    assert index.vector_index("images", scope(collection)) is None
    assert len(index.vector_changes("images", scope(collection), 0)) == 0
    assert not (index.vector_dir / "a.usearch").exists()


def test_set_vectors_in_chunks_and_by_key(index, collection):
    ids = index.add_images(collection.id, [new_image(i) for i in range(7)])
    assert index.count_vectors("images", scope(collection)) == 7
    chunks = list(index.iter_vectors("images", scope(collection), DIM, chunk=3))
    assert [len(keys) for keys, _ in chunks] == [3, 3, 1]
    keys = np.concatenate([k for k, _ in chunks])
    np.testing.assert_array_equal(keys, ids)
    all_keys, matrix = index.load_vectors("images", scope(collection), DIM)
    np.testing.assert_array_equal(np.concatenate([v for _, v in chunks]), matrix)
    found, vectors = index.vectors_by_key("images", [ids[4], 10_000, ids[1]], DIM)
    assert found.tolist() == [ids[1], ids[4]]  # in key order; missing keys left out
    np.testing.assert_array_equal(vectors, matrix[[1, 4]])


def test_frames_keep_their_id_when_recached_and_log_the_change(index):
    start = index.track_vectors("frames", "key", DIM)
    index.add_frame_embeddings("sha", "key", [0, 5], [0.0, 0.2], np.ones((2, DIM), np.float32))
    (first_ids,) = index.load_vectors("frames", "key", DIM)[:1]
    index.add_frame_embeddings("sha", "key", [5], [0.2], np.full((1, DIM), 2, np.float32))
    ids, vectors = index.load_vectors("frames", "key", DIM)
    np.testing.assert_array_equal(ids, first_ids)
    assert vectors[1, 0] == 2
    changes = index.vector_changes("frames", "key", start)
    assert changes.item_ids.tolist() == [ids[0], ids[1], ids[1]] and not changes.removed.any()
    refs = index.frame_refs([ids[1], 999, ids[0]])
    assert refs.video_sha256 == ("sha", "sha") and refs.frame_index.tolist() == [5, 0]
    assert index.clear_frame_cache("sha") == 2
    assert index.vector_changes("frames", "key", start).removed[-2:].all()


def test_library_videos(index, video):
    index.add_frame_embeddings(video.sha256, "key", [0, 5], [0.0, 0.2], np.ones((2, DIM), np.float32))
    index.mark_library_video(video.sha256, "key", sampling={"mode": "auto"}, complete=False)
    (entry,) = index.list_library_videos(["key"])
    assert entry.video.id == video.id and entry.frames == 2 and not entry.complete
    index.mark_library_video(video.sha256, "key", sampling={"mode": "auto"}, complete=True)
    assert index.library_video(video.sha256, "key").complete
    assert index.library_video(video.sha256, "other") is None
    assert index.list_library_videos(["other"]) == []
    assert index.embed_keys_with_frames(["key", "other"]) == ["key"]
