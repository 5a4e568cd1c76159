"""core.model.precision: the precision (and device) a model runs with."""

from __future__ import annotations

import pytest
import torch

from core.errors import ModelLoadError
from core.model.loading import resolve_device
from core.model.precision import resolve_precision


def test_device_and_precision_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA"):
            resolve_device("cuda")
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) in {"fp32", "bf16", "int8"}
    with pytest.raises(ModelLoadError, match="Unknown precision"):
        resolve_precision("fp8", cpu)
    with pytest.raises(ModelLoadError, match="CPU only"):
        resolve_precision("int8", torch.device("cuda"))


@pytest.mark.parametrize(
    ("flags", "backend", "expected"),
    [
        ({"avx2"}, True, "fp32"),  # bf16 emulated, no int8 dot products: fp32
        ({"avx2", "avx512f", "avx512_bf16"}, True, "bf16"),
        ({"avx2", "avx512f", "avx512_vnni"}, True, "int8"),  # Xeon with VNNI, no BF16
        ({"avx512f", "avx512_vnni", "avx512_bf16"}, True, "int8"),  # Zen 4
        ({"avx512f", "avx512_vnni", "avx512_bf16"}, False, "bf16"),  # int8 backend not installed
        ({"avx512f", "avx512_vnni"}, False, "fp32"),
    ],
)
def test_auto_is_decided_per_cpu(monkeypatch, flags, backend, expected):
    """The choice per CPU kind: int8 where the CPU has int8 dot products and the backend is
    installed (the recipe meets the bar, so auto may use it), else bf16 where native, else fp32."""
    import importlib.util

    from core.model import precision

    real = importlib.util.find_spec
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (real(name, *a) if backend else None) if name in ("openvino", "nncf") else real(name, *a)
        ),
    )
    if backend and real("openvino") is None:
        pytest.skip("the int8 backend is not installed")
    assert resolve_precision("auto", torch.device("cpu")) == expected
