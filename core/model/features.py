"""Features of a DINOv2-family ViT: global [CLS] embedding, patch-token grid, hidden layers.

>>> fx = FeatureExtractor.load("facebook/webssl-dino300m-full2b-224")   # doctest: +SKIP
>>> feats = fx.embed([rgb_image], patches=True)                           # doctest: +SKIP
>>> feats.cls.shape, feats.patches.shape                                   # doctest: +SKIP
((1, 1024), (1, 16, 16, 1024))
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from core.lazy import inference_mode, torch
from core.model.loading import LoadedModel, load_model
from core.model.preprocess import Preprocessing, preprocess_images
from core.model.setup import ModelSetup
from core.model.source import CLI_FOLDER_OPTION

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Features:
    """Features of a batch of B images.

    Attributes:
        cls: B×D float32 [CLS] embeddings (final layer, after the final layer norm).
        patches: B×rows×cols×D float32 final-layer patch tokens, when requested.
        layers: L×B×rows×cols×D float32 patch tokens of every transformer layer (1..L), passed
            through the model's final layer norm (as timm's ``forward_intermediates(norm=True)``),
            so that every layer lives in the space of the output features; when requested.
    """

    cls: np.ndarray
    patches: np.ndarray | None = None
    layers: np.ndarray | None = None


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


def default_batch_size(device: torch.device, precision: str = "fp32") -> int:
    """Images per forward pass: large on a GPU (64 in half precision, 32 in fp32) to fill it;
    8 on a CPU, where larger batches gain nothing and only delay results."""
    if device.type == "cuda":
        return 64 if precision in ("fp16", "bf16") else 32
    return 8


class FeatureExtractor:
    """A loaded backbone plus its preprocessing: images or frames in, features out."""

    def __init__(self, loaded: LoadedModel) -> None:
        setup = loaded.setup
        self.loaded = loaded
        self.setup: ModelSetup = setup  # its precision is the one the model runs in
        self.model = loaded.model
        self.device = setup.device
        self.precision = setup.precision
        self.preprocessing: Preprocessing = setup.preprocessing
        self.hidden_size = setup.hidden_size
        self.num_layers = setup.num_layers
        self.patch_size = setup.patch_size
        self.batch_size = default_batch_size(setup.device, setup.precision)
        self._prefix = 1 + setup.num_register_tokens  # CLS + registers precede the patch tokens
        self._cls_path = _has_cls_only_path(loaded.model)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | None = None,
        *,
        revision: str | None = None,
        device: str = "auto",
        precision: str = "fp32",
        folder_option: str = CLI_FOLDER_OPTION,
        setup: ModelSetup | None = None,
    ) -> FeatureExtractor:
        """Load a model (see :func:`core.model.loading.load_model`) and wrap it."""
        return cls(
            load_model(
                model,
                revision=revision,
                device=device,
                precision=precision,
                folder_option=folder_option,
                setup=setup,
            )
        )

    # -- identity ------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """What a collection is bound to: the Hub id (with revision) or the folder's path."""
        return self.setup.model_id

    @property
    def input_dtype(self) -> torch.dtype:
        return self.setup.dtype

    def embed_key(self, preprocessing: Preprocessing | None = None) -> str:
        """Cache key of frame embeddings: model, revision, precision and preprocessing."""
        return self.setup.embed_key(preprocessing)

    def sibling_embed_keys(self) -> list[str]:
        """The cache keys of this model and preprocessing in every precision
        (:func:`core.model.setup.sibling_embed_keys`)."""
        return self.setup.sibling_embed_keys()

    # -- inference -----------------------------------------------------------------------
    def preprocess(
        self, images: Sequence[np.ndarray], preprocessing: Preprocessing | None = None
    ) -> torch.Tensor:
        """RGB uint8 images → model input on the CPU (float32)."""
        return preprocess_images(images, preprocessing or self.preprocessing)

    @inference_mode
    def forward(self, pixel_values: torch.Tensor, *, patches: bool = False, layers: bool = False) -> Features:
        """Run the model on already-preprocessed input (B×3×H×W).

        On a GPU the copy is asynchronous when ``pixel_values`` is in pinned memory (the
        match pipeline pins its batches in the decoding thread), and half-precision models run
        under ``torch.autocast`` so that softmax and layer norms compute in float32.
        """
        b, _, h, w = pixel_values.shape
        rows, cols = h // self.patch_size, w // self.patch_size
        # copy first (asynchronous from pinned memory), then convert on the device
        x = pixel_values.to(self.device, non_blocking=True).to(self.input_dtype)
        if not patches and not layers and self._cls_path:
            with self._autocast():
                cls = _cls_only_forward(self.model, x)
            return Features(cls=cls.float().cpu().numpy())
        with self._autocast():
            out = self.model(pixel_values=x, output_hidden_states=layers)
        tokens = out.last_hidden_state
        cls_emb = tokens[:, 0].float().cpu().numpy()
        patch_grid = None
        if patches:
            patch_grid = tokens[:, self._prefix :].float().reshape(b, rows, cols, -1).cpu().numpy()
        layer_grid = None
        if layers:
            hidden = torch.stack(out.hidden_states[1:])[:, :, self._prefix :]  # L×B×P×D, no embeddings
            layer_grid = (
                self._final_norm(hidden).float().reshape(len(hidden), b, rows, cols, -1).cpu().numpy()
            )
        return Features(cls=cls_emb, patches=patch_grid, layers=layer_grid)

    @inference_mode
    def early_patches(self, pixel_values: torch.Tensor, blocks: int) -> torch.Tensor:
        """Patch tokens after the first ``blocks`` transformer blocks (no final norm), as a
        B×rows×cols×D float32 tensor on the CPU; the rest of the model is not run.

        Early tokens still describe their own patch more than the whole image, so the same
        content gives similar tokens in a video frame and in a collection image (region mode
        compares them; see :mod:`core.matching.regions`). An int8 model computes them in
        OpenVINO too (:meth:`core.model.int8.OpenVINOBackbone.early_tokens`).
        """
        b, _, h, w = pixel_values.shape
        rows, cols = h // self.patch_size, w // self.patch_size
        in_openvino = getattr(self.model, "early_tokens", None)  # int8: beside the int8 model
        if in_openvino is not None:
            hidden = in_openvino(pixel_values, int(blocks))
        else:
            from core.model.early import EarlyBlocks

            with self._autocast():
                hidden = EarlyBlocks.run(self.model, pixel_values.to(self.device, non_blocking=True), blocks)
        return hidden[:, self._prefix :].float().reshape(b, rows, cols, -1).cpu()

    def _final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """The model's final layer norm applied to intermediate tokens (a plain standardisation
        for models without one)."""
        norm = getattr(self.model, "layernorm", None)
        if isinstance(norm, torch.nn.Module):
            return norm(tokens)
        logger.warning("model has no final LayerNorm; standardising each layer's tokens instead")
        return torch.nn.functional.layer_norm(tokens.float(), (tokens.shape[-1],))

    def _autocast(self):
        if self.device.type == "cuda" and self.precision in ("fp16", "bf16"):
            return torch.autocast("cuda", dtype=self.input_dtype)
        return contextlib.nullcontext()

    def embed(
        self,
        images: Sequence[np.ndarray],
        *,
        patches: bool = False,
        layers: bool = False,
        preprocessing: Preprocessing | None = None,
        batch_size: int | None = None,
    ) -> Features:
        """Features of RGB uint8 images (H×W×3), batched."""
        if len(images) == 0:
            d = self.hidden_size
            return Features(cls=np.zeros((0, d), np.float32))
        parts = [
            self.forward(self.preprocess(chunk, preprocessing), patches=patches, layers=layers)
            for chunk in _chunks(images, batch_size or self.batch_size)
        ]
        if len(parts) == 1:
            return parts[0]
        return Features(
            cls=np.concatenate([p.cls for p in parts]),
            patches=None if not patches else np.concatenate([p.patches for p in parts]),
            layers=None if not layers else np.concatenate([p.layers for p in parts], axis=1),
        )

    def cls_embeddings(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """B×D float32 [CLS] embeddings (not normalised)."""
        return self.embed(images, batch_size=batch_size).cls


_LAYER_PARTS = ("norm1", "attention", "layer_scale1", "drop_path", "norm2", "mlp", "layer_scale2")
_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "head_dim", "scaling")


