"""The index database: collections, images, embeddings, videos, the frame cache and runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from db import (
    DEFAULT_BUSY_TIMEOUT_MS,
    CollectionExistsError,
    DatabaseError,
    Index,
    ModelMismatchError,
    NewImage,
    NotFoundError,
    Segment,
)
from db.records import ImageRecord

DIM = 8
MODEL = "facebook/webssl-dino300m-full2b-224"
PREPROCESSING = json.dumps({"size": 224, "mean": [0.485, 0.456, 0.406]})
REPO = Path(__file__).resolve().parents[1]


def vector(seed: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def new_image(i: int, *, path: str | None = None, sha256: str | None = None, dim: int = DIM) -> NewImage:
    return NewImage(
        path=path or f"/photos/img_{i:04d}.jpg",
        sha256=sha256 or f"{i:064x}",
        width=640 + i,
        height=480,
        thumbnail=b"\xff\xd8jpeg-%d" % i,
        embedding=vector(i, dim),
    )


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def count_rows(index: Index, table: str) -> int:
    return index.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def collection(index):
    return index.create_collection("posters", MODEL, PREPROCESSING, DIM)


@pytest.fixture
def video(index):
    return index.upsert_video(
        path="/videos/clip.mp4",
        sha256="v" * 64,
        fps=25.0,
        frame_count=250,
        duration_s=10.0,
        width=1920,
        height=1080,
        rotation=0,
        size_bytes=123456,
    )


@pytest.fixture
def statements(index):
    """The SQL statements the index runs while the test runs."""
    seen: list[str] = []
    index.db.conn.set_trace_callback(seen.append)
    yield seen
    index.db.conn.set_trace_callback(None)


# -- opening ------------------------------------------------------------------------------


def test_pragmas(index):
    pragma = lambda name: index.db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == DEFAULT_BUSY_TIMEOUT_MS


def test_busy_timeout_and_parent_folders(tmp_path):
    path = tmp_path / "new" / "folder" / "index.sqlite"
    with Index(path, busy_timeout_ms=1234) as index:
        assert index.path == str(path)
        assert index.db.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert path.exists()


def test_in_memory():
    with Index(":memory:") as index:
        index.create_collection("c", MODEL, "{}", DIM)
        assert [c.name for c in index.list_collections()] == ["c"]


def test_embeddings_are_plain_little_endian_float32(index, collection):
    (image_id,) = index.add_images(collection.id, [new_image(1)])
    dim, dtype, blob = index.db.execute(
        "SELECT dim, dtype, vector FROM image_embeddings WHERE image_id = ?", [image_id]
    ).fetchone()
    assert (dim, dtype, len(blob)) == (DIM, "float32", DIM * 4)
    np.testing.assert_allclose(np.frombuffer(blob, dtype="<f4"), unit(vector(1)), rtol=1e-6)


# -- collections --------------------------------------------------------------------------


def test_create_get_list_collections(index):
    b = index.create_collection("b", MODEL, PREPROCESSING, DIM)
    a = index.create_collection("  a  ", "other/model", "{}", 16)
    assert a.name == "a"
    assert (b.model_id, b.preprocessing, b.embed_dim, b.image_count, b.failure_count) == (
        MODEL,
        PREPROCESSING,
        DIM,
        0,
        0,
    )
    assert b.created.endswith("+00:00")
    assert index.get_collection("b") == b
    assert index.get_collection_by_id(a.id) == a
    assert [c.name for c in index.list_collections()] == ["a", "b"]


def test_list_collections_counts(index, collection):
    index.add_images(collection.id, [new_image(i) for i in range(3)])
    index.add_failures(collection.id, [("/photos/broken.jpg", "truncated file")])
    (listed,) = index.list_collections()
    assert (listed.image_count, listed.failure_count) == (3, 1)


def test_create_collection_errors(index, collection):
    with pytest.raises(CollectionExistsError, match="'posters' already exists"):
        index.create_collection("posters", MODEL, PREPROCESSING, DIM)
    with pytest.raises(ValueError, match="must not be empty"):
        index.create_collection("   ", MODEL, PREPROCESSING, DIM)
    with pytest.raises(ValueError, match="JSON"):
        index.create_collection("x", MODEL, "not json", DIM)
    with pytest.raises(ValueError, match="embed_dim"):
        index.create_collection("x", MODEL, "{}", 0)


def test_get_collection_not_found_lists_existing(index):
    with pytest.raises(NotFoundError, match="No collection named 'x'. There are no collections yet"):
        index.get_collection("x")
    index.create_collection("b", MODEL, "{}", DIM)
    index.create_collection("a", MODEL, "{}", DIM)
    with pytest.raises(NotFoundError) as excinfo:
        index.get_collection("x")
    assert str(excinfo.value) == "No collection named 'x'. Existing: a, b"
    with pytest.raises(NotFoundError, match="No collection with id 999"):
        index.get_collection_by_id(999)


def test_get_or_create_collection(index):
    created = index.get_or_create_collection("c", MODEL, PREPROCESSING, DIM)
    # Same settings, JSON written differently: the same collection.
    again = index.get_or_create_collection("c", MODEL, json.dumps(json.loads(PREPROCESSING), indent=2), DIM)
    assert again == created
    assert len(index.list_collections()) == 1


def test_get_or_create_collection_model_mismatch(index, collection):
    with pytest.raises(ModelMismatchError) as excinfo:
        index.get_or_create_collection("posters", "facebook/webssl-dino1b", PREPROCESSING, DIM)
    message = str(excinfo.value)
    assert "'posters'" in message
    assert MODEL in message and "facebook/webssl-dino1b" in message
    assert "is bound to model" in message
    assert "use a collection built with 'facebook/webssl-dino1b'" in message


@pytest.mark.parametrize(
    ("preprocessing", "embed_dim", "expected"),
    [
        (json.dumps({"size": 448}), DIM, "preprocessing"),
        (PREPROCESSING, 2 * DIM, f"embedding size {DIM}, not {2 * DIM}"),
    ],
    ids=["preprocessing", "embed_dim"],
)
def test_get_or_create_collection_settings_mismatch(index, collection, preprocessing, embed_dim, expected):
    with pytest.raises(ModelMismatchError, match=expected):
        index.get_or_create_collection("posters", MODEL, preprocessing, embed_dim)


def test_rename_collection(index, collection):
    index.add_images(collection.id, [new_image(1)])
    renamed = index.rename_collection("posters", "movie posters")
    assert (renamed.id, renamed.name, renamed.image_count) == (collection.id, "movie posters", 1)
    with pytest.raises(NotFoundError):
        index.get_collection("posters")
    index.create_collection("other", MODEL, "{}", DIM)
    with pytest.raises(CollectionExistsError, match="'other' already exists"):
        index.rename_collection("movie posters", "other")
    with pytest.raises(NotFoundError, match="No collection named 'posters'"):
        index.rename_collection("posters", "x")
    with pytest.raises(ValueError):
        index.rename_collection("other", "")


def test_delete_collection_cascades(index, collection, video):
    other = index.create_collection("other", MODEL, PREPROCESSING, DIM)
    ids = index.add_images(collection.id, [new_image(i) for i in range(3)])
    other_ids = index.add_images(other.id, [new_image(i) for i in range(10, 12)])
    index.add_failures(collection.id, [("/photos/bad.jpg", "unreadable")])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_results(run_id, [0], [0.0], [0], np.array([ids[:2]]), np.array([[0.9, 0.8]]))
    index.replace_segments(run_id, [_segment(ids[0], 0, 0)])
    other_run = index.create_run(video_id=video.id, collection_id=other.id, model_id=MODEL, params={})
    index.add_frame_results(other_run, [0], [0.0], [0], np.array([other_ids[:1]]), np.array([[0.5]]))

    index.delete_collection("posters")

    with pytest.raises(NotFoundError):
        index.get_collection("posters")
    with pytest.raises(NotFoundError):
        index.get_run(run_id)
    assert count_rows(index, "images") == 2
    assert count_rows(index, "image_embeddings") == 2
    assert count_rows(index, "thumbnails") == 2
    assert count_rows(index, "index_failures") == 0
    assert count_rows(index, "segments") == 0
    assert [r.id for r in index.list_runs()] == [other_run]
    assert len(index.load_frame_results(other_run)) == 1
    assert count_rows(index, "frame_matches") == 1
    assert index.get_video(video.id) == video
    with pytest.raises(NotFoundError):
        index.delete_collection("posters")


# -- images -------------------------------------------------------------------------------


def test_add_images(index, collection):
    ids = index.add_images(collection.id, [new_image(1), new_image(2)])
    assert len(set(ids)) == 2
    image = index.get_image(ids[0])
    assert image == ImageRecord(
        ids[0], collection.id, "/photos/img_0001.jpg", f"{1:064x}", 641, 480, image.added
    )
    assert image.name == "img_0001.jpg"
    assert index.known_hashes(collection.id) == {f"{1:064x}": ids[0], f"{2:064x}": ids[1]}
    assert index.known_paths(collection.id) == {
        "/photos/img_0001.jpg": f"{1:064x}",
        "/photos/img_0002.jpg": f"{2:064x}",
    }
    assert index.add_images(collection.id, []) == []


def test_duplicate_content_stored_once(index, collection):
    (first,) = index.add_images(collection.id, [new_image(1)])
    copy = new_image(1, path="/elsewhere/copy.jpg")
    ids = index.add_images(collection.id, [copy, new_image(2), new_image(2, path="/again.jpg")])
    assert ids[0] == first
    assert ids[1] == ids[2]
    assert index.count_images(collection.id) == 2
    assert index.get_image(first).path == "/photos/img_0001.jpg"
    # The same content may be in another collection.
    other = index.create_collection("other", MODEL, PREPROCESSING, DIM)
    assert index.add_images(other.id, [new_image(1)]) != [first]


def test_image_name_with_windows_separators():
    record = ImageRecord(1, 1, "C:\\photos\\Cat.JPG", "s", 1, 1, "")
    assert record.name == "Cat.JPG"


def test_add_images_unknown_collection(index):
    with pytest.raises(NotFoundError, match="No collection with id 42"):
        index.add_images(42, [new_image(1)])


def test_add_images_wrong_dim_stores_nothing(index, collection):
    index.add_images(collection.id, [new_image(1)])
    batch = [new_image(2), new_image(3, dim=DIM + 1), new_image(4)]
    with pytest.raises(ValueError, match=f"img_0003.jpg: the embedding has {DIM + 1} values.*stores {DIM}"):
        index.add_images(collection.id, batch)
    assert index.count_images(collection.id) == 1
    assert count_rows(index, "image_embeddings") == 1


def test_add_images_rejects_nan(index, collection):
    bad = NewImage("/x.jpg", "s", 1, 1, b"", np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        index.add_images(collection.id, [bad])


def test_batch_failing_midway_is_rolled_back(index, collection):
    first = index.add_images(collection.id, [new_image(1), new_image(2)])
    index.add_failures(collection.id, [("/photos/img_0003.jpg", "was broken")])
    # The third item violates NOT NULL after two items of the batch were inserted.
    batch = [new_image(3), new_image(4), NewImage(None, "abc", 1, 1, b"", vector(5)), new_image(6)]  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        index.add_images(collection.id, batch)
    assert index.known_hashes(collection.id) == {f"{1:064x}": first[0], f"{2:064x}": first[1]}
    assert count_rows(index, "image_embeddings") == 2
    assert count_rows(index, "thumbnails") == 2
    assert [f.path for f in index.list_failures(collection.id)] == ["/photos/img_0003.jpg"]
    assert not index.db.conn.in_transaction
    # The index is usable afterwards.
    index.add_images(collection.id, [new_image(3)])
    assert index.count_images(collection.id) == 3


def test_failures_upserted_and_cleared_on_success(index, collection):
    index.add_failures(collection.id, [("/photos/img_0001.jpg", "truncated"), ("/photos/z.png", "bad")])
    index.add_failures(collection.id, [("/photos/img_0001.jpg", "still truncated")])
    failures = index.list_failures(collection.id)
    assert [(f.path, f.reason) for f in failures] == [
        ("/photos/img_0001.jpg", "still truncated"),
        ("/photos/z.png", "bad"),
    ]
    assert failures[0].collection_id == collection.id
    index.add_images(collection.id, [new_image(1)])
    assert [f.path for f in index.list_failures(collection.id)] == ["/photos/z.png"]
    assert index.get_collection("posters").failure_count == 1


def test_list_images_pagination_and_filter(index, collection):
    names = ["Beach.jpg", "beach_2.JPG", "city.png", "Mountain.jpg", "snow_beach.webp"]
    index.add_images(
        collection.id,
        [new_image(i, path=f"/photos/beach trip/{name}") for i, name in enumerate(names)],
    )
    page1 = index.list_images(collection.id, limit=2)
    page2 = index.list_images(collection.id, offset=2, limit=2)
    page3 = index.list_images(collection.id, offset=4, limit=2)
    assert [r.name for r in page1 + page2 + page3] == sorted(names)
    assert index.count_images(collection.id) == 5
    # Case-insensitive, on the file name only (every folder here contains "beach").
    matching = index.list_images(collection.id, name_filter="BEACH")
    assert [r.name for r in matching] == ["Beach.jpg", "beach_2.JPG", "snow_beach.webp"]
    assert index.count_images(collection.id, name_filter="BEACH") == 3
    assert index.count_images(collection.id, name_filter="trip") == 0
    assert [r.name for r in index.list_images(collection.id, name_filter="_", limit=1, offset=1)] == [
        "snow_beach.webp"
    ]
    assert index.count_images(collection.id, name_filter="  ") == 5
    with pytest.raises(ValueError):
        index.list_images(collection.id, offset=-1)


def test_get_images_in_one_query(index, collection, statements):
    ids = index.add_images(collection.id, [new_image(i) for i in range(5)])
    statements.clear()
    records = index.get_images([ids[3], ids[1], 999])
    assert sorted(records) == sorted([ids[3], ids[1]])
    assert records[ids[3]].path == "/photos/img_0003.jpg"
    assert len(statements) == 1
    with pytest.raises(NotFoundError, match="No image with id 999"):
        index.get_image(999)


def test_thumbnails(index, collection, statements):
    ids = index.add_images(collection.id, [new_image(1), new_image(2)])
    statements.clear()
    assert index.get_thumbnails(np.array(ids)) == {ids[0]: b"\xff\xd8jpeg-1", ids[1]: b"\xff\xd8jpeg-2"}
    assert len(statements) == 1
    assert index.get_thumbnails([999]) == {}


def test_remove_images(index, collection):
    ids = index.add_images(collection.id, [new_image(i) for i in range(4)])
    assert index.remove_images(collection.id, ids[:2]) == 2
    assert index.remove_images(collection.id, ids[:2]) == 0
    assert sorted(index.known_hashes(collection.id).values()) == ids[2:]
    assert count_rows(index, "image_embeddings") == 2
    assert count_rows(index, "thumbnails") == 2


def test_prune_missing(index, collection, tmp_path):
    present = tmp_path / "present.jpg"
    present.write_bytes(b"x")
    index.add_images(
        collection.id,
        [new_image(1, path=str(present)), new_image(2, path=str(tmp_path / "gone.jpg"))],
    )
    assert index.prune_missing(collection.id) == [str(tmp_path / "gone.jpg")]
    assert list(index.known_paths(collection.id)) == [str(present)]
    assert index.prune_missing(collection.id, exists=lambda path: False) == [str(present)]
    assert index.count_images(collection.id) == 0


# -- embeddings ---------------------------------------------------------------------------


def test_load_embeddings(index, collection):
    ids = index.add_images(collection.id, [new_image(i) for i in range(5)])
    ids += index.add_images(collection.id, [new_image(i) for i in range(5, 7)])
    matrix = index.load_embeddings(collection.id)
    assert len(matrix) == 7 and matrix.dim == DIM and matrix.model_id == MODEL
    assert matrix.image_ids.dtype == np.int64 and matrix.vectors.dtype == np.float32
    assert matrix.image_ids.tolist() == ids
    expected = np.stack([unit(vector(i)) for i in range(7)])
    np.testing.assert_allclose(matrix.vectors, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix.vectors, axis=1), 1.0, rtol=1e-6)
    matrix.vectors[0] = 0  # a writable copy: the caller may modify it


def test_load_embeddings_empty_collection(index, collection):
    matrix = index.load_embeddings(collection.id)
    assert matrix.vectors.shape == (0, DIM) and matrix.image_ids.shape == (0,)


def test_load_embeddings_is_one_query(index, collection, statements):
    index.add_images(collection.id, [new_image(i) for i in range(20)])
    statements.clear()
    index.load_embeddings(collection.id)
    assert len([s for s in statements if "image_embeddings" in s]) == 1


def test_load_embeddings_is_fast(index):
    n, dim = 5_000, 1024
    collection = index.create_collection("big", MODEL, "{}", dim)
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    items = [NewImage(f"/p/{i}.jpg", str(i), 1, 1, b"", vectors[i]) for i in range(n)]
    index.add_images(collection.id, items)
    start = time.perf_counter()
    matrix = index.load_embeddings(collection.id)
    elapsed = time.perf_counter() - start
    assert matrix.vectors.shape == (n, dim)
    np.testing.assert_allclose(matrix.vectors[123], unit(vectors[123]), rtol=1e-5)
    assert elapsed < 0.5  # typically ~15 ms; 100k x 1024 takes ~0.5 s


def test_get_embeddings_in_given_order(index, collection):
    ids = index.add_images(collection.id, [new_image(i) for i in range(4)])
    vectors = index.get_embeddings([ids[2], ids[0], ids[2]])
    np.testing.assert_allclose(
        vectors, np.stack([unit(vector(2)), unit(vector(0)), unit(vector(2))]), rtol=1e-6
    )
    assert vectors.dtype == np.float32
    with pytest.raises(NotFoundError, match=r"\[999\]"):
        index.get_embeddings([ids[0], 999])


# -- crash safety and threads -------------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from db import Index, NewImage

    index = Index(sys.argv[1])
    collection = index.create_collection("c", "m", "{}", 8)

    def batch(start):
        return [NewImage(f"/p/{i}.jpg", f"sha{i}", 1, 1, b"jpeg", np.ones(8)) for i in range(start, start + 5)]

    index.add_images(collection.id, batch(0))
    inserted = 0

    def die_on_third_insert(sql):
        global inserted
        if sql.startswith("INSERT INTO images"):
            inserted += 1
            if inserted == 3:
                os._exit(9)

    index.db.conn.set_trace_callback(die_on_third_insert)
    index.add_images(collection.id, batch(5))
    """
)


