"""The machine's limit: GEMM ceilings per precision, and what a model's forward pass costs.

A model path's speed is reported as achieved FLOP/s over the ceiling of its precision, so that
a figure from one CPU says how close to that CPU's own limit the code runs.

- :func:`gemm_ceiling`: the best of a few 1024×4096 by 4096×4096 products (the shape FACTS.md
  uses) on this process's threads: fp32 the faster of MKL's and oneDNN's GEMM, bf16
  ``torch.matmul``, int8 ``torch._int_mm``; :func:`bracketed`: the ceiling around a timed run;
- :func:`forward_flops`: multiply-adds × 2 of one image through a Dinov2 config, counted from
  the config (patch embedding, q/k/v/o projections, attention, MLP or SwiGLU), optionally with
  the [CLS]-only last block that the product runs for embeddings.
"""

from __future__ import annotations

import time

#: Ceilings measured on other CPU kinds (FACTS.md; 2 threads, torch 2.13): projections use them.
OTHER_CPUS = {
    "AMD EPYC, AVX2 only": {"fp32": 140.0},
    "Intel Xeon, AVX-512 + VNNI, no BF16": {"fp32": 247.0, "bf16": 47.0, "int8": 714.0},
}


def gemm_ceiling(
    m: int = 1024, k: int = 4096, n: int = 4096, repeats: int = 5, precisions: tuple[str, ...] | None = None
) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of the best of ``repeats`` m×k by k×n products per precision.

    fp32 is the faster of PyTorch's two GEMMs on this CPU, MKL's (``torch.matmul``) and oneDNN's
    (the fused linear with a packed weight that :mod:`core.model.linear` uses where it is
    faster), each also reported
    as ``fp32:mkl`` and ``fp32:onednn``; bf16 is ``torch.matmul`` (oneDNN), int8
    ``torch._int_mm``. ``precisions`` limits the measurement to some of them.
    """
    import torch

    from core.model.linear import onednn_linear, onednn_linear_available, pack_weight

    out: dict[str, float] = {}
    a, b = torch.randn(m, k), torch.randn(k, n)

    def int8(shape: tuple[int, int]):
        return torch.randint(-128, 127, shape, dtype=torch.int8)

    # operands made when measured, and freed after: a run's peak memory stays the run's own
    cases = {
        "fp32:mkl": (lambda: (a, b), torch.matmul),
        "bf16": (lambda: (a.bfloat16(), b.bfloat16()), torch.matmul),
        "int8": (lambda: (int8((m, k)), int8((k, n))), torch._int_mm),
    }
    if onednn_linear_available():
        # packed as the model's layers are (core.model.linear): the fastest oneDNN product
        cases["fp32:onednn"] = (lambda: (a, pack_weight(b.t())), onednn_linear)
    with torch.inference_mode():
        for name, (operands, op) in cases.items():
            if precisions is not None and name.split(":")[0] not in precisions:
                continue
            x, y = operands()
            try:
                op(x, y)  # warm-up (and: is there a kernel at all?)
            except RuntimeError:
                continue
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                op(x, y)
                best = min(best, time.perf_counter() - t)
            out[name] = 2 * m * k * n / best / 1e9
            del x, y
    fp32 = [g for name, g in out.items() if name.startswith("fp32:")]
    if fp32:
        out["fp32"] = max(fp32)
    return out


def bracketed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The ceiling around a timed run: per precision, the mean of the measurement just before
    and just after it (the host's speed drifts; a ceiling from minutes away does not describe
    the run)."""
    return {p: (before[p] + after[p]) / 2 for p in before if p in after}


def swiglu_hidden(hidden_size: int, mlp_ratio: float) -> int:
    """The SwiGLU hidden width of transformers' Dinov2 (two thirds, rounded up to 8)."""
    return (int(int(hidden_size * mlp_ratio) * 2 / 3) + 7) // 8 * 8


def forward_flops(config: dict, height: int = 224, width: int = 224, *, cls_only_last: bool = False) -> float:
    """FLOPs (2 × multiply-adds) of one image through a Dinov2 backbone with ``config``.

    Counts the matrix products (patch embedding, q/k/v/o, attention scores and values, MLP);
    norms, activations and additions are a few per cent more work, not counted.
    """
    d = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    patch = int(config.get("patch_size", 14))
    ratio = float(config.get("mlp_ratio", 4.0))
    channels = int(config.get("num_channels", 3))
    patches = (height // patch) * (width // patch)
    tokens = patches + 1 + int(config.get("num_register_tokens", 0) or 0)
    if config.get("use_swiglu_ffn"):
        f = swiglu_hidden(d, ratio)
        mlp = 3 * d * f  # gate, up, down
    else:
        f = int(d * ratio)
        mlp = 2 * d * f
    embed = patches * channels * patch * patch * d
    full_block = tokens * (4 * d * d + mlp) + 2 * tokens * tokens * d
    macs = embed + layers * full_block
    if cls_only_last:
        # last block: k and v for every token; q, o, MLP and attention for the [CLS] token only
        macs -= full_block
        macs += tokens * 2 * d * d + (2 * d * d + mlp) + 2 * tokens * d
    return 2.0 * macs
