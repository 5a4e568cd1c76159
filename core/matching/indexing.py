"""Indexing image files into a collection: incremental, batched, resumable.

Only new content is embedded (by SHA-256); identical files are stored once per collection; a
file whose content is stored under a path that no longer exists was moved, and the image takes
its new path (nothing is decoded or embedded again, and its matches stay). Each batch is
written in one transaction, so a killed run loses at most the batch in flight and the next run
resumes where it stopped. Bad files are recorded with their reason and indexing continues with
the rest. Pruning (:func:`find_missing_files`) shows what it would remove before it removes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ImageLoadError
from core.matching.search import maintain_vectors
from core.media.files import file_sha256
from core.media.images import (
    LoadedImage,
    decode_image_bytes,
    iter_image_files,
    make_thumbnail,
    read_image_file,
)
from core.model.features import FeatureExtractor
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter, announce
from db import Collection, Index, NewImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing call did."""

    collection: str
    added: tuple[str, ...] = ()
    already_indexed: tuple[str, ...] = ()
    duplicates: tuple[tuple[str, str], ...] = ()  # (path, path of the identical file already stored)
    moved: tuple[tuple[str, str], ...] = ()  # (path, the path it was stored under, now gone)
    failed: tuple[tuple[str, str], ...] = ()  # (path, reason)
    elapsed_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.added) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        counts = (
            f"{self.collection}: {len(self.added)} added, {len(self.already_indexed) + len(self.duplicates)} "
            f"already indexed, {f'{len(self.moved)} moved, ' if self.moved else ''}{len(self.failed)} failed"
        )
        seen = self.added or self.already_indexed or self.duplicates or self.moved or self.failed
        return counts if seen else f"{counts}: no image files found in the given paths"


@dataclass(slots=True)
class _Item:
    path: str
    kind: str  # "new" | "known" | "duplicate" | "moved" | "failed"
    image: LoadedImage | None = None
    thumbnail: bytes = b""
    reason: str = ""
    replaces: tuple[int, ...] = ()  # image ids of this path's earlier content, to remove
    image_id: int = -1  # "moved": the stored image that takes this path; "known": the one it is
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) as read, to store with the image


@dataclass(slots=True)
class _Tally:
    added: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _canonical(path: Path) -> str:
    return str(path.expanduser().resolve())


def ensure_collection(index: Index, name: str, extractor: FeatureExtractor) -> Collection:
    """The collection ``name`` bound to this extractor's model (created if needed).

    Raises:
        db.ModelMismatchError: the collection exists with another model or preprocessing.
    """
    return index.get_or_create_collection(
        name, extractor.model_id, extractor.preprocessing.to_json(), extractor.hidden_size
    )