def test_killed_process_loses_only_the_batch_in_flight(tmp_path):
    path = tmp_path / "index.sqlite"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 9, result.stderr
    assert Path(f"{path}-wal").exists()  # left behind by the killed process
    with Index(path) as index:
        assert index.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        collection = index.get_collection("c")
        assert sorted(index.known_paths(collection.id)) == [f"/p/{i}.jpg" for i in range(5)]
        assert len(index.load_embeddings(collection.id)) == 5
        index.add_images(collection.id, [new_image(1)])
        assert index.count_images(collection.id) == 6


def test_index_shared_between_threads(index, collection):
    def work(worker: int) -> None:
        for batch in range(5):
            start = worker * 100 + batch * 10
            index.add_images(collection.id, [new_image(i) for i in range(start, start + 10)])
            index.load_embeddings(collection.id)
            index.list_collections()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert index.count_images(collection.id) == 200
    assert len(index.load_embeddings(collection.id)) == 200


def test_one_index_per_thread(tmp_path):
    path = tmp_path / "index.sqlite"
    with Index(path) as index:
        collection_id = index.create_collection("c", MODEL, "{}", DIM).id
    errors = []

    def work(worker: int) -> None:
        try:
            with Index(path) as own:
                for batch in range(5):
                    start = worker * 100 + batch * 10
                    own.add_images(collection_id, [new_image(i) for i in range(start, start + 10)])
                    own.load_embeddings(collection_id)
        except Exception as err:  # reported below, from the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Index(path) as index:
        assert index.count_images(collection_id) == 150


