"""The approximate index of a large vector set: an HNSW graph (usearch) in a file beside the
database, kept in step with SQLite, the source of truth.

One mechanism serves a collection's images and the video library's cached frames (a
:class:`VectorSet` of either kind, see :mod:`db.vectors`).

- **Opening** (:func:`open_index`, any reader): the file is memory-mapped (``view``), so a
  million vectors open in milliseconds and only the pages a search touches are read. The
  changes logged in SQLite after the file was written are applied on top: keys they touch are
  hidden from the graph's answers, and their current vectors (if they still exist) are
  searched exactly beside it. A file that is missing, unreadable or holds another count than
  its record says is not used (the caller falls back to exact search, and the next writer
  rebuilds it): the two can never disagree silently.
- **Keeping it up to date** (:func:`sync`, writers: ``index``, ``match``, ``index-videos``):
  a set without a usable file gets one built (minutes per million vectors on 2 cores: the
  one long wait, once); a file with many pending changes (:data:`MERGE_FROM`) gets them added
  to and removed from its graph (no rebuild) and is written anew. Files are written under a
  new name and renamed into place before SQLite records them, in one transaction that also
  drops the log they include.
- **Scores are exact**: the graph proposes :data:`OVERSAMPLE` times more candidates than asked
  for, and they are re-scored with their float32 vectors from SQLite; only which images come
  back is approximate (recall measured against exact search in the benchmark).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import WebSSLError
from core.model.features import l2_normalize
from core.progress import ProgressCallback, ProgressReporter
from db import Index, NotFoundError, VectorIndexRecord

logger = logging.getLogger(__name__)

# Measured on clustered 1024-d sets (bench, scale section): with M = 16 and construction depth 64
# the graph builds 2-3x faster but some cluster members become unreachable (recall@5 0.82-0.87
# at 50k, whatever the search depth); M = 32 and depth 256 reach 0.98-0.99. int8 storage builds
# about 2x faster than fp16 at the same recall once candidates are re-scored exactly.
CONNECTIVITY = 32  # HNSW "M": graph edges per node
EXPANSION_ADD = 256  # "efConstruction": search depth while inserting
EXPANSION_SEARCH = 1024  # "ef": query search depth (recall@5 on 100k: 0.984 at 512, 0.997)
STORAGE = "i8"  # vectors in the graph as int8 (distances only rank candidates: scores come from SQLite)
OVERSAMPLE = 4  # candidates asked of the graph per result wanted (re-scored exactly)
MAX_PROPOSALS = 1 << 18
"""Candidates one search may read from SQLite to re-score (1 GiB of 1024-d float32): a batch of
queries asking for more is searched in parts."""
CHECK_DEPTH = 16  # search depth of the after-insert check that every vector can be found (those
# missed are searched again 4× deeper, and the rest at full depth: 1,024-d random vectors, 20,000
# added to 40,000, missed 1,435 at 16, 6 at 64, none at 128)
CHECK_K = 4  # ... among how many results (near-identical vectors may come first)
MERGE_FROM = 10_000
"""Pending logged changes from which a writer merges them into the file (below, readers apply
them exactly: at most this many vectors read from SQLite when a set is opened)."""
_SUFFIX = ".usearch"


class VectorIndexError(WebSSLError):
    """The approximate index could not be built or written."""


@dataclass(frozen=True, slots=True)
class VectorSet:
    """What one approximate index holds (see :mod:`db.vectors`)."""

    kind: str  # "images" or "frames"
    scope: str  # the collection id, or the embedding key
    dim: int

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.scope}"


def _new_graph(dim: int):
    from usearch.index import Index as Graph

    return Graph(
        ndim=dim,
        metric="ip",
        dtype=STORAGE,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def _add(graph, keys: np.ndarray, vectors: np.ndarray) -> int:
    """Insert ``keys``, then make sure each can be found; the number re-inserted.

    usearch's concurrent insertion leaves a few vectors that no search reaches (measured: 5-7 of
    400 to 20,000 random vectors with 2 threads, none with 1): such an image could never be
    matched. Each new vector searches for itself at a shallow depth; the few that miss are
    checked at full depth, and those still unreachable are inserted again, one thread (60,000
    clustered 256-d vectors in chunks of 20,000, AMD EPYC, 2 threads: 7 unreachable without the
    check, 0 with it, for 19% more build time).
    """
    graph.add(keys, vectors, threads=_threads())
    lost = _unreachable(graph, keys, vectors)
    if len(lost):
        rows = np.isin(keys, lost)
        graph.remove(lost)
        graph.add(keys[rows], vectors[rows], threads=1)
        still = _unreachable(graph, keys[rows], vectors[rows])
        logger.info("re-inserted %d unreachable vectors (%d still unreachable)", len(lost), len(still))
    return len(lost)


def _unreachable(graph, keys: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Those ``keys`` that a search for their own vector does not return."""

    def missing(rows: np.ndarray, depth: int) -> np.ndarray:
        graph.expansion_search = depth
        try:
            found = graph.search(vectors[rows], CHECK_K, threads=_threads())
        finally:
            graph.expansion_search = EXPANSION_SEARCH
        hits = np.atleast_2d(np.asarray(found.keys, dtype=np.int64))
        return rows[~(hits == keys[rows, None]).any(axis=1)]

    if not len(keys):
        return keys
    rows = np.arange(len(keys))
    for depth in (CHECK_DEPTH, 4 * CHECK_DEPTH, EXPANSION_SEARCH):  # each deeper pass for fewer
        if len(rows):
            rows = missing(rows, depth)
    return keys[rows]


