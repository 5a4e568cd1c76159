"""What a model is known by before its weights load: where it comes from, the device and precision
it runs in, its preprocessing and shapes, and the cache keys they make.

Reading it takes a model's config files only (:func:`core.model.loading.describe_model`): work that
turns out to be done already (videos indexed or matched before) is found without the weights,
and :class:`core.model.on_demand.ModelOnDemand` loads them only when something is left to embed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.lazy import torch
from core.model.precision import PRECISIONS, dtype_of
from core.model.preprocess import Preprocessing
from core.model.source import ModelSource


def embed_key(model_id: str, precision: str, preprocessing: Preprocessing) -> str:
    """The cache key of frame embeddings made with this model, precision and preprocessing."""
    raw = f"{model_id}|{precision}|{preprocessing.key}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def sibling_embed_keys(model_id: str, preprocessing: Preprocessing) -> list[str]:
    """The cache keys of a model and preprocessing in every precision: embeddings of the same
    model in another precision are comparable (cosine ≥ 0.99 to fp32), so a search of cached
    frames (the video library) uses them all."""
    return [embed_key(model_id, p, preprocessing) for p in PRECISIONS if p != "auto"]


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What a model's config files say: its preprocessing and the shapes of its tokens."""

    preprocessing: Preprocessing
    hidden_size: int
    num_layers: int
    patch_size: int
    num_register_tokens: int


@dataclass(frozen=True, slots=True)
class ModelSetup:
    """A model as its config files and this machine describe it.

    Attributes:
        precision: resolved, never ``auto``. Where ``auto`` chose int8, the loaded model confirms
            it: int8 that fails its check falls back to a float precision
            (:func:`core.model.precision.apply_precision`), and the loaded model's setup says so.
        requested: what the caller asked for (``auto`` allows that fallback).
    """

    source: ModelSource
    device: torch.device
    precision: str
    shape: ModelShape
    requested: str

    @property
    def preprocessing(self) -> Preprocessing:
        return self.shape.preprocessing

    @property
    def hidden_size(self) -> int:
        return self.shape.hidden_size

    @property
    def num_layers(self) -> int:
        return self.shape.num_layers

    @property
    def patch_size(self) -> int:
        return self.shape.patch_size

    @property
    def num_register_tokens(self) -> int:
        return self.shape.num_register_tokens

    @property
    def model_id(self) -> str:
        """What a collection is bound to: the Hub id (with revision) or the folder's path."""
        return self.source.label

    @property
    def dtype(self) -> torch.dtype:
        return dtype_of(self.precision)

    def embed_key(self, preprocessing: Preprocessing | None = None) -> str:
        """Cache key of frame embeddings: model, revision, precision and preprocessing."""
        return embed_key(self.model_id, self.precision, preprocessing or self.preprocessing)

    def sibling_embed_keys(self) -> list[str]:
        """The cache keys of this model and preprocessing in every precision
        (:func:`sibling_embed_keys`)."""
        return sibling_embed_keys(self.model_id, self.preprocessing)
