"""Searching a collection with a query image, and nearest neighbours of a stored image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.matching.indexing import index_images
from core.matching.search import neighbours, search, search_images


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


def test_cli_search(tmp_path, tiny_model_dir, image_folder, monkeypatch, capsys):
    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "s.sqlite"))
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    main(["index", str(image_folder.folder), "-c", "c", "-q"])
    capsys.readouterr()
    assert main(["search", str(image_folder.paths[1]), "-c", "c", "-k", "2", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image"] == "beta.png" and len(rows) == 2
    bad = tmp_path / "bad.jpg"
    bad.write_text("x")
    assert main(["search", str(bad), "-c", "c"]) == 2
    assert "not an image" in capsys.readouterr().err
