"""Collections and their images: thumbnails, embeddings, indexing failures.

A collection is bound to one model: its id, its preprocessing settings and the length of its
embeddings. :func:`check_model` is the one rule that decides whether a model may write to or
be matched against a collection; every caller asks it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .chunks import forget_images_in_chunks
from .errors import CollectionExistsError, InvalidNameError, ModelMismatchError, NotFoundError
from .records import Collection, EmbeddingMatrix, ImageAdded, ImageRecord, IndexFailure, NewImage, name_key
from .store import Store, decode_vectors, fspath, json_ids, now, record

_COLLECTION_SELECT = """
SELECT c.id, c.name, c.model_id, c.preprocessing, c.embed_dim, c.created, c.content_version,
    (SELECT count(*) FROM images i WHERE i.collection_id = c.id) AS image_count,
    (SELECT count(*) FROM index_failures f WHERE f.collection_id = c.id) AS failure_count
FROM collections c
"""
_IMAGE_COLUMNS = "id, collection_id, path, sha256, width, height, added"


def check_name(name: str) -> str:
    """A collection name with surrounding spaces removed.

    Raises:
        InvalidNameError: the name is empty or blank (a ValueError too).
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError(f"A collection name must not be empty or blank, got {name!r}: give it a name.")
    return name.strip()


def check_model(
    collection: Collection,
    model_id: str,
    preprocessing: str | None = None,
    embed_dim: int | None = None,
) -> None:
    """Refuse a model that differs from the one the collection is bound to.

    Args:
        model_id: the model's label (Hub id with ``@revision``, or a folder's path).
        preprocessing: its preprocessing settings as JSON; None to skip the comparison (for
            a check before the model is loaded).
        embed_dim: the length of its embeddings; None to skip the comparison.

    Raises:
        ModelMismatchError: names every difference and what to do.
    """
    differences = []
    if collection.model_id != model_id:
        differences.append(f"model {collection.model_id!r}, not {model_id!r}")
    if preprocessing is not None and json.loads(collection.preprocessing) != json.loads(preprocessing):
        differences.append(f"other preprocessing settings ({collection.preprocessing}, not {preprocessing})")
    if embed_dim is not None and collection.embed_dim != int(embed_dim):
        differences.append(f"embedding size {collection.embed_dim}, not {embed_dim}")
    if differences:
        raise ModelMismatchError(
            f"Collection {collection.name!r} is bound to {'; '.join(differences)}. Leave the model "
            f"unset to use the collection's own model ({collection.model_id}), or use a collection "
            f"built with {model_id!r}."
        )


def _check_model_fields(model_id: str, preprocessing: str, embed_dim: int) -> None:
    if not model_id:
        raise ValueError("model_id must not be empty")
    try:
        json.loads(preprocessing)
    except (TypeError, ValueError) as err:
        raise ValueError(f"preprocessing must be a JSON string, got {preprocessing!r}") from err
    if int(embed_dim) < 1:
        raise ValueError(f"embed_dim must be positive, not {embed_dim}")