def index_images(
    index: Index,
    collection: str,
    paths: Iterable[str | os.PathLike],
    extractor: FeatureExtractor | Callable[[], FeatureExtractor],
    *,
    batch_size: int | None = None,
    recursive: bool = True,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> IndexReport:
    """Index image files and folders into ``collection``.

    Args:
        extractor: the model, or a function that loads it. For an existing collection it is
            called only once there is new content to embed (a folder indexed again, or moved,
            needs no model), and the model it gives is checked against the collection's then.

    Raises:
        FileNotFoundError: a given path does not exist.
        db.ModelMismatchError: the collection is bound to another model.
        core.progress.Cancelled: ``cancel`` was set; finished batches are kept.
    """
    found = iter_image_files(paths, recursive=recursive)  # a missing path fails here, before any output
    coll, model = _model_on_demand(index, collection, extractor)
    announce(progress, "finding images")
    files = [_canonical(p) for p in found]
    known_paths = index.known_paths(coll.id)
    stored = {sha: (path, image_id) for path, rows in known_paths.items() for image_id, sha in rows}
    stamps = index.file_stamps(coll.id)  # unchanged files are known by size and time, unread
    reporter = ProgressReporter("indexing", "images", len(files), progress, cancel)
    tally = _Tally()

    def classify() -> Iterator[_Item]:
        seen: dict[str, str] = {}  # sha -> path, for content first met in this call
        for path in files:
            rows = known_paths.get(path, [])
            try:
                stamp = _stamp(path)
                if rows:
                    same = [image_id for image_id, _ in rows if stamps.get(image_id) == stamp]
                    if same:  # as it was when last read (a stale row left by an old crash goes)
                        yield _Item(path, "known", replaces=tuple(i for i, _ in rows if i != same[0]))
                        continue
                    current = file_sha256(path)
                    kept = [image_id for image_id, sha in rows if sha == current]
                    if kept:  # touched, or indexed by an older version: the same content
                        stale = tuple(i for i, _ in rows if i != kept[0])
                        yield _Item(path, "known", replaces=stale, image_id=kept[0], stamp=stamp)
                        continue
                data = read_image_file(path)
                sha = hashlib.sha256(data).hexdigest()
                stale = tuple(image_id for image_id, _ in rows)  # the file's earlier content
                if sha in stored and stored[sha][0] != path:
                    original, image_id = stored[sha]
                    if os.path.exists(original):
                        yield _Item(path, "duplicate", reason=original, replaces=stale)
                    else:  # moved: the image takes this path; a second copy is its duplicate
                        stored[sha] = (path, image_id)
                        yield _Item(
                            path, "moved", reason=original, replaces=stale, image_id=image_id, stamp=stamp
                        )
                    continue
                if sha in seen:
                    yield _Item(path, "duplicate", reason=seen[sha], replaces=stale)
                    continue
                image = decode_image_bytes(data, path, sha256=sha)
            except ImageLoadError as err:
                yield _Item(path, "failed", reason=err.reason)
                continue
            except OSError as err:
                yield _Item(path, "failed", reason=err.strerror or str(err))
                continue
            seen[image.sha256] = path
            yield _Item(
                path, "new", image=image, thumbnail=make_thumbnail(image.rgb), replaces=stale, stamp=stamp
            )

    pending: list[_Item] = []

    def flush() -> None:
        nonlocal pending
        new = [it for it in pending if it.kind == "new"]
        failures = [(it.path, it.reason) for it in pending if it.kind == "failed"]
        inserted: dict[str, bool] = {}
        if new:
            vectors, unusable = _embed(model(), [it.image.rgb for it in new], batch_size)
            records = [
                NewImage(
                    path=it.path,
                    sha256=it.image.sha256,
                    width=it.image.width,
                    height=it.image.height,
                    thumbnail=it.thumbnail,
                    embedding=vec,
                    replaces=it.replaces,
                    size_bytes=it.stamp[0] if it.stamp else None,
                    mtime_ns=it.stamp[1] if it.stamp else None,
                )
                for it, vec, bad in zip(new, vectors, unusable, strict=True)
                if bad is None
            ]
            for it, bad in zip(new, unusable, strict=True):
                if bad is not None:
                    it.kind, it.reason = "failed", bad
                    failures.append((it.path, bad))
            results = index.insert_images(coll.id, records)
            inserted = {rec.path: added.inserted for rec, added in zip(records, results, strict=True)}
        stale = [old for it in pending if it.kind in ("known", "duplicate", "moved") for old in it.replaces]
        if stale:
            index.remove_images(coll.id, stale)
        moved = [(it.image_id, it.path) for it in pending if it.kind == "moved"]
        if moved:
            index.move_images(coll.id, moved)
        restamped = [(it.image_id, *it.stamp) for it in pending if it.kind in ("known", "moved") and it.stamp]
        if restamped:
            index.stamp_images(coll.id, restamped)
        if failures:
            index.add_failures(coll.id, failures)
        for it in pending:
            if it.kind == "new" and inserted.get(it.path, False):
                tally.added.append(it.path)
            elif it.kind in ("known", "new"):  # "new" but another indexer stored it first
                tally.known.append(it.path)
            elif it.kind == "duplicate":
                tally.duplicates.append((it.path, it.reason))
            elif it.kind == "moved":
                tally.moved.append((it.path, it.reason))
                logger.info("moved: %s (was %s)", it.path, it.reason)
            else:
                tally.failed.append((it.path, it.reason))
                logger.info("not indexed: %s: %s", it.path, it.reason)
        pending = []

    reporter.update(0)
    received = 0
    queued = 2 * batch_size if batch_size else LOADER_QUEUE
    for item in background(classify(), maxsize=queued, name="image-loader"):
        pending.append(item)
        received += 1
        if item.kind == "new" and not batch_size:  # the model's own batch size, once it is needed
            batch_size = model().batch_size
        if sum(it.kind == "new" for it in pending) >= (batch_size or 1) or len(pending) >= 256:
            reporter.check_cancelled()
            flush()
            reporter.update(received)
    reporter.check_cancelled()
    flush()
    reporter.update(len(files))
    # a large collection's approximate index: built once, then changes merged now and then
    maintain_vectors(index, "images", str(coll.id), coll.embed_dim, progress=progress)
    report = IndexReport(
        collection=collection,
        added=tuple(tally.added),
        already_indexed=tuple(tally.known),
        duplicates=tuple(tally.duplicates),
        moved=tuple(tally.moved),
        failed=tuple(tally.failed),
        elapsed_s=reporter.elapsed_s,
    )
    logger.info("indexed %s in %.1f s", report.summary(), report.elapsed_s)
    return report


def _stamp(path: str) -> tuple[int, int]:
    """A file's size and modification time: as stored, the file is taken as unchanged (as rsync
    and make do) and not read."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


LOADER_QUEUE = 16
"""Decoded images waiting for the model when no batch size is given (24-megapixel pictures:
about 1 GB)."""


def _model_on_demand(
    index: Index, name: str, extractor: FeatureExtractor | Callable[[], FeatureExtractor]
) -> tuple[Collection, Callable[[], FeatureExtractor]]:
    """The collection (created with the model if new) and a function giving the model, loaded
    on its first call and checked against the collection then."""
    if not callable(extractor):  # a model (or a stand-in for one), not a loader
        return ensure_collection(index, name, extractor), lambda: extractor
    existing = index.find_collection(name)
    if existing is None:
        loaded = extractor()
        return ensure_collection(index, name, loaded), lambda: loaded
    cache: list[FeatureExtractor] = []

    def model() -> FeatureExtractor:
        if not cache:
            loaded = extractor()
            ensure_collection(index, name, loaded)  # db.ModelMismatchError: another model
            cache.append(loaded)
        return cache[0]

    return existing, model


# -- pruning ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MissingFiles:
    """The images of a collection whose files are gone, found before anything is removed."""

    collection: Collection
    images: tuple[tuple[int, str], ...]  # (image id, path), by path

    @property
    def everything(self) -> bool:
        """Every file of the collection is gone: more likely an unmounted drive or a renamed
        folder than deleted files, so removing them needs a second yes."""
        return bool(self.images) and len(self.images) >= self.collection.image_count

    def summary(self) -> str:
        n, total, name = len(self.images), self.collection.image_count, self.collection.name
        if not n:
            return f"all {total} files of {name} are still there"
        if self.everything:
            return (
                f"none of the {total} files of {name} exist any more. Is the drive or folder they are on "
                "mounted? If they moved, index them where they are now: the images take their new paths"
            )
        return f"{n} of {total} files of {name} are gone"


def find_missing_files(index: Index, collection: Collection) -> MissingFiles:
    """The collection's images whose files no longer exist (nothing is removed)."""
    return MissingFiles(collection, tuple(index.missing_images(collection.id)))


def remove_missing_files(index: Index, missing: MissingFiles) -> list[str]:
    """Remove the images found missing, with their embeddings and matches; returns their paths."""
    index.remove_images(missing.collection.id, [image_id for image_id, _ in missing.images])
    return [path for _, path in missing.images]


def _embed(
    extractor: FeatureExtractor, images: list[np.ndarray], batch_size: int
) -> tuple[list[np.ndarray | None], list[str | None]]:
    """CLS embeddings of a batch; when the batch fails, each image alone, so that one image the
    model cannot use never costs its neighbours.

    Returns:
        Per image: its embedding (None if it failed) and the reason it failed (None if not).
    """
    try:
        return list(extractor.cls_embeddings(images, batch_size=batch_size)), [None] * len(images)
    except (RuntimeError, MemoryError, ValueError) as err:
        if len(images) == 1:
            return [None], [f"the model cannot use this image ({type(err).__name__}: {str(err)[:160]})"]
        logger.warning("a batch of %d images failed (%s); embedding them one by one", len(images), err)
    vectors: list[np.ndarray | None] = []
    reasons: list[str | None] = []
    for image in images:
        vec, reason = _embed(extractor, [image], 1)
        vectors += vec
        reasons += reason
    return vectors, reasons
