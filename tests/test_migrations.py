"""Schema migrations: a fresh file gets them all, an old file is upgraded, re-opening is a no-op."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sqlite_utils import Database

import db.migrations
from db import MIGRATIONS, SCHEMA_VERSION, Index, SchemaTooNewError, migrate

TABLES = {
    "collections",
    "images",
    "thumbnails",
    "image_embeddings",
    "index_failures",
    "videos",
    "frame_embeddings",
    "runs",
    "run_frames",
    "frame_matches",
    "segments",
    "run_chunks",
    "run_regions",
    "run_region_chunks",
    "vector_indexes",
    "vector_changes",
    "sqlite_sequence",  # vector_changes' AUTOINCREMENT: change numbers are never reused
    "library_videos",
    "frame_counts",
}


def raw_db(path) -> Database:
    return Database(sqlite3.connect(str(path), isolation_level=None))


def user_version(path) -> int:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_fresh_database_gets_all_migrations(tmp_path):
    database = raw_db(tmp_path / "fresh.sqlite")
    applied = migrate(database)
    assert applied == [m.__name__.lstrip("_") for m in MIGRATIONS]
    assert db.migrations.schema_version(database) == SCHEMA_VERSION == len(MIGRATIONS)
    assert set(database.table_names()) == TABLES


def test_index_applies_migrations(index):
    assert index.schema_version() == SCHEMA_VERSION
    assert set(index.db.table_names()) == TABLES


def test_reopening_is_a_no_op(tmp_path):
    path = tmp_path / "index.sqlite"
    with Index(path) as index:
        index.create_collection("c", "m", "{}", 4)
        schema = index.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    with Index(path) as index:
        assert index.schema_version() == SCHEMA_VERSION
        assert migrate(index.db) == []
        assert index.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
        assert [c.name for c in index.list_collections()] == ["c"]


def test_upgrade_from_previous_version(tmp_path):
    """The run-owners migration on a file of the version before: data kept, a run left
    'running' by an older version (no owner) shows as interrupted."""
    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    before = MIGRATIONS.index(db.migrations._run_owners)
    migrate(old, target=before)
    assert "pid" not in {c.name for c in old["runs"].columns}
    old.execute(
        "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) "
        "VALUES ('posters', 'm', '{}', 4, '2024-01-01T00:00:00+00:00')"
    )
    old.execute(
        "INSERT INTO videos (path, sha256, fps, frame_count, duration_s, width, height, size_bytes, added) "
        "VALUES ('/v.mp4', 's', 25, 1, 0.04, 2, 2, 1, '2024-01-01T00:00:00+00:00')"
    )
    old.execute(
        "INSERT INTO runs (video_id, collection_id, model_id, status, created) "
        "VALUES (1, 1, 'm', 'running', '2024-01-01T00:00:00+00:00')"
    )
    old.conn.commit()
    old.close()
    assert user_version(path) == before

    with Index(path) as index:
        assert index.schema_version() == SCHEMA_VERSION
        assert set(index.db.table_names()) == TABLES
        assert {"pid", "host", "heartbeat"} <= {c.name for c in index.db["runs"].columns}
        collection = index.get_collection("posters")
        assert collection.created == "2024-01-01T00:00:00+00:00"
        (run,) = index.list_runs()
        assert run.collection_name == "posters" and run.status == "interrupted"
        run_id = index.create_run(video_id=1, collection_id=collection.id, model_id="m", params={})
        assert index.get_run(run_id).status == "running"  # this process is alive


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_upgrade_from_every_version(tmp_path, version):
    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    migrate(old, target=version)
    old.close()
    with Index(path) as index:
        assert index.schema_version() == SCHEMA_VERSION
        assert set(index.db.table_names()) == TABLES


def test_schema_too_new(tmp_path):
    path = tmp_path / "future.sqlite"
    with Index(path):
        pass
    conn = sqlite3.connect(str(path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError) as excinfo:
        Index(path)
    message = str(excinfo.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"only knows up to {SCHEMA_VERSION}" in message
    assert "newer" in message
    assert user_version(path) == SCHEMA_VERSION + 1


def test_failed_migration_is_rolled_back(tmp_path, monkeypatch):
    def broken(database: Database) -> None:
        database.execute("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(db.migrations, "MIGRATIONS", [*MIGRATIONS, broken])
    path = tmp_path / "index.sqlite"
    with pytest.raises(RuntimeError, match="migration bug"):
        Index(path)
    assert user_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(str(path))
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert tables == TABLES


def test_migrate_rejects_unknown_target(tmp_path):
    with pytest.raises(ValueError, match="target"):
        migrate(raw_db(tmp_path / "x.sqlite"), target=SCHEMA_VERSION + 1)


def old_database_with_runs(path, before, images: int, runs: int) -> Database:
    """A database at the schema before migration ``before``, with a collection of ``images``
    images (ids 1..), a video and ``runs`` done runs of it (ids 1..)."""
    old = raw_db(path)
    migrate(old, target=MIGRATIONS.index(before))
    old.execute(
        "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) VALUES ('c', 'm', '{}', 4, 'x')"
    )
    for i in range(1, images + 1):
        old.execute(
            "INSERT INTO images (collection_id, path, sha256, width, height, added) VALUES (1, ?, ?, 1, 1, 'x')",
            (f"/{i}.jpg", f"{i}"),
        )
    old.execute(
        "INSERT INTO videos (path, sha256, fps, frame_count, duration_s, width, height, size_bytes, added) "
        "VALUES ('/v.mp4', 's', 10, 3, 0.3, 2, 2, 1, 'x')"
    )
    for _ in range(runs):
        old.execute(
            "INSERT INTO runs (video_id, collection_id, model_id, status, created) VALUES (1, 1, 'm', 'done', 'x')"
        )
    return old


def test_upgrade_makes_result_chunks_of_old_runs(tmp_path):
    """Runs stored as per-frame rows only (before run_chunks) load the same after the upgrade."""
    path = tmp_path / "old.sqlite"
    old = old_database_with_runs(path, db.migrations._run_result_chunks, images=3, runs=1)
    for frame, source in ((0, 0), (1, 0), (2, 2)):
        old.execute("INSERT INTO run_frames VALUES (1, ?, ?, ?)", (frame, frame / 10, source))
    rows = [(0, 1, 1, 0.9), (0, 2, 2, 0.5), (1, 1, 1, 0.9), (1, 2, 2, 0.5), (2, 1, 3, 0.7)]
    old.conn.executemany("INSERT INTO frame_matches VALUES (1, ?, ?, ?, ?)", rows)
    old.conn.commit()
    old.close()
    with Index(path) as index:
        res = index.load_frame_results(1)
    assert res.frame_index.tolist() == [0, 1, 2] and res.source_frame.tolist() == [0, 0, 2]
    assert res.image_ids.tolist() == [[1, 2], [1, 2], [3, -1]]
    np.testing.assert_allclose(res.scores[:, 0], [0.9, 0.9, 0.7], rtol=1e-6)
    assert np.isnan(res.scores[2, 1])


def test_upgrade_makes_region_chunks_of_old_runs(tmp_path):
    """Regions stored as rows only (before run_region_chunks) load the same after the upgrade."""
    path = tmp_path / "old.sqlite"
    old = old_database_with_runs(path, db.migrations._run_region_chunks, images=2, runs=2)
    rows = [(1, 2, 2, 0.8, 1, 2, 3, 4), (1, 0, 1, 0.9, 5, 6, 7, 8), (2, 1, 1, 0.7, 0, 0, 9, 9)]
    old.conn.executemany("INSERT INTO run_regions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    old.conn.commit()
    old.close()
    with Index(path) as index:
        first, second = (index.load_frame_regions(r) for r in (1, 2))
        assert first.frame_index.tolist() == [0, 2] and first.image_ids.tolist() == [1, 2]
        np.testing.assert_allclose(first.scores, [0.9, 0.8], rtol=1e-6)
        assert first.boxes.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]]
        assert second.frame_index.tolist() == [1] and second.image_ids.tolist() == [1]


def test_upgrade_gives_old_images_their_name_keys(tmp_path):
    """Images stored before the name_key column are found by the name filter after the upgrade."""
    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    migrate(old, target=MIGRATIONS.index(db.migrations._image_name_keys))
    old.execute(
        "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) VALUES ('c', 'm', '{}', 4, 'x')"
    )
    for i, name in enumerate(["Beach.JPG", "city.png", "über BEACH.webp"]):
        old.execute(
            "INSERT INTO images (collection_id, path, sha256, width, height, added) VALUES (1, ?, ?, 1, 1, 'x')",
            (f"/beach/{name}", f"{i}"),
        )
    old.conn.commit()
    old.close()
    with Index(path) as index:
        assert [r.name for r in index.list_images(1, name_filter="beach")] == ["Beach.JPG", "über BEACH.webp"]
        assert index.count_images(1, name_filter="ÜBER") == 1


def test_vector_indexes_migration_keeps_cached_frames_and_gives_them_ids(tmp_path):
    """Cached frames written before the migration keep their values and get stable ids."""
    import numpy as np

    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    migrate(old, target=MIGRATIONS.index(db.migrations._vector_indexes))
    vector = np.arange(4, dtype="<f4")
    for frame in (3, 7):
        old.execute(
            "INSERT INTO frame_embeddings (video_sha256, embed_key, frame_index, time_s, dim, vector) "
            "VALUES ('sha', 'key', ?, ?, 4, ?)",
            (frame, frame / 25, (vector + frame).tobytes()),
        )
    old.close()
    with Index(path) as index:
        frames, times, vectors = index.load_frame_embeddings("sha", "key")
        assert frames.tolist() == [3, 7] and times.tolist() == [3 / 25, 7 / 25]
        np.testing.assert_array_equal(vectors, np.stack([vector + 3, vector + 7]))
        ids = [row["id"] for row in index.db.execute("SELECT id FROM frame_embeddings ORDER BY id")]
        assert len(set(ids)) == 2


def test_frame_counts_migration_counts_the_frames_cached_before_it(tmp_path):
    """The per-video count of cached frames (what the library lists) starts from the frames
    already cached, and stays right as frames are added, replaced and removed after."""
    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    migrate(old, target=MIGRATIONS.index(db.migrations._frame_counts))
    for sha, frame in (("a", 0), ("a", 5), ("b", 0)):
        old.execute(
            "INSERT INTO frame_embeddings (video_sha256, embed_key, frame_index, time_s, dim, vector) "
            "VALUES (?, 'key', ?, 0, 4, ?)",
            (sha, frame, np.zeros(4, "<f4").tobytes()),
        )
    old.close()
    with Index(path) as index:
        counts = dict(index.db.execute("SELECT video_sha256, frames FROM frame_counts").fetchall())
        assert counts == {"a": 2, "b": 1}
        assert index.stats().cached_frames == 3


def test_collection_versions_migration_marks_the_runs_older_than_an_image(tmp_path):
    """Runs made before the migration count as having searched their collection as it is, unless
    one of its images was added at or after the run started (that image was never searched)."""
    path = tmp_path / "old.sqlite"
    old = old_database_with_runs(path, db.migrations._collection_versions, images=2, runs=3)
    old.execute("UPDATE images SET added = '2026-01-02T00:00:00+00:00'")
    old.execute("UPDATE images SET added = '2026-03-01T00:00:00+00:00' WHERE id = 2")
    for run_id, created in (
        (1, "2026-02-01T00:00:00+00:00"),
        (2, "2026-03-01T00:00:00+00:00"),
        (3, "2026-04-01T00:00:00+00:00"),
    ):
        old.execute("UPDATE runs SET created = ? WHERE id = ?", (created, run_id))
    old.close()
    with Index(path) as index:
        assert [index.get_run(r).collection_changed for r in (1, 2, 3)] == [True, True, False]
        index.remove_images(1, [1])  # after it, the versions count
        assert index.get_run(3).collection_changed
