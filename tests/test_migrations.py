"""Schema migrations: a fresh file gets them all, an old file is upgraded, re-opening is a no-op."""

from __future__ import annotations

import sqlite3

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
    "run_regions",
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
    path = tmp_path / "old.sqlite"
    old = raw_db(path)
    migrate(old, target=SCHEMA_VERSION - 1)
    assert set(old.table_names()) < TABLES  # the last migration adds a table
    old.execute(
        "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) "
        "VALUES ('posters', 'm', '{}', 4, '2024-01-01T00:00:00+00:00')"
    )
    old.close()
    assert user_version(path) == SCHEMA_VERSION - 1

    with Index(path) as index:
        assert index.schema_version() == SCHEMA_VERSION
        assert set(index.db.table_names()) == TABLES
        collection = index.get_collection("posters")
        assert collection.created == "2024-01-01T00:00:00+00:00"
        video = index.upsert_video(
            path="/v.mp4",
            sha256="s",
            fps=25,
            frame_count=1,
            duration_s=0.04,
            width=2,
            height=2,
            rotation=0,
            size_bytes=1,
        )
        run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id="m", params={})
        assert index.get_run(run_id).collection_name == "posters"


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
