"""dashboard.state: the model's status (are the weights on this machine)."""

from __future__ import annotations

import numpy as np
import pytest


def test_model_status_of_folders_and_hub_ids(tiny_model_dir, tmp_path):
    from core.model.source import split_label
    from dashboard.state import model_status

    ok = model_status(str(tiny_model_dir))
    assert ok.available and ok.fix == ""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    bad = model_status(str(empty))
    assert not bad.available and "config.json" in bad.detail and "WEBSSL_MODEL" in bad.fix
    missing = model_status(str(tmp_path / "nope"))
    assert not missing.available and "does not exist" in missing.detail
    hub = model_status("someone/never-downloaded")
    assert not hub.available and "hf download someone/never-downloaded" in hub.fix
    assert split_label("org/name@v1") == ("org/name", "v1")
    assert split_label(str(tiny_model_dir)) == (str(tiny_model_dir), None)


def test_the_newest_finished_run_is_preloaded_for_the_match_page(tmp_path, monkeypatch):
    """The server's warm-up reads the run the Match page opens first into the run cache, so the
    page's first opening does not wait for SQLite; an unfinished newest run is left alone."""
    from conftest import synthetic_run
    from core.matching import runs as core_runs
    from dashboard import state
    from db import Index

    db = tmp_path / "preload.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    state._run_view.clear()
    assert state.preload_newest_run() is None  # an empty database: nothing to load
    view = synthetic_run(Index(db), [0, 0, 1, -1], [0.9, 0.8, 0.7, 0.0])
    run_id = view.run.id
    assert state.preload_newest_run() == run_id
    monkeypatch.setattr("core.matching.runs.load_run", lambda *a, **k: pytest.fail("run read again"))
    monkeypatch.setattr(core_runs, "load_run", lambda *a, **k: pytest.fail("run read again"))
    opened = state.get_run_view(run_id)  # what the Match page calls: the cached view
    assert opened.run.id == run_id and len(opened.results) == 4
    # a newer run still being written is not cached (the page reads it fresh on every rerun)
    index = state.get_index()
    newer = index.create_run(
        video_id=view.video.id, collection_id=view.run.collection_id, model_id=view.run.model_id, params={}
    )
    assert index.get_run(newer).status == "running"
    assert state.preload_newest_run() is None
    state._run_view.clear()


def test_preloading_a_missing_run_only_logs(tmp_path, monkeypatch, caplog):
    from dashboard import state
    from db import NotFoundError

    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "gone.sqlite"))

    def vanished(_run_id):
        raise NotFoundError("run #7 not found")

    from conftest import synthetic_run
    from db import Index

    synthetic_run(Index(tmp_path / "gone.sqlite"), [0], [0.9])
    monkeypatch.setattr(state, "get_run_view", vanished)
    assert state.preload_newest_run() is None
    assert "could not preload the newest run" in caplog.text


def _collection(index, name: str, n: int, dim: int = 16) -> int:
    from db import NewImage

    coll = index.create_collection(name, "m", "{}", dim)
    rng = np.random.default_rng(n)
    index.add_images(
        coll.id,
        [NewImage(f"/{name}/{i}.jpg", f"{name}{i:060x}", 1, 1, b"", rng.standard_normal(dim).astype(np.float32))
         for i in range(n)],
    )  # fmt: skip
    return coll.id


def test_a_large_collections_search_is_opened_ahead_and_a_small_one_is_not(tmp_path, monkeypatch):
    """The warm-up opens the approximate index of the collection Browse shows first (and walks
    it once), so the first neighbours search does not wait for the file; a collection searched
    exactly is not loaded into memory for a search that may never come."""
    import core.matching.search as search_module
    from core.matching import ann
    from dashboard import state
    from db import Index

    db = tmp_path / "search.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    monkeypatch.setattr(search_module, "APPROXIMATE_FROM", 50)  # 100k in the product
    state._collection_search.clear()
    assert state.preload_collection_search() is None  # no collection at all
    index = Index(db)
    _collection(index, "a-small", 20)
    assert state.preload_collection_search() is None  # exact: nothing opened
    index.delete_collection("a-small")
    big = _collection(index, "big", 300)
    with monkeypatch.context() as m:  # no index file yet: opening it would load the matrix exactly
        m.setattr(search_module, "open_search", lambda *a, **k: pytest.fail("searched exactly at start-up"))
        assert state.preload_collection_search() is None
    search_module.open_search(index, index.get_collection_by_id(big), maintain=True)  # as `index` leaves it
    walked = []
    real_top_k = ann.ApproximateSearch.top_k
    monkeypatch.setattr(
        ann.ApproximateSearch, "top_k", lambda self, *a, **k: walked.append(1) or real_top_k(self, *a, **k)
    )
    assert state.preload_collection_search() == big and walked == [1]
    monkeypatch.setattr("core.matching.search.open_search", lambda *a, **k: pytest.fail("opened again"))
    opened = state.get_collection_search(big)  # what Browse calls: the open index
    assert isinstance(opened, ann.ApproximateSearch) and len(opened) == 300
    state._collection_search.clear()


