"""Numeric precision of the model: which one ``auto`` picks on this machine, and applying it.

``auto`` on a CPU, fastest first, each only where it keeps [CLS] cosine ≥ 0.999 to fp32:

- ``int8`` only while :data:`INT8_IN_AUTO` says the int8 recipe meets that bar on the ViT-L
  stress model with outlier activations (``python -m bench --sections numerics``), and then
  where the CPU has int8 dot-product instructions (VNNI or AMX), the optional int8 backend is
  installed, and the quantised model passed its own validation (:mod:`core.model.int8`; if it
  did not, ``auto`` falls back to the next choice);
- ``bf16`` where the CPU computes bf16 natively (AVX512-BF16 or AMX);
- ``fp32`` elsewhere (bf16 is emulated, and slower than fp32, on other CPUs).

``int8`` lives in :mod:`core.model.int8` and is imported only when used, so that the default
path never depends on its libraries.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from core.errors import ModelLoadError
from core.lazy import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "float32"}


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype a model runs in at ``precision`` (int8 keeps float32 activations)."""
    return getattr(torch, _DTYPE_NAMES[precision])


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_fast_int8() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


INT8_IN_AUTO = True
"""Whether ``auto`` may pick int8. On: the int8 recipe (SmoothQuant folded into the weights,
int8 weights, activations quantised per token at run time) keeps a [CLS] cosine of ≥ 0.999 to
fp32 on the ViT-L stress model with injected outlier activations (``python -m bench --sections
numerics``; README, Performance). The static recipe before it reached 0.9957 and was opt-in.
Each model's own validation still decides (:func:`apply_precision`)."""


def int8_preferred(device: torch.device) -> bool:
    """Whether ``auto`` tries int8 here: allowed (:data:`INT8_IN_AUTO`), a CPU with fast int8,
    and the int8 backend installed."""
    from importlib.util import find_spec

    backend = all(find_spec(name) is not None for name in ("openvino", "nncf"))
    return INT8_IN_AUTO and device.type == "cpu" and cpu_has_fast_int8() and backend


def float_precision(device: torch.device) -> str:
    """What ``auto`` picks among the floating-point precisions on this device."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``auto`` into the fastest precision that keeps CLS cosine ≥ 0.999 on this device
    (``int8`` from ``auto`` is confirmed by :func:`apply_precision`)."""
    if precision not in PRECISIONS:
        raise ModelLoadError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        return "int8" if int8_preferred(device) else float_precision(device)
    if precision == "int8" and device.type != "cpu":
        raise ModelLoadError(
            "int8 (dynamic quantisation) runs on the CPU only; use --precision fp16/bf16 on a GPU."
        )
    if precision == "fp16" and device.type == "cpu":
        logger.warning("fp16 on the CPU is slow on most processors; bf16 or fp32 is usually faster")
    return precision


def apply_precision(
    model: torch.nn.Module,
    precision: str,
    device: torch.device,
    *,
    preprocessing=None,
    requested: str | None = None,
) -> tuple[torch.nn.Module, str]:
    """The model on ``device`` in ``precision`` (a resolved one, never ``auto``), and the
    precision it runs in: int8 that ``auto`` chose but that failed its validation falls back to
    :func:`float_precision`. fp32 and bf16 on the CPU get the faster linear kernel of this CPU
    (:mod:`core.model.linear`).

    Args:
        preprocessing: the model's preprocessing (int8 needs its input size).
        requested: what the caller asked for (``auto`` allows the fallback).
    """
    if precision == "int8":
        from core.model.int8 import MIN_COSINE, quantize

        quantized = quantize(model, preprocessing)
        if quantized.validation.passed:
            return quantized, "int8"
        cosine = quantized.validation.min_cosine
        if requested != "auto":
            logger.warning(
                "int8: CLS cosine to fp32 is %.4f here, below %g: results differ", cosine, MIN_COSINE
            )
            return quantized, "int8"
        precision = float_precision(device)
        logger.warning(
            "int8 reached CLS cosine %.4f only (< %g): auto uses %s", cosine, MIN_COSINE, precision
        )
    from core.model.linear import use_fast_linears

    model = model.to(device=device, dtype=dtype_of(precision))
    use_fast_linears(model)  # it decides which layers (fp32/bf16 on the CPU) and where
    return model, precision