class Collections(Store):
    """Collections, images, thumbnails, embeddings and failures (part of :class:`db.Index`)."""

    # -- collections ---------------------------------------------------------------------------
    def create_collection(self, name: str, model_id: str, preprocessing: str, embed_dim: int) -> Collection:
        """Create an empty collection bound to one model.

        Args:
            name: unique name; leading and trailing spaces are dropped.
            model_id: the model every image of the collection is embedded with.
            preprocessing: the model's preprocessing settings, as a JSON string.
            embed_dim: the length of the model's embeddings.

        Raises:
            ValueError: empty name or model id, preprocessing that is not JSON, embed_dim < 1.
            CollectionExistsError: the name is taken.
        """
        name = check_name(name)
        _check_model_fields(model_id, preprocessing, embed_dim)
        with self.transaction() as conn:
            if self._collection_or_none(name) is not None:
                raise CollectionExistsError(
                    f"A collection named {name!r} already exists. Pick another name, "
                    "or add the images to the existing collection."
                )
            cursor = conn.execute(
                "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, model_id, preprocessing, int(embed_dim), now()),
            )
            assert cursor.lastrowid is not None
            return self.get_collection_by_id(cursor.lastrowid)

    def _collection_or_none(self, name: str) -> Collection | None:
        row = self._row(_COLLECTION_SELECT + "WHERE c.name = ?", (name,))
        return record(Collection, row) if row else None

    def find_collection(self, name: str) -> Collection | None:
        """The collection called ``name`` (spaces around it ignored), or None."""
        return self._collection_or_none(check_name(name))

    def get_collection(self, name: str) -> Collection:
        """The collection called ``name``.

        Raises:
            NotFoundError: no such collection; the message lists the existing ones.
        """
        collection = self._collection_or_none(check_name(name))
        if collection is None:
            names = [row["name"] for row in self._rows("SELECT name FROM collections ORDER BY name")]
            existing = f"Existing: {', '.join(names)}" if names else "There are no collections yet."
            raise NotFoundError(f"No collection named {name!r}. {existing}")
        return collection

    def get_collection_by_id(self, collection_id: int) -> Collection:
        """The collection with that id. Raises NotFoundError."""
        row = self._row(_COLLECTION_SELECT + "WHERE c.id = ?", (int(collection_id),))
        if row is None:
            raise NotFoundError(f"No collection with id {collection_id}")
        return record(Collection, row)

    def get_or_create_collection(
        self, name: str, model_id: str, preprocessing: str, embed_dim: int
    ) -> Collection:
        """The collection called ``name``, created if it does not exist.

        Raises:
            ModelMismatchError: it exists but is bound to another model, preprocessing or
                embedding size (see :func:`check_model`).
        """
        name = check_name(name)
        _check_model_fields(model_id, preprocessing, embed_dim)
        existing = self._collection_or_none(name)
        if existing is None:
            try:
                return self.create_collection(name, model_id, preprocessing, embed_dim)
            except CollectionExistsError:  # created by another connection just now
                existing = self.get_collection(name)
        check_model(existing, model_id, preprocessing, embed_dim)
        return existing

    def list_collections(self) -> list[Collection]:
        """All collections, with their image and failure counts, ordered by name."""
        return [record(Collection, row) for row in self._rows(_COLLECTION_SELECT + "ORDER BY c.name")]

    def rename_collection(self, old: str, new: str) -> Collection:
        """Rename a collection. Raises NotFoundError, CollectionExistsError or ValueError."""
        new = check_name(new)
        with self.transaction() as conn:
            collection = self.get_collection(old)
            if new != collection.name and self._collection_or_none(new) is not None:
                raise CollectionExistsError(
                    f"Cannot rename {old!r} to {new!r}: a collection named {new!r} already exists."
                )
            conn.execute("UPDATE collections SET name = ? WHERE id = ?", (new, collection.id))
            return self.get_collection_by_id(collection.id)

    def delete_collection(self, name: str) -> None:
        """Delete a collection with its images, embeddings, failures, runs and their results.
        Raises NotFoundError, or RunInProgressError while one of its runs is being written."""
        with self.transaction() as conn:
            collection = self.get_collection(name)
            self.check_not_written("r.collection_id = ?", (collection.id,))  # type: ignore[attr-defined]
            # first the approximate index (its record stops the triggers logging every image)
            self.drop_vector_index("images", str(collection.id))  # type: ignore[attr-defined]
            conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    # -- images --------------------------------------------------------------------------------
    def known_hashes(self, collection_id: int) -> dict[str, int]:
        """``sha256 -> image id`` for every image of the collection."""
        sha, ids = self._columns(
            "SELECT sha256, id FROM images WHERE collection_id = ?", (int(collection_id),), 2
        )
        return dict(zip(sha, ids, strict=True))

    def known_paths(self, collection_id: int) -> dict[str, list[tuple[int, str]]]:
        """``path -> [(image id, sha256), ...]`` for every image of the collection.

        A path has one image, except where an older version crashed between storing a changed
        file's new content and removing its old one: indexing repairs that (see
        :mod:`core.matching.indexing`).
        """
        ids, paths, sha = self._columns(
            "SELECT id, path, sha256 FROM images WHERE collection_id = ? ORDER BY id",
            (int(collection_id),),
            3,
        )
        known: dict[str, list[tuple[int, str]]] = {}
        for image_id, path, digest in zip(ids, paths, sha, strict=True):
            known.setdefault(path, []).append((image_id, digest))
        return known

    def add_images(self, collection_id: int, items: Sequence[NewImage]) -> list[int]:
        """:meth:`insert_images`, returning only the image id of each item."""
        return [added.image_id for added in self.insert_images(collection_id, items)]

    def insert_images(self, collection_id: int, items: Sequence[NewImage]) -> list[ImageAdded]:
        """Add a batch of images with their thumbnails and embeddings, in one transaction.

        An item whose content (sha256) is already in the collection is skipped (another
        indexer may have added it since it was classified): :attr:`ImageAdded.inserted` says
        which were really added. The images an item ``replaces`` (its file's earlier content)
        are removed in the same transaction, so a crash never leaves both. Failures recorded
        earlier for the items' paths are cleared. Embeddings are stored L2-normalised.

        Returns:
            For each item, in order: its image id (the existing one for a skipped item) and
            whether it was inserted.

        Raises:
            NotFoundError: no such collection.
            ValueError: an embedding does not have the collection's ``embed_dim`` values, or
                holds NaN or infinity. Nothing of the batch is stored.
        """
        items = list(items)
        with self.transaction() as conn:
            collection = self.get_collection_by_id(collection_id)
            vectors = _normalised_embeddings(items, collection)
            existing = {
                row["sha256"]: row["id"]
                for row in conn.execute(
                    "SELECT sha256, id FROM images WHERE collection_id = ? "
                    "AND sha256 IN (SELECT value FROM json_each(?))",
                    (collection.id, json.dumps([item.sha256 for item in items])),
                )
            }
            added = now()
            results = []
            for item, vector in zip(items, vectors, strict=True):
                image_id = existing.get(item.sha256)
                inserted = image_id is None
                if inserted:
                    cursor = conn.execute(
                        "INSERT INTO images (collection_id, path, name_key, sha256, width, height, added, "
                        "size_bytes, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            collection.id,
                            fspath(item.path),
                            name_key(fspath(item.path)),
                            item.sha256,
                            item.width,
                            item.height,
                            added,
                            item.size_bytes,
                            item.mtime_ns,
                        ),
                    )
                    image_id = cursor.lastrowid
                    if item.thumbnail:
                        conn.execute(
                            "INSERT INTO thumbnails (image_id, jpeg) VALUES (?, ?)",
                            (image_id, item.thumbnail),
                        )
                    conn.execute(
                        "INSERT INTO image_embeddings (image_id, model_id, dim, dtype, vector) "
                        "VALUES (?, ?, ?, 'float32', ?)",
                        (image_id, collection.model_id, collection.embed_dim, vector.tobytes()),
                    )
                    existing[item.sha256] = image_id
                results.append(ImageAdded(int(image_id), inserted))
            kept = {added.image_id for added in results}
            stale = sorted({old for item in items for old in item.replaces} - kept)
            if stale:
                _delete_images(conn, collection.id, stale)
            conn.execute(
                "DELETE FROM index_failures WHERE collection_id = ? "
                "AND path IN (SELECT value FROM json_each(?))",
                (collection.id, json.dumps([fspath(item.path) for item in items])),
            )
            return results

    def add_failures(self, collection_id: int, failures: Sequence[tuple[str, str]]) -> None:
        """Record files that could not be indexed, as ``(path, reason)``; replaces older ones."""
        created = now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO index_failures (collection_id, path, reason, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (collection_id, path) "
                "DO UPDATE SET reason = excluded.reason, created = excluded.created",
                [(int(collection_id), fspath(path), reason, created) for path, reason in failures],
            )

    def list_failures(self, collection_id: int) -> list[IndexFailure]:
        """The files of the collection that failed to index, ordered by path."""
        rows = self._rows(
            "SELECT collection_id, path, reason, created FROM index_failures "
            "WHERE collection_id = ? ORDER BY path",
            (int(collection_id),),
        )
        return [record(IndexFailure, row) for row in rows]

    def count_images(self, collection_id: int, name_filter: str | None = None) -> int:
        """How many images the collection has (whose file name contains ``name_filter``)."""
        where, params = _image_filter(collection_id, name_filter)
        row = self._row(f"SELECT count(*) AS n FROM images WHERE {where}", params)
        assert row is not None
        return int(row["n"])

    def list_images(
        self,
        collection_id: int,
        *,
        offset: int = 0,
        limit: int = 100,
        name_filter: str | None = None,
    ) -> list[ImageRecord]:
        """A page of the collection's images, ordered by path.

        Args:
            name_filter: keep images whose file name contains this, ignoring case.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, not {offset} and {limit}")
        where, params = _image_filter(collection_id, name_filter)
        # the page's ids first, skipping through the (collection, path) index alone; then the
        # rows: a deep page of 1M images skips index entries, not table rows (4x faster)
        (ids,) = self._columns(
            f"SELECT id FROM images WHERE {where} ORDER BY path, id LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
            1,
        )
        found = self.get_images(ids)
        return [found[i] for i in ids if i in found]

    def get_image(self, image_id: int) -> ImageRecord:
        """One image. Raises NotFoundError."""
        row = self._row(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (int(image_id),))
        if row is None:
            raise NotFoundError(f"No image with id {image_id}")
        return record(ImageRecord, row)

    def get_images(self, image_ids: Sequence[int] | np.ndarray) -> dict[int, ImageRecord]:
        """``id -> ImageRecord`` for those of ``image_ids`` that exist, in one query."""
        rows = self._rows(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id IN (SELECT value FROM json_each(?))",
            (json_ids(image_ids),),
        )
        return {row["id"]: record(ImageRecord, row) for row in rows}

    def image_paths(self, image_ids: Sequence[int] | np.ndarray) -> dict[int, str]:
        """``id -> path`` for those of ``image_ids`` that exist, in one lean query."""
        ids, paths = self._columns(
            "SELECT id, path FROM images WHERE id IN (SELECT value FROM json_each(?))",
            (json_ids(image_ids),),
            2,
        )
        return dict(zip(ids, paths, strict=True))

    def get_thumbnails(self, image_ids: Sequence[int] | np.ndarray) -> dict[int, bytes]:
        """``id -> JPEG bytes`` for those of ``image_ids`` that have a thumbnail, in one query."""
        ids, jpegs = self._columns(
            "SELECT image_id, jpeg FROM thumbnails WHERE image_id IN (SELECT value FROM json_each(?))",
            (json_ids(image_ids),),
            2,
        )
        return dict(zip(ids, jpegs, strict=True))

    def remove_images(self, collection_id: int, image_ids: Sequence[int] | np.ndarray) -> int:
        """Remove images (and their embeddings, matches, segments); returns how many."""
        with self.transaction() as conn:
            return _delete_images(conn, int(collection_id), image_ids)

    def file_stamps(self, collection_id: int) -> dict[int, tuple[int, int]]:
        """``image id -> (file size, modification time in ns)`` as they were when each image's
        file was last read (images indexed by an older version have none)."""
        ids, sizes, times = self._columns(
            "SELECT id, size_bytes, mtime_ns FROM images WHERE collection_id = ? AND mtime_ns IS NOT NULL",
            (int(collection_id),),
            3,
        )
        return {i: (size, t) for i, size, t in zip(ids, sizes, times, strict=True)}

    def stamp_images(self, collection_id: int, stamps: Sequence[tuple[int, int, int]]) -> None:
        """Record ``(image id, file size, modification time in ns)``: the file was read again and
        its content is the same."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE images SET size_bytes = ?, mtime_ns = ? WHERE id = ? AND collection_id = ?",
                [(int(size), int(t), int(i), int(collection_id)) for i, size, t in stamps],
            )

    def move_images(self, collection_id: int, moves: Sequence[tuple[int, str]]) -> None:
        """Give images of the collection new paths, as ``(image id, path)``: their files moved.
        Ids, embeddings, thumbnails and the runs' matches stay; a failure recorded at a new path
        goes (the file there is indexed now)."""
        cid = int(collection_id)
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE images SET path = ?, name_key = ? WHERE id = ? AND collection_id = ?",
                [(fspath(path), name_key(fspath(path)), int(image_id), cid) for image_id, path in moves],
            )
            conn.execute(
                "DELETE FROM index_failures WHERE collection_id = ? "
                "AND path IN (SELECT value FROM json_each(?))",
                (cid, json.dumps([fspath(path) for _, path in moves])),
            )

    def missing_images(
        self, collection_id: int, exists: Callable[[str], bool] = os.path.exists
    ) -> list[tuple[int, str]]:
        """``(image id, path)`` of the images whose file no longer exists, by path."""
        ids, paths = self._columns(
            "SELECT id, path FROM images WHERE collection_id = ? ORDER BY path", (int(collection_id),), 2
        )
        # Checking the files happens outside the lock: it can take a while on a slow disk.
        return [(image_id, path) for image_id, path in zip(ids, paths, strict=True) if not exists(path)]

    def prune_missing(self, collection_id: int, exists: Callable[[str], bool] = os.path.exists) -> list[str]:
        """Remove the images whose file no longer exists; returns their paths."""
        missing = self.missing_images(collection_id, exists)
        self.remove_images(collection_id, [image_id for image_id, _ in missing])
        return [path for _, path in missing]

    # -- embeddings ----------------------------------------------------------------------------
    def load_embeddings(self, collection_id: int) -> EmbeddingMatrix:
        """The collection's embedding matrix, rows ordered by image id.

        Read in chunks into one preallocated float32 matrix (see :meth:`Store._vector_rows`):
        peak memory is the matrix plus a few MB. The array is writable. An empty collection
        gives a 0 x embed_dim matrix.
        """
        collection = self.get_collection_by_id(collection_id)
        image_ids, vectors = self.load_vectors(  # type: ignore[attr-defined]  # from db.vectors
            "images", str(collection.id), collection.embed_dim
        )
        return EmbeddingMatrix(image_ids=image_ids, vectors=vectors, model_id=collection.model_id)

    def get_embeddings(self, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The normalised float32 embeddings of ``image_ids``, in the order given.

        Raises:
            NotFoundError: an id has no embedding.
        """
        wanted = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        # No ORDER BY: sorting in SQL would copy the blobs through a temporary B-tree.
        keys, dims, dtypes, blobs = self._columns(
            "SELECT j.key, e.dim, e.dtype, e.vector FROM json_each(?) j "
            "JOIN image_embeddings e ON e.image_id = j.value",
            (json_ids(wanted),),
            4,
        )
        if len(keys) != len(wanted):
            found = np.zeros(len(wanted), dtype=bool)
            found[list(keys)] = True
            raise NotFoundError(f"No embedding for image ids {sorted(set(wanted[~found].tolist()))}")
        vectors = decode_vectors(dims, dtypes, blobs, dims[0] if dims else 0)
        order = np.asarray(keys, dtype=np.int64)
        if np.any(order[1:] < order[:-1]):
            vectors = vectors[np.argsort(order)]
        return vectors


def _delete_images(conn, collection_id: int, image_ids: Sequence[int] | np.ndarray) -> int:
    """Delete images (their embeddings, thumbnails and per-frame matches go by cascade) and
    drop them from the result chunks of the collection's runs; returns how many. Inside the
    caller's transaction, so both representations of a run's results change together."""
    cursor = conn.execute(
        "DELETE FROM images WHERE collection_id = ? AND id IN (SELECT value FROM json_each(?))",
        (collection_id, json_ids(image_ids)),
    )
    if cursor.rowcount:
        forget_images_in_chunks(conn, collection_id, image_ids)
    return cursor.rowcount


def _image_filter(collection_id: int, name_filter: str | None) -> tuple[str, list[Any]]:
    where, params = "collection_id = ?", [int(collection_id)]
    if name_filter and name_filter.strip():
        where += " AND instr(name_key, ?) > 0"  # a covering index: no Python call per row
        params.append(name_filter.strip().casefold())
    return where, params


def _normalised_embeddings(items: list[NewImage], collection: Collection) -> np.ndarray:
    """The items' embeddings as an (N, dim) little-endian float32 array with unit rows."""
    dim = collection.embed_dim
    for item in items:
        size = np.size(item.embedding)
        if size != dim:
            raise ValueError(
                f"{item.path}: the embedding has {size} values, but collection "
                f"{collection.name!r} (model {collection.model_id!r}) stores {dim}"
            )
    if not items:
        return np.zeros((0, dim), dtype="<f4")
    matrix = np.stack([np.asarray(item.embedding, dtype=np.float64).reshape(dim) for item in items])
    if not np.isfinite(matrix).all():
        bad = items[int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])]
        raise ValueError(f"{bad.path}: the embedding contains NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype("<f4")