def test_the_first_grid_page_is_made_ahead_for_browse(tmp_path, monkeypatch, caplog):
    """The warm-up makes the square thumbnails of the page Browse shows first, so its first
    visit finds them made (and OpenCV's code loaded); a failure is logged only."""
    import io
    import sqlite3

    from PIL import Image

    from dashboard import media, state
    from db import Index, NewImage

    db = tmp_path / "grid.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    state.square_preview.clear()
    assert state.preload_grid_previews() == 0  # no collection yet

    def jpeg(shade: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), (shade, 0, 0)).save(buf, "JPEG")
        return buf.getvalue()

    index = Index(db)
    coll = index.create_collection("grid", "m", "{}", 4)
    n = media.GRID_PAGE_SIZE + 5  # one page and some
    index.add_images(
        coll.id,
        [
            NewImage(f"/grid/{i:03d}.jpg", f"{i:064x}", 40, 30, jpeg(i), np.ones(4, np.float32))
            for i in range(n)
        ],
    )
    assert state.preload_grid_previews() == media.GRID_PAGE_SIZE
    first_page = [r.id for r in index.list_images(coll.id, offset=0, limit=media.GRID_PAGE_SIZE)]
    thumbs = index.get_thumbnails(first_page)
    monkeypatch.setattr(media, "square_jpeg", lambda *a, **k: pytest.fail("made again"))
    assert all(state.square_preview(thumbs[i]) for i in first_page)  # what Browse calls: made already

    def broken():
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(state, "get_index", broken)
    assert state.preload_grid_previews() == 0
    assert "could not make the first grid's previews ahead" in caplog.text
    state.square_preview.clear()


def test_a_collection_changed_by_another_process_is_searched_as_it_is_now(tmp_path, monkeypatch):
    """The CLI may add and remove images while the dashboard runs: Browse's cached search must
    follow, even where the image count comes out the same."""
    from dashboard import state
    from db import Index, NewImage

    db = tmp_path / "changed.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    state._collection_search.clear()
    coll_id = _collection(Index(db), "c", 20)
    before = state.get_collection_search(coll_id)
    cli = Index(db)  # another process, as far as the dashboard's caches know
    matrix = cli.load_embeddings(coll_id)
    removed, removed_vector = int(matrix.image_ids[0]), matrix.vectors[:1]
    cli.remove_images(coll_id, [removed])
    vector = np.ones(16, np.float32)
    (added,) = cli.add_images(coll_id, [NewImage("/c/new.jpg", "n" * 64, 1, 1, b"", vector)])  # its id
    now = state.get_collection_search(coll_id)
    assert len(now) == len(before) == 20
    assert int(now.top_k(vector[None], 1)[0][0, 0]) == added
    assert int(now.top_k(removed_vector, 1)[0][0, 0]) != removed
    state._collection_search.clear()


def test_a_run_whose_results_another_process_changed_is_read_again(tmp_path, monkeypatch):
    """Removing an image (from the CLI) takes it out of the stored results of its collection's
    runs: a run the dashboard had open must not go on showing it."""
    from conftest import synthetic_run
    from dashboard import state
    from db import Index

    db = tmp_path / "run.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    state._run_view.clear()
    view = synthetic_run(Index(db), [0, 0, 1, 1], [0.9, 0.8, 0.7, 0.6])
    opened = state.get_run_view(view.run.id)
    poster = int(opened.results.image_ids[2, 0])
    Index(db).remove_images(view.run.collection_id, [poster])
    again = state.get_run_view(view.run.id)
    assert poster not in set(again.results.image_ids.ravel().tolist())
    assert again.run.collection_changed
    state._run_view.clear()
