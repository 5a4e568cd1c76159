"""Numbered schema migrations.

``MIGRATIONS[i]`` takes a database from schema version ``i`` to ``i + 1``. The version lives in
``PRAGMA user_version``, so any SQLite tool can read it. :func:`migrate` applies the pending
ones in order, each in its own transaction together with the version bump: a crash leaves the
file at the last completed version. Append new migrations; never edit or reorder released ones.

The schema keeps to plain tables and column types so the file opens in Datasette. Embeddings
are little-endian float32 BLOBs with ``dim`` and ``dtype`` columns beside them; JSON goes in
TEXT columns; times are ISO-8601 UTC strings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import SchemaTooNewError
from .sqlite import Database


def _collections_and_images(db: Database) -> None:
    """Collections, their images, thumbnails, embeddings and indexing failures.

    Thumbnails and embeddings have tables of their own, so listing or counting images never
    reads their bytes.
    """
    db.executescript(
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_id TEXT NOT NULL,
            preprocessing TEXT NOT NULL,
            embed_dim INTEGER NOT NULL,
            created TEXT NOT NULL
        );
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            added TEXT NOT NULL,
            UNIQUE (collection_id, sha256)
        );
        CREATE INDEX images_collection_path ON images (collection_id, path, sha256);
        CREATE TABLE thumbnails (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            jpeg BLOB NOT NULL
        );
        CREATE TABLE image_embeddings (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            dim INTEGER NOT NULL,
            dtype TEXT NOT NULL DEFAULT 'float32',
            vector BLOB NOT NULL
        );
        CREATE TABLE index_failures (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            reason TEXT NOT NULL,
            created TEXT NOT NULL,
            UNIQUE (collection_id, path)
        );
        """
    )


def _videos_and_frame_cache(db: Database) -> None:
    """Videos, and the cache of frame embeddings keyed by video content and embedding setup."""
    db.executescript(
        """
        CREATE TABLE videos (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            fps REAL NOT NULL,
            frame_count INTEGER NOT NULL,
            duration_s REAL NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            rotation INTEGER NOT NULL DEFAULT 0,
            size_bytes INTEGER NOT NULL,
            added TEXT NOT NULL
        );
        CREATE TABLE frame_embeddings (
            video_sha256 TEXT NOT NULL,
            embed_key TEXT NOT NULL,
            frame_index INTEGER NOT NULL,
            time_s REAL NOT NULL,
            dim INTEGER NOT NULL,
            dtype TEXT NOT NULL DEFAULT 'float32',
            vector BLOB NOT NULL,
            PRIMARY KEY (video_sha256, embed_key, frame_index)
        );
        """
    )


def _runs_and_results(db: Database) -> None:
    """Matching runs, their per-frame matches and the segments built from them."""
    db.executescript(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
            collection_id INTEGER REFERENCES collections(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
            stats TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            finished TEXT
        );
        CREATE INDEX runs_video ON runs (video_id);
        CREATE INDEX runs_collection ON runs (collection_id);
        CREATE TABLE run_frames (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL,
            time_s REAL NOT NULL,
            source_frame INTEGER NOT NULL,
            PRIMARY KEY (run_id, frame_index)
        );
        CREATE TABLE frame_matches (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL,
            rank INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            score REAL NOT NULL,
            PRIMARY KEY (run_id, frame_index, rank)
        );
        CREATE INDEX frame_matches_image ON frame_matches (image_id);
        CREATE TABLE segments (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            start_frame INTEGER NOT NULL,
            end_frame INTEGER NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            peak_score REAL NOT NULL,
            mean_score REAL NOT NULL,
            frames INTEGER NOT NULL
        );
        CREATE INDEX segments_run ON segments (run_id, start_frame);
        CREATE INDEX segments_image ON segments (image_id);
        """
    )


def _run_owners(db: Database) -> None:
    """Who runs a run: process id, host and a heartbeat, so that a run whose process is gone
    shows as interrupted (and can be resumed) instead of running forever."""
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        ALTER TABLE runs ADD COLUMN host TEXT;
        ALTER TABLE runs ADD COLUMN heartbeat TEXT;
        """
    )


