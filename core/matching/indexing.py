"""Indexing image files into a collection: incremental, batched, resumable.

Only new content is embedded (by SHA-256); identical files are stored once per collection;
each batch is written in one transaction, so a killed run loses at most the batch in flight
and the next run resumes where it stopped. Bad files are recorded with their reason and
indexing continues with the rest.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ImageLoadError
from core.media.files import file_sha256
from core.media.images import LoadedImage, iter_image_files, load_image, make_thumbnail
from core.model.features import FeatureExtractor
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter
from db import Collection, Index, NewImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing call did."""

    collection: str
    added: tuple[str, ...] = ()
    already_indexed: tuple[str, ...] = ()
    duplicates: tuple[tuple[str, str], ...] = ()  # (path, path of the identical file already stored)
    failed: tuple[tuple[str, str], ...] = ()  # (path, reason)
    elapsed_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.added) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.collection}: {len(self.added)} added, {len(self.already_indexed) + len(self.duplicates)} "
            f"already indexed, {len(self.failed)} failed"
        )


@dataclass(slots=True)
class _Item:
    path: str
    kind: str  # "new" | "known" | "duplicate" | "failed"
    image: LoadedImage | None = None
    thumbnail: bytes = b""
    reason: str = ""
    replaces: int | None = None  # image id of this path's previous content


@dataclass(slots=True)
class _Tally:
    added: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
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
    extractor: FeatureExtractor,
    *,
    batch_size: int | None = None,
    recursive: bool = True,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> IndexReport:
    """Index image files and folders into ``collection``.

    Raises:
        FileNotFoundError: a given path does not exist.
        db.ModelMismatchError: the collection is bound to another model.
        core.progress.Cancelled: ``cancel`` was set; finished batches are kept.
    """
    coll = ensure_collection(index, collection, extractor)
    files = [_canonical(p) for p in iter_image_files(paths, recursive=recursive)]
    known_paths = index.known_paths(coll.id)
    known_hashes = index.known_hashes(coll.id)
    hash_to_path = {sha: path for path, sha in known_paths.items()}
    reporter = ProgressReporter("indexing", "images", len(files), progress, cancel)
    batch_size = batch_size or extractor.batch_size
    tally = _Tally()

    def classify() -> Iterator[_Item]:
        seen: dict[str, str] = {}  # sha -> path, for content first met in this call
        for path in files:
            old_sha = known_paths.get(path)
            try:
                if old_sha is not None and file_sha256(path) == old_sha:
                    yield _Item(path, "known")
                    continue
                image = load_image(path)
            except ImageLoadError as err:
                yield _Item(path, "failed", reason=err.reason)
                continue
            except OSError as err:
                yield _Item(path, "failed", reason=err.strerror or str(err))
                continue
            original = hash_to_path.get(image.sha256) or seen.get(image.sha256)
            if original is not None:
                yield _Item(path, "duplicate", reason=original)
                continue
            seen[image.sha256] = path
            replaces = known_hashes.get(old_sha) if old_sha is not None else None
            yield _Item(path, "new", image=image, thumbnail=make_thumbnail(image.rgb), replaces=replaces)

    pending: list[_Item] = []

    def flush() -> None:
        nonlocal pending
        new = [it for it in pending if it.kind == "new"]
        failures = [(it.path, it.reason) for it in pending if it.kind == "failed"]
        if new:
            vectors = extractor.cls_embeddings([it.image.rgb for it in new], batch_size=batch_size)
            records = [
                NewImage(
                    path=it.path,
                    sha256=it.image.sha256,
                    width=it.image.width,
                    height=it.image.height,
                    thumbnail=it.thumbnail,
                    embedding=vec,
                )
                for it, vec in zip(new, vectors, strict=True)
            ]
            index.add_images(coll.id, records)
            stale = [it.replaces for it in new if it.replaces is not None]
            if stale:
                index.remove_images(coll.id, stale)
        if failures:
            index.add_failures(coll.id, failures)
        for it in pending:
            if it.kind == "new":
                tally.added.append(it.path)
            elif it.kind == "known":
                tally.known.append(it.path)
            elif it.kind == "duplicate":
                tally.duplicates.append((it.path, it.reason))
            else:
                tally.failed.append((it.path, it.reason))
                logger.info("not indexed: %s: %s", it.path, it.reason)
        pending = []

    reporter.update(0)
    received = 0
    for item in background(classify(), maxsize=batch_size * 2, name="image-loader"):
        pending.append(item)
        received += 1
        if sum(it.kind == "new" for it in pending) >= batch_size or len(pending) >= 256:
            reporter.check_cancelled()
            flush()
            reporter.update(received)
    reporter.check_cancelled()
    flush()
    reporter.update(len(files))
    return IndexReport(
        collection=collection,
        added=tuple(tally.added),
        already_indexed=tuple(tally.known),
        duplicates=tuple(tally.duplicates),
        failed=tuple(tally.failed),
        elapsed_s=reporter.elapsed_s,
    )
