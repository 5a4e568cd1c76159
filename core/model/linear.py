"""fp32 linear layers on the CPU through oneDNN, where that is the faster GEMM on this CPU.

PyTorch's ``nn.Linear`` in fp32 on the CPU copies the bias into the output and calls MKL's
sgemm on it (``addmm``). oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel
PyTorch's own compiler emits for CPU linears) adds the bias inside the product. Which one is
faster depends on the CPU: on an AMD EPYC with AVX-512 (2 cores) oneDNN ran a ViT-L/14 forward
pass 10–15 % faster, and its GEMM reached about 218 GFLOP/s where MKL's reached about 180
(``python -m bench --sections speed``). So ``auto`` times both once per process, on a product of
the model's own width, and uses oneDNN only where it is measurably faster; the results are
the same up to float rounding.

``$WEBSSL_LINEAR`` overrides the choice: ``onednn``, ``torch`` (PyTorch's own), or ``auto``.
"""

from __future__ import annotations

import functools
import logging
import time

from core.config import default_linear_kernel
from core.lazy import torch

logger = logging.getLogger(__name__)

KERNELS = ("auto", "onednn", "torch")
#: oneDNN must be at least this much faster (time ratio) for ``auto`` to pick it
MIN_GAIN = 1.03
#: below this hidden width (test models) a product is too small to time: PyTorch's kernel
MIN_WIDTH = 256


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN's fused linear for fp32 CPU tensors, and it computes
    what ``nn.functional.linear`` does."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((5, 3, 16), (8, 16), (8,)))
    try:
        got = _onednn(x, w, b)
    except RuntimeError:
        return False
    return bool(torch.allclose(got, torch.nn.functional.linear(x, w, b), atol=1e-5, rtol=1e-5))


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


class OnednnLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose fp32 CPU inference runs through oneDNN (same weights, same
    results up to rounding). Anything else (training, another dtype or device) is PyTorch's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.device.type == "cpu"
            and not torch.is_grad_enabled()
        ):
            return _onednn(x, self.weight, self.bias)
        return super().forward(x)

    @classmethod
    def of(cls, linear: torch.nn.Linear) -> OnednnLinear:
        """A layer sharing ``linear``'s parameters (no copy)."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer


def _time_ratio(width: int, rows: int = 1024, repeats: int = 5) -> float:
    """PyTorch's linear time over oneDNN's on a rows × width by width × width product (the best
    of ``repeats`` each, alternating, so that a slow moment of the host hits both)."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (
        torch.randn(rows, width, generator=gen),
        torch.randn(width, width, generator=gen),
        torch.zeros(width),
    )
    kernels = {"torch": torch.nn.functional.linear, "onednn": _onednn}
    best = dict.fromkeys(kernels, float("inf"))
    with torch.inference_mode():
        for fn in kernels.values():  # warm-up
            fn(x, w, b)
        for _ in range(repeats):
            for name, fn in kernels.items():
                start = time.perf_counter()
                fn(x, w, b)
                best[name] = min(best[name], time.perf_counter() - start)
    return best["torch"] / best["onednn"]


@functools.cache
def onednn_faster(width: int) -> bool:
    """Whether ``auto`` uses oneDNN for a model of this hidden ``width`` on this CPU: timed once
    per process and width (0.15-0.25 s for a ViT-L's 1024)."""
    if width < MIN_WIDTH or not onednn_linear_available():
        return False
    ratio = _time_ratio(width)
    logger.info("fp32 linear layers: oneDNN %.2f× PyTorch's speed here", ratio)
    return ratio >= MIN_GAIN


def use_fast_linears(model: torch.nn.Module, kernel: str | None = None) -> int:
    """Replace ``model``'s fp32 ``nn.Linear`` layers (in place) by :class:`OnednnLinear` where
    ``kernel`` (default ``$WEBSSL_LINEAR`` or ``auto``) says so; returns how many were replaced."""
    kernel = kernel or default_linear_kernel()
    if kernel not in KERNELS:
        raise ValueError(f"unknown linear kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    layers = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
        and child.weight.dtype == torch.float32
        and child.weight.device.type == "cpu"
    ]
    if not layers or kernel == "torch":
        return 0
    if kernel == "auto" and not onednn_faster(min(layer.in_features for _, _, layer in layers)):
        return 0
    if kernel == "onednn" and not onednn_linear_available():
        logger.warning("oneDNN's linear is not available in this PyTorch: using PyTorch's")
        return 0
    for parent, name, child in layers:
        setattr(parent, name, OnednnLinear.of(child))
    return len(layers)