def _run_result_chunks(db: Database) -> None:
    """Each batch of a run's results also as one row of arrays (little-endian BLOBs), so that a
    long run loads in one read of a few hundred rows instead of a million (the per-frame tables
    stay, for SQL). Existing runs get one chunk each, made from their per-frame rows."""
    db.executescript(
        """
        CREATE TABLE run_chunks (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            frames INTEGER NOT NULL,
            k INTEGER NOT NULL,
            frame_index BLOB NOT NULL,
            time_s BLOB NOT NULL,
            source_frame BLOB NOT NULL,
            image_ids BLOB NOT NULL,
            scores BLOB NOT NULL
        );
        CREATE INDEX run_chunks_run ON run_chunks (run_id, id);
        """
    )
    from .chunks import chunk_row, results_from_rows

    for (run_id,) in db.execute("SELECT id FROM runs").fetchall():
        rows = db.execute(
            """
            SELECT f.frame_index, f.time_s, f.source_frame, coalesce(m.image_id, -1), m.score
            FROM run_frames f
            LEFT JOIN frame_matches m ON m.run_id = f.run_id AND m.frame_index = f.frame_index
            WHERE f.run_id = ? ORDER BY f.frame_index, m.rank
            """,
            (run_id,),
        ).fetchall()
        if rows:
            results = results_from_rows([tuple(r) for r in rows])
            db.execute(
                "INSERT INTO run_chunks (run_id, frames, k, frame_index, time_s, source_frame, image_ids, scores) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, *chunk_row(results)),
            )


def _image_name_keys(db: Database) -> None:
    """Each image's file name, case-folded, in its own column, in the path index: the name filter
    of a 1M-image collection scans that index with SQL's ``instr`` instead of calling Python per
    row (3 s → 0.3 s)."""
    from .records import name_key

    db.execute("ALTER TABLE images ADD COLUMN name_key TEXT")
    rows = db.execute("SELECT id, path FROM images").fetchall()
    db.conn.executemany("UPDATE images SET name_key = ? WHERE id = ?", [(name_key(p), i) for i, p in rows])
    # the path index also carries the key: a filtered page walks paths in order and tests
    # names without reading a row
    db.execute("DROP INDEX images_collection_path")
    db.execute("CREATE INDEX images_collection_path ON images (collection_id, path, sha256, name_key)")


def _run_regions(db: Database) -> None:
    """The best region of each frame of a run made with regions (``match --regions``): the image
    found in part of the frame, its score and its box in frame pixels (left, top, right, bottom)."""
    db.executescript(
        """
        CREATE TABLE run_regions (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            frame_index INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            score REAL NOT NULL,
            x0 REAL NOT NULL,
            y0 REAL NOT NULL,
            x1 REAL NOT NULL,
            y1 REAL NOT NULL,
            PRIMARY KEY (run_id, frame_index)
        );
        CREATE INDEX run_regions_image ON run_regions (image_id);
        """
    )


