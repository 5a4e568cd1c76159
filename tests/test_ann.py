"""core.matching.ann: the approximate index beside the database, kept in step with SQLite."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import core.matching.search as search_module
from core.matching import ann
from core.matching.search import ExactSearch, open_search
from db import Index, NewImage

DIM = 32


@pytest.fixture(autouse=True)
def small_sets(monkeypatch):
    """Sets from 50 vectors are approximate here (the real cross-over is 100k)."""
    monkeypatch.setattr(search_module, "APPROXIMATE_FROM", 50)


@pytest.fixture
def big(index):
    coll = index.create_collection("big", "m", "{}", DIM)
    add(index, coll, range(400))
    return coll


def add(index, coll, numbers) -> list[int]:
    rng = np.random.default_rng(list(numbers)[0])
    items = []
    for i in numbers:
        items.append(
            NewImage(f"/i/{i}.jpg", f"{i:064x}", 1, 1, b"", rng.standard_normal(DIM).astype(np.float32))
        )
    return index.add_images(coll.id, items)


def exact(index, coll) -> ExactSearch:
    return ExactSearch.of(index.load_embeddings(coll.id))


def near_duplicates(index, coll, n=16, seed=1) -> np.ndarray:
    vectors = index.load_embeddings(coll.id).vectors
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), n, replace=False)] + 0.05 * rng.standard_normal((n, DIM))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def fresh(index, coll):
    return open_search(index, index.get_collection_by_id(coll.id))


def test_a_large_collection_gets_an_index_file_and_exact_scores(index, big):
    found = open_search(index, index.get_collection_by_id(big.id), maintain=True)
    assert isinstance(found, ann.ApproximateSearch) and len(found) == 400
    record = index.vector_index("images", str(big.id))
    assert record.count == 400 and (index.vector_dir / record.file).is_file()
    q = near_duplicates(index, big)
    keys, scores = found.top_k(q, 5)
    ref_keys, ref_scores = exact(index, big).top_k(q, 5)
    np.testing.assert_array_equal(keys[:, 0], ref_keys[:, 0])  # the near-duplicate comes first
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)  # scores are exact, from SQLite


@pytest.mark.parametrize("seed", range(6))
def test_every_image_can_be_found_by_its_own_embedding(index, seed):
    """usearch's threaded insertion leaves a few vectors no search reaches (5 of 400 here, on 2
    threads); such an image could never be matched, so each build checks and re-inserts them."""
    coll = index.create_collection(f"c{seed}", "m", "{}", DIM)
    add(index, coll, range(seed * 1000, seed * 1000 + 400))
    found = open_search(index, index.get_collection_by_id(coll.id), maintain=True)
    assert isinstance(found, ann.ApproximateSearch)
    vectors = index.load_embeddings(coll.id)
    keys, _ = found.top_k(vectors.vectors, 4)
    assert (keys == vectors.image_ids[:, None]).any(axis=1).all()


def test_readers_see_changes_made_after_the_file_without_writing_it(index, big):
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    file = index.vector_index("images", str(big.id)).file
    new_ids = add(index, big, range(1000, 1010))
    gone = index.load_embeddings(big.id).image_ids[:5].tolist()
    index.remove_images(big.id, gone)
    found = fresh(index, big)
    assert isinstance(found, ann.ApproximateSearch) and len(found) == 405
    assert index.vector_index("images", str(big.id)).file == file  # nothing rewritten
    vectors = index.load_embeddings(big.id)
    new_rows = np.isin(vectors.image_ids, new_ids)
    keys, _ = found.top_k(vectors.vectors[new_rows], 1)
    assert keys[:, 0].tolist() == vectors.image_ids[new_rows].tolist()  # new images are found
    all_keys, _ = found.top_k(near_duplicates(index, big, 64), 20)
    assert not np.isin(all_keys, gone).any()  # removed images never come back


def test_many_pending_changes_are_merged_into_a_new_file(index, big, monkeypatch):
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    old = index.vector_index("images", str(big.id)).file
    monkeypatch.setattr(ann, "MERGE_FROM", 10)
    add(index, big, range(2000, 2020))
    report = ann.sync(index, ann.VectorSet("images", str(big.id), DIM))
    assert report.action == "merged" and report.vectors == 420 and report.changes == 20
    record = index.vector_index("images", str(big.id))
    assert record.file != old and record.count == 420
    assert not (index.vector_dir / old).exists()
    assert len(index.vector_changes("images", str(big.id), 0)) == 0


@pytest.mark.parametrize("damage", ["missing file", "wrong count", "not an index"])
def test_a_file_that_disagrees_with_sqlite_is_never_used_and_is_rebuilt(index, big, damage, caplog):
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    record = index.vector_index("images", str(big.id))
    path = index.vector_dir / record.file
    if damage == "missing file":
        path.unlink()
    elif damage == "wrong count":
        index.record_vector_file("images", str(big.id), record.file, record.seq, record.count + 1)
    else:
        path.write_bytes(b"not an index")
    with caplog.at_level(logging.WARNING):
        found = fresh(index, big)
    assert isinstance(found, ExactSearch) and len(found) == 400  # exact: slow but right
    assert "searching exactly" in caplog.text
    caplog.clear()
    rebuilt = open_search(index, index.get_collection_by_id(big.id), maintain=True)
    assert isinstance(rebuilt, ann.ApproximateSearch) and len(rebuilt) == 400


def test_a_file_left_by_a_crash_before_its_record_is_ignored_and_removed(index, big):
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    current = index.vector_index("images", str(big.id)).file
    stray = index.vector_dir / f"images-{big.id}-deadbeef-99.usearch"
    stray.write_bytes((index.vector_dir / current).read_bytes())
    assert isinstance(fresh(index, big), ann.ApproximateSearch)
    ann.sync(index, ann.VectorSet("images", str(big.id), DIM), rebuild=True)
    assert not stray.exists() and not (index.vector_dir / current).exists()


def test_read_only_openings_never_write(index, big, tmp_path):
    with Index(index.path, readonly=True) as reader:
        found = open_search(reader, reader.get_collection_by_id(big.id), maintain=True)
    assert isinstance(found, ExactSearch)  # no file yet, and a reader does not build one
    assert index.vector_index("images", str(big.id)) is None


def test_a_collection_small_again_drops_its_index(index, big):
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    index.remove_images(big.id, index.load_embeddings(big.id).image_ids[:380].tolist())
    found = open_search(index, index.get_collection_by_id(big.id), maintain=True)
    assert isinstance(found, ExactSearch) and len(found) == 20
    assert index.vector_index("images", str(big.id)) is None


def test_frames_are_searched_normalised(index, monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((100, DIM)).astype(np.float32) * 7  # cached as computed
    index.add_frame_embeddings("sha", "key", np.arange(100), np.arange(100) / 10, vectors)
    found = search_module.open_vectors(index, "frames", "key", DIM, maintain=True)
    assert isinstance(found, ann.ApproximateSearch)
    q = vectors[:4] / np.linalg.norm(vectors[:4], axis=1, keepdims=True)
    keys, scores = found.top_k(q, 1)
    ids, _ = index.load_vectors("frames", "key", DIM)
    assert keys[:, 0].tolist() == ids[:4].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_an_opened_index_file_searches_at_the_configured_depth(index, big):
    """usearch does not store the search depth in the file: a restored graph searched at its
    default of 64 (recall@5 0.96 on 1M clustered vectors) until the depth was set on opening."""
    open_search(index, index.get_collection_by_id(big.id), maintain=True)
    found = fresh(index, big)
    assert isinstance(found, ann.ApproximateSearch)
    assert found._graph.expansion_search == ann.EXPANSION_SEARCH
    assert ann._load(
        index.vector_dir / index.vector_index("images", str(big.id)).file, view=False
    ).expansion_add == (ann.EXPANSION_ADD)  # merging adds with the build's depth too


def test_a_large_batch_of_queries_is_searched_in_parts(index, big, monkeypatch):
    """Every candidate the graph proposes is read from SQLite to be re-scored, so a batch that
    would propose more than MAX_PROPOSALS is searched in parts, with the same answers."""
    found = open_search(index, index.get_collection_by_id(big.id), maintain=True)
    q = near_duplicates(index, big, n=10)
    whole = found.top_k(q, 5)
    reads = []
    plain = ann.fetch_vectors
    monkeypatch.setattr(ann, "fetch_vectors", lambda i, v, keys: reads.append(len(keys)) or plain(i, v, keys))
    monkeypatch.setattr(ann, "MAX_PROPOSALS", 3 * 5 * ann.OVERSAMPLE)
    parts = found.top_k(q, 5)
    assert len(reads) == 4 and max(reads) <= 3 * 5 * ann.OVERSAMPLE  # 3 + 3 + 3 + 1 queries
    np.testing.assert_array_equal(parts[0], whole[0])
    np.testing.assert_array_equal(parts[1], whole[1])


def test_a_bulk_search_of_a_mid_sized_collection_is_exact(index, big, monkeypatch):
    """Thousands of frames searched at once (a stored run searched again, a re-match) go faster
    through the matrix, loaded once, than through the approximate index, which reads every
    candidate's vector from SQLite (at 100k images: 1.4–1.95 against 5.7–6.9 ms a frame), up to
    a larger size than single batches (:data:`core.matching.search.BULK_APPROXIMATE_FROM`)."""
    monkeypatch.setattr(search_module, "BULK_APPROXIMATE_FROM", 1000)
    coll = index.get_collection_by_id(big.id)
    open_search(index, coll, maintain=True)  # the file exists: a batch of frames uses it
    assert isinstance(open_search(index, coll), ann.ApproximateSearch)
    assert isinstance(open_search(index, coll, queries=search_module.BULK_QUERIES), ExactSearch)
    monkeypatch.setattr(search_module, "BULK_APPROXIMATE_FROM", 400)  # from this size, bulk too
    assert isinstance(open_search(index, coll, queries=10_000), ann.ApproximateSearch)
