"""core.matching.search: exact cosine top-k, query-image search and neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from core.matching.indexing import index_images
from core.matching.search import neighbours, search, search_images, top_k
from core.model.features import l2_normalize


@pytest.fixture
def coll(index, extractor, image_folder):
    index_images(index, "c", [image_folder.folder], extractor)
    c = index.get_collection("c")
    return c, index.load_embeddings(c.id)


def test_query_image_finds_itself_first(index, extractor, image_folder, coll):
    c, matrix = coll
    hits = search_images(extractor, matrix, [image_folder.arrays[2]], 3)[0]
    assert len(hits) == 3
    assert index.get_image(hits[0].image_id).name == "gamma.jpg"
    assert hits[0].score > 0.999
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_neighbours_exclude_the_image_itself(index, coll):
    c, matrix = coll
    first = int(matrix.image_ids[0])
    hits = neighbours(index, matrix, first, 10)
    assert len(hits) == 3 and first not in {h.image_id for h in hits}


def test_search_many_queries_at_once(coll):
    _, matrix = coll
    results = search(matrix, matrix.vectors, 1)
    assert [r[0].image_id for r in results] == matrix.image_ids.tolist()
    assert np.allclose([r[0].score for r in results], 1.0, atol=1e-5)


def test_top_k_equals_a_full_sort():
    rng = np.random.default_rng(0)
    db = l2_normalize(rng.normal(size=(500, 32)))
    q = l2_normalize(rng.normal(size=(40, 32)))
    pos, sc = top_k(q, db, 5, max_block=1000)  # small blocks exercise the chunking
    full = q @ db.T
    ref = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(pos, ref)
    np.testing.assert_allclose(sc, np.take_along_axis(full, ref, 1), rtol=1e-6)
    assert (np.diff(sc, axis=1) <= 0).all()


def test_top_k_with_fewer_images_than_k():
    db = l2_normalize(np.eye(3, 8))
    pos, sc = top_k(db, db, 5)
    assert pos.shape == (3, 3)
    np.testing.assert_array_equal(pos[:, 0], [0, 1, 2])
    np.testing.assert_allclose(sc[:, 0], 1.0)


def test_top_k_empty_inputs_and_bad_shapes():
    pos, sc = top_k(np.zeros((2, 4), np.float32), np.zeros((0, 4), np.float32), 5)
    assert pos.shape == (2, 0)
    with pytest.raises(ValueError, match="shape"):
        top_k(np.zeros((2, 4)), np.zeros((3, 5)), 1)


def test_top_k_agrees_with_numpy_on_a_larger_collection():
    rng = np.random.default_rng(1)
    db = l2_normalize(rng.normal(size=(20_000, 64)))
    q = l2_normalize(rng.normal(size=(50, 64)))
    for max_block in (1 << 25, 50_000):  # one block, and one query row per block
        pos, sc = top_k(q, db, 5, max_block=max_block)
        full = q @ db.T
        np.testing.assert_array_equal(pos, np.argsort(-full, axis=1)[:, :5])
        np.testing.assert_allclose(sc, np.take_along_axis(full, pos, 1), rtol=1e-5)


def test_top_k_takes_float64_and_strided_views():
    rng = np.random.default_rng(2)
    db = l2_normalize(rng.normal(size=(300, 16)))
    q = l2_normalize(rng.normal(size=(7, 16)))
    pos, sc = top_k(q.astype(np.float64), db[::2], 4)
    ref_pos, ref_sc = top_k(q, np.ascontiguousarray(db[::2]), 4)
    np.testing.assert_array_equal(pos, ref_pos)
    assert sc.dtype == np.float32 and pos.dtype == np.int64