def _vector_indexes(db: Database) -> None:
    """Approximate-search indexes beside the database, and the log that keeps them in step.

    ``vector_indexes`` names, per set of vectors (a collection's images, or the cached frames
    of one embedding key), the index file that holds them and the last change it includes
    (``seq``). While a set has such a row, triggers write every added, changed or removed
    vector of it to ``vector_changes`` in the same transaction as the change itself, so no
    crash can lose one: opening an index replays what came after its ``seq`` (see
    :mod:`db.vectors`).

    Cached frames get a stable integer id (the key of their vector in an index): the table is
    rebuilt with ``id INTEGER PRIMARY KEY`` (its rows keep their values), and an index on the
    embedding key for counting and listing a set.
    """
    db.executescript(
        """
        CREATE TABLE frame_embeddings_new (
            id INTEGER PRIMARY KEY,
            video_sha256 TEXT NOT NULL,
            embed_key TEXT NOT NULL,
            frame_index INTEGER NOT NULL,
            time_s REAL NOT NULL,
            dim INTEGER NOT NULL,
            dtype TEXT NOT NULL DEFAULT 'float32',
            vector BLOB NOT NULL,
            UNIQUE (video_sha256, embed_key, frame_index)
        );
        INSERT INTO frame_embeddings_new (video_sha256, embed_key, frame_index, time_s, dim, dtype, vector)
            SELECT video_sha256, embed_key, frame_index, time_s, dim, dtype, vector FROM frame_embeddings;
        DROP TABLE frame_embeddings;
        ALTER TABLE frame_embeddings_new RENAME TO frame_embeddings;
        CREATE INDEX frame_embeddings_key ON frame_embeddings (embed_key, id);

        CREATE TABLE vector_indexes (
            kind TEXT NOT NULL CHECK (kind IN ('images', 'frames')),
            scope TEXT NOT NULL,
            file TEXT,
            seq INTEGER NOT NULL DEFAULT 0,
            count INTEGER NOT NULL DEFAULT 0,
            dim INTEGER NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (kind, scope)
        );
        CREATE TABLE vector_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            scope TEXT NOT NULL,
            item_id INTEGER NOT NULL,
            removed INTEGER NOT NULL
        );
        CREATE INDEX vector_changes_scope ON vector_changes (kind, scope, seq);

        CREATE TRIGGER image_vector_added AFTER INSERT ON image_embeddings
        WHEN EXISTS (SELECT 1 FROM vector_indexes v JOIN images i ON v.kind = 'images'
                     AND v.scope = CAST(i.collection_id AS TEXT) WHERE i.id = NEW.image_id)
        BEGIN
            INSERT INTO vector_changes (kind, scope, item_id, removed)
            SELECT 'images', CAST(collection_id AS TEXT), NEW.image_id, 0 FROM images WHERE id = NEW.image_id;
        END;
        CREATE TRIGGER image_vector_removed AFTER DELETE ON images
        WHEN EXISTS (SELECT 1 FROM vector_indexes WHERE kind = 'images'
                     AND scope = CAST(OLD.collection_id AS TEXT))
        BEGIN
            INSERT INTO vector_changes (kind, scope, item_id, removed)
            VALUES ('images', CAST(OLD.collection_id AS TEXT), OLD.id, 1);
        END;
        CREATE TRIGGER frame_vector_added AFTER INSERT ON frame_embeddings
        WHEN EXISTS (SELECT 1 FROM vector_indexes WHERE kind = 'frames' AND scope = NEW.embed_key)
        BEGIN
            INSERT INTO vector_changes (kind, scope, item_id, removed) VALUES ('frames', NEW.embed_key, NEW.id, 0);
        END;
        CREATE TRIGGER frame_vector_changed AFTER UPDATE OF vector ON frame_embeddings
        WHEN EXISTS (SELECT 1 FROM vector_indexes WHERE kind = 'frames' AND scope = NEW.embed_key)
        BEGIN
            INSERT INTO vector_changes (kind, scope, item_id, removed) VALUES ('frames', NEW.embed_key, NEW.id, 0);
        END;
        CREATE TRIGGER frame_vector_removed AFTER DELETE ON frame_embeddings
        WHEN EXISTS (SELECT 1 FROM vector_indexes WHERE kind = 'frames' AND scope = OLD.embed_key)
        BEGIN
            INSERT INTO vector_changes (kind, scope, item_id, removed) VALUES ('frames', OLD.embed_key, OLD.id, 1);
        END;

        CREATE TABLE library_videos (
            video_sha256 TEXT NOT NULL,
            embed_key TEXT NOT NULL,
            sampling TEXT NOT NULL,
            frames INTEGER NOT NULL,
            complete INTEGER NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (video_sha256, embed_key)
        );
        """
    )