def fetch_vectors(index: Index, vset: VectorSet, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(keys found, unit float32 vectors)`` of those ``keys`` that still exist, from SQLite
    (cached frame embeddings are stored as computed, not normalised)."""
    found, vectors = index.vectors_by_key(vset.kind, keys, vset.dim)
    return found, l2_normalize(vectors)


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


# -- searching ----------------------------------------------------------------------------------
class ApproximateSearch:
    """A vector set searched through its index file plus the changes logged after it.

    Args:
        graph: the index file, memory-mapped (read-only).
        hidden: keys the graph must not return (changed or removed after it was written).
        extra_keys, extra_vectors: vectors added or changed after it (searched exactly).
        fetch: ``fetch(keys) -> (keys found, float32 vectors)`` from SQLite, for re-scoring.
    """

    def __init__(self, index: Index, vset: VectorSet, graph, hidden: np.ndarray, extra) -> None:
        from core.matching.search import ExactSearch

        self._index = index
        self.vset = vset
        self._graph = graph
        self._hidden = np.unique(hidden)
        self._extra = ExactSearch(*extra)
        self._count = len(graph) - int(graph.contains(self._hidden).sum()) + len(self._extra)

    def __len__(self) -> int:
        return self._count

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        rows = max(1, MAX_PROPOSALS // max(1, min(k, self._count) * OVERSAMPLE))
        if len(q) > rows:  # each candidate is read from SQLite: keep a part's reads bounded
            parts = [self.top_k(q[start : start + rows], k) for start in range(0, len(q), rows)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        want = min(k, self._count)
        keys = np.full((len(q), want), -1, np.int64)
        scores = np.full((len(q), want), np.nan, np.float32)
        if want == 0 or not len(q):
            return keys, scores
        ask = min(len(self._graph), want * OVERSAMPLE + len(self._hidden))
        found = self._graph.search(q, ask, threads=_threads())
        candidates = np.atleast_2d(np.asarray(found.keys, dtype=np.int64))
        # one query gives Matches (no counts), several BatchMatches
        counts = np.atleast_1d(np.asarray(getattr(found, "counts", len(found.keys))))
        valid = np.arange(candidates.shape[1])[None, :] < counts[:, None]
        valid &= ~np.isin(candidates, self._hidden)
        unique = np.unique(candidates[valid])
        got, vectors = fetch_vectors(self._index, self.vset, unique)
        if len(got) < len(unique):  # removed since: never returned (the log will say so next time)
            valid &= np.isin(candidates, got)
        rows = np.searchsorted(got, candidates.clip(min=got[0] if len(got) else 0))
        extra_keys, extra_scores = self._extra.top_k(q, want)
        for i in range(len(q)):
            cand = candidates[i][valid[i]]
            cand_scores = vectors[rows[i][valid[i]]] @ q[i] if len(cand) else np.zeros(0, np.float32)
            all_keys = np.concatenate([cand, extra_keys[i][extra_keys[i] >= 0]])
            all_scores = np.concatenate([cand_scores, extra_scores[i][extra_keys[i] >= 0]])
            best = np.argsort(-all_scores, kind="stable")[:want]
            keys[i, : len(best)] = all_keys[best]
            scores[i, : len(best)] = all_scores[best]
        return keys, scores


def _file_of(index: Index, record: VectorIndexRecord | None) -> Path | None:
    folder = index.vector_dir
    if record is None or record.file is None or folder is None:
        return None
    return folder / record.file


def index_file(index: Index, vset: VectorSet) -> Path | None:
    """The set's index file where SQLite records one and it is on disk (not yet checked against
    SQLite: :func:`open_index` does that)."""
    path = _file_of(index, index.vector_index(vset.kind, vset.scope))
    return path if path is not None and path.is_file() else None


def _load(path: Path, *, view: bool):
    from usearch.index import Index as Graph

    graph = Graph.restore(str(path), view=view)
    if graph is None:
        raise ValueError("not a usearch index")
    # the file does not keep the search depths: a restored graph would use usearch's defaults
    # (64 for a query: recall@5 0.96 instead of 0.99 on 1M clustered vectors)
    graph.expansion_search = EXPANSION_SEARCH
    graph.expansion_add = EXPANSION_ADD
    return graph


def open_index(index: Index, vset: VectorSet) -> ApproximateSearch | None:
    """The set's index file with the logged changes after it, or None when there is no usable
    file (missing, unreadable, or not what SQLite recorded: see the module docstring)."""
    with index.snapshot():
        record = index.vector_index(vset.kind, vset.scope)
        path = _file_of(index, record)
        if record is None or path is None:
            return None
        changes = index.vector_changes(vset.kind, vset.scope, record.seq)
        count = index.count_vectors(vset.kind, vset.scope)
        live = _live_keys(changes)
        extra = fetch_vectors(index, vset, live)
    try:
        graph = _load(path, view=True)
    except (OSError, RuntimeError, ValueError) as err:
        logger.warning("the approximate index %s cannot be read (%s): not used", path, err)
        return None
    if len(graph) != record.count or graph.ndim != vset.dim or record.dim != vset.dim:
        logger.warning(
            "the approximate index %s holds %d vectors of %d values, its record says %d of %d: not used",
            path,
            len(graph),
            graph.ndim,
            record.count,
            record.dim,
        )
        return None
    found = ApproximateSearch(index, vset, graph, changes.item_ids, extra)
    if len(found) != count:
        logger.warning(
            "the approximate index of %s with its %d logged changes gives %d vectors, the database has "
            "%d: not used",
            vset.label,
            len(changes),
            len(found),
            count,
        )
        return None
    return found


def _live_keys(changes) -> np.ndarray:
    """Keys whose last logged change is an addition (their current vector is in SQLite)."""
    if not len(changes):
        return np.zeros(0, np.int64)
    # the last change of each key decides: reverse, then the first occurrence
    keys = changes.item_ids[::-1]
    removed = changes.removed[::-1]
    unique, first = np.unique(keys, return_index=True)
    return unique[~removed[first]]


# -- keeping it up to date ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SyncReport:
    """What :func:`sync` did: ``"built"``, ``"merged"``, ``"current"`` or ``"busy"``."""

    action: str
    vectors: int = 0
    changes: int = 0
    elapsed_s: float = 0.0


@contextlib.contextmanager
def _exclusive(folder: Path, vset: VectorSet) -> Iterator[bool]:
    """One writer per set at a time (another process building it: the caller skips)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{vset.label}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sync(
    index: Index,
    vset: VectorSet,
    *,
    rebuild: bool = False,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Build the set's index file if it has none usable, or merge many pending changes into it.

    Raises:
        VectorIndexError: the file cannot be written (disk full, read-only folder).
    """
    folder = index.vector_dir
    if folder is None:
        return SyncReport("current")
    with _exclusive(folder, vset) as mine:
        if not mine:
            logger.info("another process is updating the approximate index of %s", vset.label)
            return SyncReport("busy")
        record = index.vector_index(vset.kind, vset.scope)
        if not rebuild and open_index(index, vset) is not None:
            assert record is not None
            pending = index.vector_changes(vset.kind, vset.scope, record.seq)
            if len(pending) < MERGE_FROM:
                return SyncReport("current", record.count, len(pending))
            return _merge(index, vset, record, progress)
        return _build(index, vset, progress)


def _build(index: Index, vset: VectorSet, progress: ProgressCallback | None) -> SyncReport:
    start = index.track_vectors(vset.kind, vset.scope, vset.dim)  # from here on, changes are logged
    total = index.count_vectors(vset.kind, vset.scope)
    reporter = ProgressReporter("building the approximate index", "vectors", total, progress)
    logger.info("building the approximate index of %s (%d vectors)", vset.label, total)
    graph = _new_graph(vset.dim)
    done = 0
    reporter.update(0)
    for keys, vectors in index.iter_vectors(vset.kind, vset.scope, vset.dim, chunk=20_000):
        _add(graph, keys, l2_normalize(vectors))
        done += len(keys)
        reporter.update(min(done, total))
    changes = _apply(index, vset, graph, start)
    report = _save(index, vset, graph, changes, start)
    return SyncReport("built", len(graph), len(changes), reporter.elapsed_s) if report else SyncReport("busy")


def _merge(
    index: Index, vset: VectorSet, record: VectorIndexRecord, progress: ProgressCallback | None
) -> SyncReport:
    path = _file_of(index, record)
    assert path is not None
    reporter = ProgressReporter("updating the approximate index", "changes", None, progress)
    graph = _load(path, view=False)
    changes = _apply(index, vset, graph, record.seq)
    logger.info("merged %d changes into the approximate index of %s", len(changes), vset.label)
    _save(index, vset, graph, changes, record.seq)
    return SyncReport("merged", len(graph), len(changes), reporter.elapsed_s)


def _apply(index: Index, vset: VectorSet, graph, after: int):
    """Apply the changes logged after ``after`` to a writable graph (idempotent: a key is removed
    first, then added again if its last change is an addition)."""
    changes = index.vector_changes(vset.kind, vset.scope, after)
    if len(changes):
        touched = np.unique(changes.item_ids)
        present = touched[np.asarray(graph.contains(touched), bool)]
        if len(present):
            graph.remove(present)
        keys, vectors = fetch_vectors(index, vset, _live_keys(changes))
        if len(keys):
            _add(graph, keys, vectors)
    return changes


def _save(index: Index, vset: VectorSet, graph, changes, after: int) -> bool:
    """Write the graph under a new name, check it against SQLite, record it; False when the set
    changed in a way that does not add up (then nothing is recorded and the next sync rebuilds)."""
    folder = index.vector_dir
    assert folder is not None
    seq = int(changes.seq[-1]) if len(changes) else after
    name = f"{vset.label}-{secrets.token_hex(4)}-{seq}{_SUFFIX}"
    tmp = folder / (name + ".tmp")
    try:
        graph.save(str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
        _fsync_dir(folder)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise VectorIndexError(
            f"Cannot write the approximate index to {folder} ({err.strerror or err}): free some space "
            "or make the folder writable; searches stay exact until then."
        ) from err
    with index.snapshot():
        expected = index.count_vectors(vset.kind, vset.scope)
        later = index.vector_changes(vset.kind, vset.scope, seq)
    if not len(later) and expected != len(graph):
        logger.warning(
            "the approximate index of %s holds %d vectors, the database %d: not recorded, it will be rebuilt",
            vset.label,
            len(graph),
            expected,
        )
        index.remove_vector_file(name)
        return False
    try:
        replaced = index.record_vector_file(vset.kind, vset.scope, name, seq, len(graph))
    except NotFoundError:  # the set was dropped meanwhile (its collection deleted)
        index.remove_vector_file(name)
        return False
    if replaced:
        index.remove_vector_file(replaced)
    _remove_leftovers(index, folder, vset)
    return True


def _remove_leftovers(index: Index, folder: Path, vset: VectorSet) -> None:
    """Files of this set that no record names (left by a crash between write and record)."""
    in_use = index.vector_files_in_use()
    for path in folder.glob(f"{vset.label}-*{_SUFFIX}*"):
        if path.name not in in_use:
            index.remove_vector_file(path.name)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
