"""Searching a collection: nearest images to a query image or to an image of the collection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.features import FeatureExtractor, l2_normalize
from core.matching import top_k
from db import EmbeddingMatrix, Index


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
