"""Cosine search: the best images of a collection for frames, query images or a stored image.

Exact search is one BLAS product plus ``torch.topk`` (:func:`top_k`). Large sets of vectors
(a collection of a million images, the cached frames of thousands of hours of video) are
searched with an approximate index instead (:mod:`core.matching.ann`). Which one a set gets is
decided here, in one place (:func:`use_approximate`, :func:`open_vectors`): exact below
:data:`APPROXIMATE_FROM` vectors, where it is fast enough, approximate from there on. Both
give the same :class:`VectorSearch`: keys and exact cosine scores, best first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.lazy import torch
from core.model.features import FeatureExtractor, l2_normalize
from core.progress import ProgressCallback
from db import Collection, EmbeddingMatrix, Index

logger = logging.getLogger(__name__)

APPROXIMATE_FROM = 100_000
"""Sets of at least this many vectors are searched with the approximate index; smaller ones
exactly. Measured (bench, ``search`` section): exact top-5 at batch 8 costs about 1 ms per
frame per 10k vectors on 2 cores, so it reaches the 10 ms per frame budget near 100k; the
approximate index stays near 1 ms per frame from 100k to 1M, but needs a build (minutes per
million vectors) and is not exact."""


def top_k(
    queries: np.ndarray, vectors: np.ndarray, k: int, *, max_block: int = 1 << 26
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` rows of ``vectors`` for every query, by dot product (cosine for unit rows).

    Exact search: one BLAS matrix product per block of queries (multi-threaded), then
    ``torch.topk``, which selects k of a million scores about 10× faster than
    ``numpy.argpartition``. Both arrays are used in place (no copy when they are contiguous
    float32), so a collection matrix loaded once serves every batch of a run.

    Args:
        queries: Q×D float32, L2-normalised.
        vectors: N×D float32, L2-normalised (a collection's embedding matrix).
        k: how many per query; fewer columns come back when N < k.
        max_block: bound on the Q×N score block held at once (64M floats = 256 MiB: 64
            frames against a million images in one pass over the matrix).

    Returns:
        (positions Q×k' int64 into ``vectors``, scores Q×k' float32), best first.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if q.ndim != 2 or v.ndim != 2 or (len(v) and q.shape[1] != v.shape[1]):
        raise ValueError(f"shape mismatch: queries {q.shape}, vectors {v.shape}")
    kk = min(k, len(v))
    if kk == 0 or len(q) == 0:
        return np.zeros((len(q), kk), np.int64), np.zeros((len(q), kk), np.float32)
    pos = np.empty((len(q), kk), np.int64)
    sc = np.empty((len(q), kk), np.float32)
    qt, vt = torch.from_numpy(q), torch.from_numpy(v)
    rows = max(1, max_block // max(1, len(v)))
    with torch.inference_mode():
        for start in range(0, len(q), rows):
            scores = torch.mm(qt[start : start + rows], vt.T)
            best, where = torch.topk(scores, kk, dim=1, largest=True, sorted=True)
            pos[start : start + rows] = where.numpy()
            sc[start : start + rows] = best.numpy()
    return pos, sc


class VectorSearch(Protocol):
    """A searchable set of keyed vectors (exact or approximate)."""

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` keys for every L2-normalised query: ``(keys Q×k' int64, cosine Q×k'
        float32)``, best first, k' = min(k, len); -1 and NaN where a query has fewer."""
        ...

    def __len__(self) -> int: ...


@dataclass(frozen=True, slots=True, eq=False)
class ExactSearch:
    """Exact search over vectors held in memory (L2-normalised rows, one key per row)."""

    keys: np.ndarray  # int64 (N,)
    vectors: np.ndarray  # float32 (N, D)

    @classmethod
    def of(cls, matrix: EmbeddingMatrix) -> ExactSearch:
        return cls(matrix.image_ids, matrix.vectors)

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        positions, scores = top_k(queries, self.vectors, k)
        return (self.keys[positions] if positions.size else positions), scores

    def __len__(self) -> int:
        return int(self.keys.shape[0])


BULK_QUERIES = 1_000
"""Frames searched at once from which a search is a bulk one (:data:`BULK_APPROXIMATE_FROM`)."""
BULK_APPROXIMATE_FROM = 300_000
"""Bulk searches (a stored run's frames searched again, a re-match: thousands of frames at once)
are exact below this many vectors, over the matrix loaded once: at 100k images, blocks of 2,048
frames took 1.40–1.95 ms a frame exactly (after 1.3 s to load the matrix) against 5.7–6.9 ms
through the approximate index, which reads every candidate's vector from SQLite to score it
exactly (AMD EPYC Zen 4, 2 cores). Exact costs grow with the set, about that much per 100k: they
reach the approximate index's near 300k, where the matrix is 1.2 GB at d = 1024."""


