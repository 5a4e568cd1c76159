"""db.store: the connection (pragmas, transactions, threads, crash safety), stats, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import DIM, MODEL, new_image
from db import DEFAULT_BUSY_TIMEOUT_MS, DatabaseError, Index, ModelMismatchError, NotFoundError

REPO = Path(__file__).resolve().parents[1]


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


# -- crash safety and threads -----------------------------------------------------------------------


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


# -- stats and errors -------------------------------------------------------------------------------


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