def test_transaction_groups_calls(index, collection, video):
    with pytest.raises(RuntimeError):
        with index.transaction():
            index.add_images(collection.id, [new_image(1)])
            index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
            raise RuntimeError("stop")
    assert index.count_images(collection.id) == 0
    assert index.list_runs() == []


# -- videos -------------------------------------------------------------------------------


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


# -- runs ---------------------------------------------------------------------------------


def _segment(image_id: int, start: int, end: int, peak: float = 0.9) -> Segment:
    return Segment(image_id, start, end, start / 25, end / 25, peak, peak - 0.1, end - start + 1)


def test_run_round_trip(index, collection, video):
    params = {"top_k": 3, "threshold": np.float32(0.5), "stride": np.int64(2)}
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params=params)
    run = index.get_run(run_id)
    assert (run.status, run.finished, run.stats) == ("running", None, {})
    assert run.params == {"top_k": 3, "threshold": 0.5, "stride": 2}
    assert (run.collection_name, run.video_path, run.model_id) == ("posters", "/videos/clip.mp4", MODEL)
    index.finish_run(run_id, stats={"frames": 10, "seconds": 1.5})
    run = index.get_run(run_id)
    assert run.status == "done" and run.finished is not None
    assert run.stats == {"frames": 10, "seconds": 1.5}
    index.finish_run(run_id, status="failed")
    assert index.get_run(run_id).stats == {"frames": 10, "seconds": 1.5}
    with pytest.raises(ValueError, match="status"):
        index.finish_run(run_id, status="paused")
    with pytest.raises(NotFoundError, match="No run with id 999"):
        index.get_run(999)
    with pytest.raises(NotFoundError):
        index.finish_run(999)


