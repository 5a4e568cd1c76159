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

from conftest import DIM, MODEL, PREPROCESSING, new_image
from db import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DatabaseError,
    DatabaseFullError,
    DatabaseOpenError,
    Index,
    ModelMismatchError,
    NotAnIndexError,
    NotFoundError,
    ReadOnlyDatabaseError,
)

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


def test_counting_images_walks_the_narrow_index(tmp_path):
    """count(*) walked the widest index of images (paths, hashes, names: 118 MB of a 1M-image
    database read on the Home and Collections pages); the narrow one is ~11 bytes an image."""
    import sqlite3

    Index(tmp_path / "i.sqlite").close()
    conn = sqlite3.connect(tmp_path / "i.sqlite")
    for sql in ("SELECT count(*) FROM images", "SELECT count(*) FROM images WHERE collection_id = 1"):
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "COVERING INDEX images_collection" in plan and "images_collection_path" not in plan
    conn.close()


def test_integrity_check(tmp_path):
    from db import Index

    path = tmp_path / "i.sqlite"
    with Index(path) as index:
        coll = index.create_collection("c", MODEL, PREPROCESSING, DIM)
        index.add_images(coll.id, [new_image(i) for i in range(400)])
        assert index.integrity_ok()
        index.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(len(data) // 2 // page * page, len(data) - page, 2 * page):  # rows, not the schema
        data[offset + 8 : offset + 200] = bytes(range(192))
    path.write_bytes(bytes(data))
    with Index(path, readonly=True) as index:
        assert not index.integrity_ok()


def test_errors_are_user_facing():
    from core.errors import USER_ERRORS

    assert issubclass(DatabaseError, USER_ERRORS)
    assert issubclass(NotFoundError, DatabaseError)
    assert issubclass(ModelMismatchError, DatabaseError)


# -- issue 9: files that are not ours, or not writable, or full -----------------------------------
def _fingerprint(path: Path) -> tuple[bytes, list[str]]:
    """The file's bytes and the names beside it (a -wal or -shm file appearing is a write)."""
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


def test_random_bytes_are_refused_and_left_alone(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    before = _fingerprint(path)
    for readonly in (False, True):
        with pytest.raises(NotAnIndexError, match="not an SQLite database"):
            Index(path, readonly=readonly)
    assert _fingerprint(path) == before


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(DatabaseOpenError, match="is a folder"):
        Index(tmp_path)


def test_another_applications_database_is_never_written(tmp_path):
    import sqlite3

    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = _fingerprint(path)
    for readonly in (False, True):
        with pytest.raises(NotAnIndexError, match="not a webssl-lens index"):
            Index(path, readonly=readonly)
    assert _fingerprint(path) == before


@pytest.mark.parametrize("version", [-3, 0])
def test_odd_versions_with_tables_are_refused(tmp_path, version):
    import sqlite3

    path = tmp_path / "odd.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE collections (id INTEGER PRIMARY KEY)")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    with pytest.raises(NotAnIndexError):
        Index(path)


def test_our_files_carry_a_marker_and_older_ones_get_it(tmp_path):
    import sqlite3

    from db.store import APPLICATION_ID

    path = tmp_path / "index.sqlite"
    Index(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.execute("PRAGMA application_id = 0")  # as written before the marker existed
    conn.commit()
    conn.close()
    with Index(path) as index:
        assert index.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_read_only_opening_never_writes(tmp_path):
    import sqlite3

    path = tmp_path / "index.sqlite"
    with Index(path) as index:
        index.create_collection("c", MODEL, "{}", DIM)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # as a copy from elsewhere might be
    conn.close()
    before = _fingerprint(path)
    with Index(path, readonly=True) as index:
        assert [c.name for c in index.list_collections()] == ["c"]
        assert index.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        with pytest.raises(ReadOnlyDatabaseError, match="read-only"):
            index.create_collection("d", MODEL, "{}", DIM)
    assert _fingerprint(path) == before
    with pytest.raises(DatabaseOpenError, match="No index database"):
        Index(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_read_only_file_system_is_a_clear_message(tmp_path, monkeypatch):
    """A writable open of a file SQLite can only read fails with one clear error, not a traceback."""
    import sqlite3

    wal, copied = tmp_path / "wal.sqlite", tmp_path / "copied.sqlite"
    for path in (wal, copied):
        with Index(path) as index:
            index.create_collection("c", MODEL, "{}", DIM)
    conn = sqlite3.connect(copied)
    conn.execute("PRAGMA journal_mode = DELETE")  # a copy from elsewhere: switching to WAL is a write
    conn.close()
    real_connect = sqlite3.connect

    def read_only_connect(database, *args, **kwargs):  # what a read-only mount gives
        kwargs["uri"] = True
        return real_connect(f"file:{database}?mode=ro", *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only_connect)
    with pytest.raises(ReadOnlyDatabaseError, match="read-only"):
        Index(copied)
    with Index(wal) as index, pytest.raises(ReadOnlyDatabaseError, match="read-only"):
        index.create_collection("d", MODEL, "{}", DIM)
    monkeypatch.undo()
    with Index(wal, readonly=True) as index:
        assert [c.name for c in index.list_collections()] == ["c"]


def test_a_full_disk_keeps_what_was_committed(tmp_path):
    path = tmp_path / "index.sqlite"
    with Index(path) as index:
        coll = index.create_collection("c", MODEL, "{}", DIM)
        index.add_images(coll.id, [new_image(i) for i in range(3)])
        pages = index.db.execute("PRAGMA page_count").fetchone()[0]
        index.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is full from here on
        with pytest.raises(DatabaseFullError, match="full"):
            index.add_images(coll.id, [new_image(i) for i in range(100, 400)])
        assert index.count_images(coll.id) == 3
    with Index(path) as index:
        assert index.count_images(index.get_collection("c").id) == 3
        assert index.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