def use_approximate(count: int, queries: int = 1) -> bool:
    """The rule: a set of ``count`` vectors is searched approximately (see :data:`APPROXIMATE_FROM`),
    or, for ``queries`` frames at once (:data:`BULK_QUERIES` or more), from :data:`BULK_APPROXIMATE_FROM`."""
    return count >= (BULK_APPROXIMATE_FROM if queries >= BULK_QUERIES else APPROXIMATE_FROM)


def maintain_vectors(
    index: Index, kind: str, scope: str, dim: int, *, progress: ProgressCallback | None = None
) -> int:
    """Bring a large set's approximate index up to date (a writer's job after adding or
    removing vectors): build it when missing (minutes per million vectors), merge pending
    changes when there are many; a set that is small again loses it. Returns the set's size."""
    from core.matching import ann

    count = index.count_vectors(kind, str(scope))
    if index.readonly:
        return count
    if not use_approximate(count):
        if index.vector_index(kind, str(scope)) is not None:
            index.drop_vector_index(kind, str(scope))  # exact search again: no log to keep
        return count
    ann.sync(index, ann.VectorSet(kind, str(scope), int(dim)), progress=progress)
    return count


def open_vectors(
    index: Index,
    kind: str,
    scope: str,
    dim: int,
    *,
    maintain: bool = False,
    progress: ProgressCallback | None = None,
    queries: int = 1,
) -> VectorSearch:
    """A vector set (see :mod:`db.vectors`) ready to search, exact or approximate by its size.

    Args:
        maintain: bring the approximate index up to date first (:func:`maintain_vectors`;
            writable indexes only). Readers search the index file plus the changes after it.
        queries: how many vectors will be searched at once (a bulk search is exact up to a
            larger set, :func:`use_approximate`).
    """
    from core.matching import ann

    vset = ann.VectorSet(kind, str(scope), int(dim))
    if maintain:
        count = maintain_vectors(index, kind, vset.scope, vset.dim, progress=progress)
    else:
        count = index.count_vectors(kind, vset.scope)
    if not use_approximate(count, queries):
        return _exact(index, vset)
    found = ann.open_index(index, vset)
    if found is not None:
        return found
    logger.warning(
        "%s %s has %d vectors but no usable approximate index yet: searching exactly (slow); a command "
        "that writes (index, match, index-videos) builds it",
        kind,
        vset.scope,
        count,
    )
    return _exact(index, vset)


def _exact(index: Index, vset) -> ExactSearch:
    keys, vectors = index.load_vectors(vset.kind, vset.scope, vset.dim)
    if vset.kind == "frames":  # cached frame embeddings are stored as computed, not normalised
        vectors = l2_normalize(vectors)
    return ExactSearch(keys, vectors)


def open_search(
    index: Index,
    collection: Collection,
    *,
    maintain: bool = False,
    progress: ProgressCallback | None = None,
    queries: int = 1,
) -> VectorSearch:
    """A collection's images ready to search (see :func:`open_vectors`)."""
    return open_vectors(
        index,
        "images",
        str(collection.id),
        collection.embed_dim,
        maintain=maintain,
        progress=progress,
        queries=queries,
    )


def has_index_file(index: Index, collection: Collection) -> bool:
    """Whether opening a collection's search would use its approximate index file: the set is
    large enough for one and the file is on disk (:func:`open_search` still checks it against
    SQLite). Without it, a large collection is searched exactly, its whole matrix in memory."""
    from core.matching import ann

    if not use_approximate(collection.image_count):
        return False
    vset = ann.VectorSet("images", str(collection.id), collection.embed_dim)
    return ann.index_file(index, vset) is not None


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: an image of the collection and its cosine similarity to the query."""

    image_id: int
    score: float


def search(
    vectors: VectorSearch | EmbeddingMatrix, queries: np.ndarray, k: int, *, exclude: int | None = None
) -> list[list[Hit]]:
    """Top ``k`` images for every query vector (normalised here), best first.

    Args:
        vectors: a collection ready to search (:func:`open_search`; keep it cached), or its
            embedding matrix.
        queries: Q×D embeddings.
        k: results per query.
        exclude: an image id to leave out (the query image itself, for neighbours).
    """
    found = ExactSearch.of(vectors) if isinstance(vectors, EmbeddingMatrix) else vectors
    ids, scores = found.top_k(l2_normalize(np.atleast_2d(queries)), k + (exclude is not None))
    out = []
    for row_ids, row_scores in zip(ids, scores, strict=True):
        hits = [
            Hit(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0 and i != exclude
        ]
        out.append(hits[:k])
    return out


def neighbours(index: Index, vectors: VectorSearch | EmbeddingMatrix, image_id: int, k: int) -> list[Hit]:
    """The ``k`` images most similar to a stored image of the same collection (itself excluded)."""
    return search(vectors, index.get_embeddings([image_id]), k, exclude=image_id)[0]


def search_images(
    extractor: FeatureExtractor, vectors: VectorSearch | EmbeddingMatrix, images: list[np.ndarray], k: int
):
    """Embed query images (RGB uint8) with the collection's model and search."""
    return search(vectors, extractor.cls_embeddings(images), k)
