"""db.collections: collections, images, thumbnails, embeddings, failures."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from conftest import DIM, MODEL, PREPROCESSING, _segment, count_rows, new_image, vector
from db import CollectionExistsError, ModelMismatchError, NewImage, NotFoundError, RunInProgressError
from db.records import ImageRecord


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_embeddings_are_plain_little_endian_float32(index, collection):
    (image_id,) = index.add_images(collection.id, [new_image(1)])
    dim, dtype, blob = index.db.execute(
        "SELECT dim, dtype, vector FROM image_embeddings WHERE image_id = ?", [image_id]
    ).fetchone()
    assert (dim, dtype, len(blob)) == (DIM, "float32", DIM * 4)
    np.testing.assert_allclose(np.frombuffer(blob, dtype="<f4"), unit(vector(1)), rtol=1e-6)


# -- collections ------------------------------------------------------------------------------------


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
    # not while one of its runs is still being written (here: by this live process)
    with pytest.raises(RunInProgressError, match=f"Run {run_id} is still being written"):
        index.delete_collection("posters")
    index.finish_run(run_id)

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


# -- images -----------------------------------------------------------------------------------------


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
        "/photos/img_0001.jpg": [(ids[0], f"{1:064x}")],
        "/photos/img_0002.jpg": [(ids[1], f"{2:064x}")],
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
    batch = [
        new_image(3),
        new_image(4),
        NewImage("/photos/x.jpg", "abc", None, 1, b"", vector(5)),
        new_image(6),
    ]  # type: ignore[arg-type]
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


def test_name_filter_folds_case_beyond_ascii(index, collection):
    index.add_images(
        collection.id,
        [new_image(0, path="/a/GROSSE STRASSE.jpg"), new_image(1, path="C:\\Fotos\\Émile.PNG")],
    )
    assert [r.name for r in index.list_images(collection.id, name_filter="straße")] == ["GROSSE STRASSE.jpg"]
    assert index.count_images(collection.id, name_filter="éMILE") == 1
    assert index.count_images(collection.id, name_filter="fotos") == 0  # a folder, not the file name


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


def test_move_images_keeps_everything_but_the_path(index, collection):
    ids = index.add_images(collection.id, [new_image(1), new_image(2)])
    index.add_failures(collection.id, [("/archive/IMG_0001.JPG", "was broken")])
    index.move_images(collection.id, [(ids[0], "/archive/IMG_0001.JPG")])
    rec = index.get_image(ids[0])
    assert (rec.path, rec.name, rec.sha256) == ("/archive/IMG_0001.JPG", "IMG_0001.JPG", f"{1:064x}")
    assert [r.id for r in index.list_images(collection.id, name_filter="img_0001")] == [ids[0]]
    assert index.get_thumbnails([ids[0]]) == {ids[0]: b"\xff\xd8jpeg-1"}
    assert len(index.load_embeddings(collection.id).image_ids) == 2
    assert index.list_failures(collection.id) == []  # the file there is indexed now
    other = index.create_collection("other", MODEL, PREPROCESSING, DIM)
    index.move_images(other.id, [(ids[1], "/elsewhere.jpg")])  # not its image: nothing changes
    assert index.get_image(ids[1]).path == "/photos/img_0002.jpg"


# -- embeddings -------------------------------------------------------------------------------------


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


def test_load_embeddings_reads_the_matrix_in_a_few_queries(index, statements):
    """The bulk path: a few queries whatever the collection's size, not one per image (its speed
    is measured in bench/, never timed in a test: 100k x 1024 loads in about 0.5 s)."""
    n, dim = 5_000, 1024
    collection = index.create_collection("big", MODEL, "{}", dim)
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    items = [NewImage(f"/p/{i}.jpg", str(i), 1, 1, b"", vectors[i]) for i in range(n)]
    index.add_images(collection.id, items)
    statements.clear()
    matrix = index.load_embeddings(collection.id)
    assert len(statements) <= 4, statements
    assert matrix.vectors.shape == (n, dim) and matrix.vectors.dtype == np.float32
    assert matrix.vectors.flags.c_contiguous and matrix.image_ids.tolist() == sorted(
        matrix.image_ids.tolist()
    )
    np.testing.assert_allclose(matrix.vectors[123], unit(vectors[123]), rtol=1e-5)


def test_get_embeddings_in_given_order(index, collection):
    ids = index.add_images(collection.id, [new_image(i) for i in range(4)])
    vectors = index.get_embeddings([ids[2], ids[0], ids[2]])
    np.testing.assert_allclose(
        vectors, np.stack([unit(vector(2)), unit(vector(0)), unit(vector(2))]), rtol=1e-6
    )
    assert vectors.dtype == np.float32
    with pytest.raises(NotFoundError, match=r"\[999\]"):
        index.get_embeddings([ids[0], 999])


def test_insert_reports_what_was_added_and_replaces_in_the_same_transaction(index, collection):
    (old,) = index.add_images(collection.id, [new_image(1)])
    changed = new_image(2, path="/photos/img_0001.jpg")
    added = index.insert_images(collection.id, [replace(changed, replaces=(old,)), new_image(3)])
    assert [a.inserted for a in added] == [True, True]
    assert index.known_paths(collection.id)["/photos/img_0001.jpg"] == [(added[0].image_id, f"{2:064x}")]
    again = index.insert_images(collection.id, [new_image(3)])  # stored by someone else since
    assert again[0].inserted is False and again[0].image_id == added[1].image_id