def _image_collection_index(db: Database) -> None:
    """A narrow index of images by collection, for counting them: ``count(*)`` walked the widest
    index (paths, hashes and names: 118 MB of a 1M-image collection, read into the memory of
    every dashboard that showed the counts); this one is about 11 bytes an image."""
    db.execute("CREATE INDEX images_collection ON images (collection_id)")


def _run_region_chunks(db: Database) -> None:
    """Each batch of a run's regions also as one row of arrays (little-endian BLOBs), as results
    are (:func:`_run_result_chunks`): a 2-hour region run's 216,000 rows took 0.45 s to read. The
    per-frame table stays, for SQL. Existing runs get one chunk each, made from their rows."""
    db.executescript(
        """
        CREATE TABLE run_region_chunks (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            frames INTEGER NOT NULL,
            frame_index BLOB NOT NULL,
            image_ids BLOB NOT NULL,
            scores BLOB NOT NULL,
            boxes BLOB NOT NULL
        );
        CREATE INDEX run_region_chunks_run ON run_region_chunks (run_id, id);
        """
    )
    from .chunks import region_chunk_row
    from .records import FrameRegions

    for (run_id,) in db.execute("SELECT DISTINCT run_id FROM run_regions").fetchall():
        rows = db.execute(
            "SELECT frame_index, image_id, score, x0, y0, x1, y1 FROM run_regions "
            "WHERE run_id = ? ORDER BY frame_index",
            (run_id,),
        ).fetchall()
        table = np.array([tuple(r) for r in rows], np.float64)
        regions = FrameRegions(
            table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3:]
        )
        db.execute(
            "INSERT INTO run_region_chunks (run_id, frames, frame_index, image_ids, scores, boxes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, *region_chunk_row(regions)),
        )


def _frame_counts(db: Database) -> None:
    """Cached frames counted per video and embedding key, kept by triggers in the same
    transaction as the frames: the video library listed its videos, and Home its total, by
    walking every cached frame's key (0.7–1.0 s from a cold cache at 200,000 frames, 100 hours).
    Upserts of a cached frame are updates, so only real inserts count."""
    db.executescript(
        """
        CREATE TABLE frame_counts (
            video_sha256 TEXT NOT NULL,
            embed_key TEXT NOT NULL,
            frames INTEGER NOT NULL,
            PRIMARY KEY (video_sha256, embed_key)
        ) WITHOUT ROWID;
        INSERT INTO frame_counts (video_sha256, embed_key, frames)
            SELECT video_sha256, embed_key, count(*) FROM frame_embeddings GROUP BY video_sha256, embed_key;
        CREATE TRIGGER frame_counted AFTER INSERT ON frame_embeddings
        BEGIN
            INSERT INTO frame_counts (video_sha256, embed_key, frames) VALUES (NEW.video_sha256, NEW.embed_key, 1)
            ON CONFLICT (video_sha256, embed_key) DO UPDATE SET frames = frames + 1;
        END;
        CREATE TRIGGER frame_uncounted AFTER DELETE ON frame_embeddings
        BEGIN
            UPDATE frame_counts SET frames = frames - 1
            WHERE video_sha256 = OLD.video_sha256 AND embed_key = OLD.embed_key;
            DELETE FROM frame_counts
            WHERE video_sha256 = OLD.video_sha256 AND embed_key = OLD.embed_key AND frames <= 0;
        END;
        """
    )


def _image_file_stamps(db: Database) -> None:
    """Each image's file size and modification time when it was last read: indexing a folder again
    knows an unchanged file without reading it (it hashed every file: hundreds of GB a night for
    an archive of photos). Images indexed before have none, and are hashed once more."""
    db.execute("ALTER TABLE images ADD COLUMN size_bytes INTEGER")
    db.execute("ALTER TABLE images ADD COLUMN mtime_ns INTEGER")