def _has_cls_only_path(model: torch.nn.Module) -> bool:
    """Whether :func:`_cls_only_forward` knows this model's layout (transformers' Dinov2)."""
    try:
        last = model.encoder.layer[-1]
        parts = [getattr(last, name) for name in _LAYER_PARTS]
        parts += [getattr(last.attention, name) for name in _ATTENTION_PARTS]
        return model.embeddings is not None and model.layernorm is not None and bool(parts)
    except (AttributeError, IndexError, TypeError):
        return False


def _cls_only_forward(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Final-layer [CLS] embedding (after the final norm) without the work nobody reads.

    Only the [CLS] token of the last block reaches the output: its attention needs every
    token's keys and values, but queries, attention output and MLP for the [CLS] token alone.
    That skips ~3.5 % of a ViT-L/14 forward at 224 px; the result equals the full forward's
    ``last_hidden_state[:, 0]`` up to float rounding.
    """
    import torch.nn.functional as F

    hidden = model.embeddings(pixel_values)
    *blocks, last = model.encoder.layer
    for block in blocks:
        hidden = block(hidden, None)
    attn = last.attention
    b = hidden.shape[0]
    normed = last.norm1(hidden)
    heads = (b, -1, attn.num_attention_heads, attn.head_dim)
    q = attn.q_proj(normed[:, :1]).view(heads).transpose(1, 2)
    k = attn.k_proj(normed).view(heads).transpose(1, 2)
    v = attn.v_proj(normed).view(heads).transpose(1, 2)
    ctx = F.scaled_dot_product_attention(q, k, v, scale=attn.scaling)  # B×H×1×hd
    ctx = attn.o_proj(ctx.transpose(1, 2).reshape(b, 1, -1))
    cls = hidden[:, :1] + last.drop_path(last.layer_scale1(ctx))
    cls = cls + last.drop_path(last.layer_scale2(last.mlp(last.norm2(cls))))
    return model.layernorm(cls)[:, 0]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