def test_run_without_collection(index, video):
    run_id = index.create_run(video_id=video.id, collection_id=None, model_id=MODEL, params={})
    run = index.get_run(run_id)
    assert run.collection_id is None and run.collection_name is None


def test_create_run_unknown_video(index, collection):
    with pytest.raises(NotFoundError, match="No video with id 5"):
        index.create_run(video_id=5, collection_id=collection.id, model_id=MODEL, params={})


def test_frame_results_round_trip(index, collection, video, statements):
    a, b, c = index.add_images(collection.id, [new_image(i) for i in range(3)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    # Frame 2 has fewer than k matches, frame 4 none; frame 3 inherits frame 2's result.
    index.add_frame_results(
        run_id,
        [0, 2, 3],
        [0.0, 0.08, 0.12],
        [0, 2, 2],
        np.array([[a, b, c], [c, -1, -1], [c, -1, -1]]),
        np.array([[0.9, 0.8, 0.7], [0.6, np.nan, np.nan], [0.6, np.nan, np.nan]], dtype=np.float32),
    )
    index.add_frame_results(run_id, [4], [0.16], [4], np.full((1, 3), -1), np.full((1, 3), np.nan))
    statements.clear()
    results = index.load_frame_results(run_id)
    assert len([s for s in statements if "frame_matches" in s]) == 1
    assert len(results) == 4 and results.k == 3
    assert results.frame_index.tolist() == [0, 2, 3, 4]
    np.testing.assert_allclose(results.time_s, [0.0, 0.08, 0.12, 0.16])
    assert results.source_frame.tolist() == [0, 2, 2, 4]
    assert results.image_ids.tolist() == [[a, b, c], [c, -1, -1], [c, -1, -1], [-1, -1, -1]]
    assert results.image_ids.dtype == np.int64 and results.scores.dtype == np.float32
    np.testing.assert_allclose(
        results.scores,
        [[0.9, 0.8, 0.7], [0.6, np.nan, np.nan], [0.6, np.nan, np.nan], [np.nan] * 3],
        rtol=1e-6,
    )


def test_frame_results_replaced_and_compacted(index, collection, video):
    a, b, c = index.add_images(collection.id, [new_image(i) for i in range(3)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_results(run_id, [0, 1], [0, 0.04], [0, 1], np.array([[a, b], [b, c]]), np.ones((2, 2)))
    index.add_frame_results(run_id, [1], [0.04], [1], np.array([[c, -1]]), np.array([[0.5, np.nan]]))
    assert index.load_frame_results(run_id).image_ids.tolist() == [[a, b], [c, -1]]
    # Removing an image drops its matches; the ones behind it move up.
    index.remove_images(collection.id, [a])
    assert index.load_frame_results(run_id).image_ids.tolist() == [[b], [c]]


def test_frame_results_empty_run(index, collection, video):
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    results = index.load_frame_results(run_id)
    assert len(results) == 0 and results.image_ids.shape == (0, 0)
    with pytest.raises(ValueError, match="Expected N frame indices"):
        index.add_frame_results(run_id, [0, 1], [0, 1], [0, 1], np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(NotFoundError):
        index.load_frame_results(999)


def test_segments(index, collection, video):
    a, b = index.add_images(collection.id, [new_image(1), new_image(2)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.replace_segments(run_id, [_segment(b, 50, 80), _segment(a, 0, 24)])
    segments = index.list_segments(run_id)
    assert [(s.image_id, s.start_frame, s.end_frame, s.frames) for s in segments] == [
        (a, 0, 24, 25),
        (b, 50, 80, 31),
    ]
    assert segments[1].start_s == pytest.approx(2.0) and segments[1].peak_score == pytest.approx(0.9)
    index.replace_segments(run_id, [_segment(a, 100, 110)])
    assert [s.start_frame for s in index.list_segments(run_id)] == [100]
    index.replace_segments(run_id, [])
    assert index.list_segments(run_id) == []


def test_list_runs_newest_first_and_filters(index, collection, video):
    other_video = index.upsert_video(
        path="/b.mp4",
        sha256="b" * 64,
        fps=30,
        frame_count=3,
        duration_s=0.1,
        width=2,
        height=2,
        rotation=0,
        size_bytes=1,
    )
    other = index.create_collection("other", MODEL, "{}", DIM)
    first = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    second = index.create_run(video_id=other_video.id, collection_id=collection.id, model_id=MODEL, params={})
    third = index.create_run(video_id=video.id, collection_id=other.id, model_id=MODEL, params={})
    assert [r.id for r in index.list_runs()] == [third, second, first]
    assert [r.id for r in index.list_runs(video_id=video.id)] == [third, first]
    assert [r.id for r in index.list_runs(collection_id=collection.id)] == [second, first]
    assert [r.id for r in index.list_runs(video_id=video.id, collection_id=collection.id)] == [first]
    assert [r.id for r in index.list_runs(limit=1)] == [third]


def test_delete_run(index, collection, video):
    (a,) = index.add_images(collection.id, [new_image(1)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_results(run_id, [0], [0.0], [0], np.array([[a]]), np.array([[0.9]]))
    index.replace_segments(run_id, [_segment(a, 0, 0)])
    index.delete_run(run_id)
    assert index.list_runs() == []
    for table in ("run_frames", "frame_matches", "segments"):
        assert count_rows(index, table) == 0
    assert index.count_images(collection.id) == 1
    with pytest.raises(NotFoundError):
        index.delete_run(run_id)


# -- stats --------------------------------------------------------------------------------


def test_stats(index, collection, video):
    index.add_images(collection.id, [new_image(i) for i in range(3)])
    index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_embeddings(video.sha256, "k", [0, 1], [0, 0.04], np.ones((2, 4)))
    stats = index.stats()
    assert stats.path == index.path
    assert (stats.collections, stats.images, stats.videos, stats.runs, stats.cached_frames) == (1, 3, 1, 1, 2)
    assert stats.size_bytes > 0


def test_errors_are_user_facing():
    from core.errors import USER_ERRORS

    assert issubclass(DatabaseError, USER_ERRORS)
    assert issubclass(NotFoundError, DatabaseError)
    assert issubclass(ModelMismatchError, DatabaseError)
