"""A backbone cut after its first blocks: region mode's early tokens.

:meth:`core.model.features.FeatureExtractor.early_patches` runs it in PyTorch; the int8 path
converts it to OpenVINO (:mod:`core.model.int8`), where it runs beside the int8 model.
"""

from __future__ import annotations

import torch


class EarlyBlocks(torch.nn.Module):
    """A Dinov2 backbone's embeddings and first ``blocks`` transformer blocks (its own modules,
    shared, not copied), laid out like the backbone (``embeddings``, ``encoder.layer``) so that
    what works on a backbone's blocks works on it.

    ``forward(pixel_values)``: pixels (B×3×H×W, any size the patch size divides) → all tokens
    after those blocks, without the final norm.
    """

    def __init__(self, model: torch.nn.Module, blocks: int) -> None:
        super().__init__()
        layers = model.encoder.layer
        self.embeddings = model.embeddings
        self.encoder = torch.nn.Module()
        self.encoder.layer = layers[: max(1, min(int(blocks), len(layers)))]

    @classmethod
    def run(cls, model: torch.nn.Module, pixel_values: torch.Tensor, blocks: int) -> torch.Tensor:
        """The tokens after ``model``'s first ``blocks`` blocks, the pixels cast to the model's
        own dtype (float32 pixels into a bf16 model), without autograd."""
        dtype = next(model.parameters()).dtype
        with torch.inference_mode():
            return cls(model, blocks)(pixel_values.to(dtype))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(pixel_values)
        for block in self.encoder.layer:
            hidden = block(hidden, None)
        return hidden
