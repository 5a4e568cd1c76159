"""Numeric precision of the model: which one ``auto`` picks on this machine, and applying it.

``int8`` lives in :mod:`core.model.int8` and is imported only when asked for, so that a change
in PyTorch's quantisation APIs can never break the default (fp32 / bf16 / fp16) path.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from core.errors import ModelLoadError

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


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


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``auto`` into the fastest precision that keeps CLS cosine ≥ 0.999 on this device."""
    if precision not in PRECISIONS:
        raise ModelLoadError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ModelLoadError(
            "int8 (dynamic quantisation) runs on the CPU only; use --precision fp16/bf16 on a GPU."
        )
    if precision == "fp16" and device.type == "cpu":
        logger.warning("fp16 on the CPU is slow on most processors; bf16 or fp32 is usually faster")
    return precision


def apply_precision(model: torch.nn.Module, precision: str, device: torch.device) -> torch.nn.Module:
    """The model on ``device`` in ``precision`` (a resolved one, never ``auto``)."""
    if precision == "int8":
        from core.model.int8 import quantize

        return quantize(model)
    return model.to(device=device, dtype=DTYPES[precision])
