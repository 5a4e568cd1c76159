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
    assert resolve_precision("auto", cpu) in {"fp32", "bf16"}
    with pytest.raises(ModelLoadError, match="Unknown precision"):
        resolve_precision("fp8", cpu)
    with pytest.raises(ModelLoadError, match="CPU only"):
        resolve_precision("int8", torch.device("cuda"))