def _video_file_stamps(db: Database) -> None:
    """Each video's file modification time when it was last hashed (its size is stored already):
    a video whose file is as stored keeps its identity without being read whole again."""
    db.execute("ALTER TABLE videos ADD COLUMN mtime_ns INTEGER")


def _collection_versions(db: Database) -> None:
    """A collection's content version, bumped by triggers (in the same transaction) whenever an
    image becomes searchable, gets a new embedding or is removed, and the version each run
    searched: a batch skipped every video matched before even after images were added, so a new
    poster was never looked for in them. Runs made before are taken to have searched the
    collection as it is now unless one of its images is as new as the run or newer (removals
    left no trace); each collection's newest image is found once (a per-run scan of its images
    would be minutes at a million images and a thousand runs)."""
    db.executescript(
        """
        ALTER TABLE collections ADD COLUMN content_version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN collection_version INTEGER;
        CREATE TEMP TABLE newest_image AS
            SELECT c.id AS collection_id, max(i.added) AS added
            FROM collections c LEFT JOIN images i ON i.collection_id = c.id GROUP BY c.id;
        UPDATE runs SET collection_version = 0
        WHERE collection_id IS NOT NULL AND coalesce(
            (SELECT n.added >= runs.created FROM newest_image n WHERE n.collection_id = runs.collection_id), 0
        ) = 0;
        DROP TABLE newest_image;
        CREATE TRIGGER collection_image_added AFTER INSERT ON image_embeddings
        BEGIN
            UPDATE collections SET content_version = content_version + 1
            WHERE id = (SELECT collection_id FROM images WHERE id = NEW.image_id);
        END;
        CREATE TRIGGER collection_image_changed AFTER UPDATE OF vector ON image_embeddings
        BEGIN
            UPDATE collections SET content_version = content_version + 1
            WHERE id = (SELECT collection_id FROM images WHERE id = NEW.image_id);
        END;
        CREATE TRIGGER collection_image_removed AFTER DELETE ON images
        BEGIN
            UPDATE collections SET content_version = content_version + 1 WHERE id = OLD.collection_id;
        END;
        """
    )


def _run_revisions(db: Database) -> None:
    """Each run's revision, bumped whenever its stored results change in place after they were
    written (searched again, resumed, an image of its collection removed): a viewer that caches a
    run by when it finished showed a removed image on, where another process had removed it."""
    db.execute("ALTER TABLE runs ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: list[Callable[[Database], None]] = [
    _collections_and_images,
    _videos_and_frame_cache,
    _runs_and_results,
    _run_owners,
    _run_result_chunks,
    _image_name_keys,
    _run_regions,
    _vector_indexes,
    _image_collection_index,
    _run_region_chunks,
    _frame_counts,
    _image_file_stamps,
    _video_file_stamps,
    _collection_versions,
    _run_revisions,
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    """The schema version recorded in the file (0 for a new, empty database)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: Database, *, target: int | None = None) -> list[str]:
    """Apply the pending migrations, up to ``target``.

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that also records the new
    version, and the version is re-read inside it, so two processes opening a new file at
    once do not both apply the same migration.

    Args:
        db: the database; must not be inside a transaction.
        target: the version to stop at (tests use it to build older files); default latest.

    Returns:
        The names of the migrations applied; empty when the file was up to date.

    Raises:
        SchemaTooNewError: the file has a version this code does not know.
    """
    latest = len(MIGRATIONS)
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ValueError(f"target must be between 0 and {latest}, not {target}")
    applied: list[str] = []
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)
            if version > latest:
                raise SchemaTooNewError(
                    f"This index file has schema version {version}, but this version of "
                    f"webssl-lens only knows up to {latest}. It was written by a newer "
                    "webssl-lens: upgrade, or use a different index file."
                )
            if version >= target:
                db.execute("ROLLBACK")
                return applied
            migration = MIGRATIONS[version]
            migration(db)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(migration.__name__.lstrip("_"))
