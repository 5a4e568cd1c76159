"""Cosine search: the best images of a collection for frames, query images or a stored image.

Exact search is one BLAS product plus ``torch.topk`` (:func:`top_k`); the other functions
shape its input and output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.model.features import FeatureExtractor, l2_normalize
from db import EmbeddingMatrix, Index


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


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: an image of the collection and its cosine similarity to the query."""

    image_id: int
    score: float


def search(
    matrix: EmbeddingMatrix, queries: np.ndarray, k: int, *, exclude: int | None = None
) -> list[list[Hit]]:
    """Top ``k`` images of ``matrix`` for every query vector (normalised here), best first.

    Args:
        matrix: a collection's embeddings (``Index.load_embeddings``; keep it cached).
        queries: Q×D embeddings.
        k: results per query.
        exclude: an image id to leave out (the query image itself, for neighbours).
    """
    q = l2_normalize(np.atleast_2d(queries))
    pos, scores = top_k(q, matrix.vectors, k + (exclude is not None))
    ids = matrix.image_ids[pos] if pos.size else pos
    out = []
    for row_ids, row_scores in zip(ids, scores, strict=True):
        hits = [Hit(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if int(i) != exclude]
        out.append(hits[:k])
    return out


def neighbours(index: Index, matrix: EmbeddingMatrix, image_id: int, k: int) -> list[Hit]:
    """The ``k`` images most similar to a stored image of the same collection (itself excluded)."""
    return search(matrix, index.get_embeddings([image_id]), k, exclude=image_id)[0]


def search_images(extractor: FeatureExtractor, matrix: EmbeddingMatrix, images: list[np.ndarray], k: int):
    """Embed query images (RGB uint8) with the collection's model and search."""
    return search(matrix, extractor.cls_embeddings(images), k)
