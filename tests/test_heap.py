"""core.model.heap: a forward pass reuses the memory the last one freed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.errors import ModelLoadError
from core.model import heap, loading

needs_glibc = pytest.mark.skipif(not heap.glibc_malloc_available(), reason="not glibc's malloc")

#: in a fresh process (the heap's thresholds are process-wide, and glibc's own ones change as
#: blocks are freed): three forward passes of a small ViT on 24 frames after two first ones, and
#: the memory they faulted in. Its MLP's activations (38 MB) are above the most glibc's own
#: mmap threshold ever rises to (32 MiB), as a ViT-L's are at a batch of 16, so glibc's
#: defaults fault them in on every pass (smaller ones come and go with its thresholds).
_PASSES = """
import json, resource
import torch
from transformers import Dinov2Config, Dinov2Model
from core.model import heap
kept = heap.keep_activation_memory()
config = Dinov2Config(hidden_size=384, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=6)
model = Dinov2Model(config).eval()
x = torch.randn(24, 3, 224, 224)
with torch.inference_mode():
    for _ in range(2):
        model(pixel_values=x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model(pixel_values=x)
faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"kept": kept, "faulted_mb": faulted * resource.getpagesize() / 2**20}))
"""


def _passes(policy: str) -> dict:
    env = {**os.environ, "WEBSSL_HEAP": policy}
    out = subprocess.run(
        [sys.executable, "-c", _PASSES], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_freed_activations_are_reused_instead_of_faulted_in_again():
    kept, system = _passes("keep"), _passes("system")
    assert (kept["kept"], system["kept"]) == (True, False)
    # glibc's defaults hand the large activations back on free and fault them in again (406-785
    # MB in 3 passes, 8 runs here, some under load); kept, the passes reuse the pages of the
    # first ones (0-36 MB)
    assert system["faulted_mb"] > 200
    assert kept["faulted_mb"] < 100


def test_an_unknown_policy_says_which_there_are(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WEBSSL_HEAP", "fast")
    with pytest.raises(ValueError, match="keep, system"):
        heap.keep_activation_memory()
    with pytest.raises(ModelLoadError, match=r"'fast' \(\$WEBSSL_HEAP\); use one of keep, system"):
        loading.load_model(tiny_model_dir, device="cpu")


def test_without_glibc_the_heap_is_left_alone(monkeypatch):
    monkeypatch.setattr(heap, "glibc_malloc_available", lambda: False)
    monkeypatch.setattr(heap, "_state", None)
    assert heap.keep_activation_memory("keep") is False


def test_loading_a_model_on_the_cpu_keeps_activation_memory(tiny_model_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(loading, "keep_activation_memory", lambda: calls.append(True) or True)
    loading.load_model(tiny_model_dir, device="cpu")
    assert calls == [True]
