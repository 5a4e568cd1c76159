"""core.model.linear: fp32 CPU linear layers through oneDNN where that is faster."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from core.model import linear
from core.model.features import FeatureExtractor
from core.model.linear import OnednnLinear, use_fast_linears

needs_onednn = pytest.mark.skipif(not linear.onednn_linear_available(), reason="no oneDNN linear here")


def _kinds(model: torch.nn.Module) -> tuple[int, int]:
    fast = sum(isinstance(m, OnednnLinear) for m in model.modules())
    plain = sum(type(m) is torch.nn.Linear for m in model.modules())
    return fast, plain


@pytest.fixture
def loaded(tiny_model_dir, monkeypatch):
    def load(kernel: str, precision: str = "fp32") -> FeatureExtractor:
        monkeypatch.setenv("WEBSSL_LINEAR", kernel)
        return FeatureExtractor.load(tiny_model_dir, device="cpu", precision=precision)

    return load


@pytest.fixture(scope="module", params=["gelu-mlp", "swiglu"])
def varied_model_dir(request, tmp_path_factory):
    """A tiny model with an MLP of each kind and layer scales that differ per channel (a fold
    that mixed up rows and columns would show)."""
    from transformers import AutoModel

    from tests.conftest import build_tiny_model

    folder = build_tiny_model(
        tmp_path_factory.mktemp(request.param), use_swiglu_ffn=request.param == "swiglu"
    )
    model = AutoModel.from_pretrained(folder)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in model.encoder.layer:
            for scale in (layer.layer_scale1, layer.layer_scale2):
                scale.lambda1.copy_(torch.rand(scale.lambda1.shape, generator=gen) * 1.5 + 0.1)
    model.save_pretrained(folder)
    return folder


@needs_onednn
def test_onednn_layers_give_the_features_of_pytorchs(varied_model_dir, monkeypatch, image_folder):
    def load(kernel: str) -> FeatureExtractor:
        monkeypatch.setenv("WEBSSL_LINEAR", kernel)
        return FeatureExtractor.load(varied_model_dir, device="cpu", precision="fp32")

    fast, plain = load("onednn"), load("torch")
    assert _kinds(fast.model) == (_kinds(plain.model)[1], 0)  # every linear layer, none left
    assert _kinds(plain.model)[0] == 0
    # each MLP's activation runs inside its first linear layer; the layer scales are folded
    blocks = list(fast.model.encoder.layer)
    firsts = [getattr(b.mlp, "gate_proj", None) or b.mlp.fc1 for b in blocks]
    assert {layer.post_op for layer in firsts} == {"swish" if hasattr(blocks[0].mlp, "gate_proj") else "gelu"}
    assert all(isinstance(b.layer_scale1, torch.nn.Identity) for b in blocks)
    assert all(isinstance(b.layer_scale2, torch.nn.Identity) for b in blocks)
    pixels = plain.preprocess(image_folder.arrays[:3])
    a = plain.forward(pixels, patches=True, layers=True)
    b = fast.forward(pixels, patches=True, layers=True)
    np.testing.assert_allclose(b.cls, a.cls, atol=1e-5)
    np.testing.assert_allclose(b.patches, a.patches, atol=1e-5)
    np.testing.assert_allclose(b.layers, a.layers, atol=1e-5)  # every block's output
    # the [CLS]-only last block (a query of one token: a strided slice) matches too
    np.testing.assert_allclose(
        fast.cls_embeddings(image_folder.arrays[:3]), plain.cls_embeddings(image_folder.arrays[:3]), atol=1e-5
    )


@pytest.mark.skipif(not linear.onednn_linear_available("bfloat16"), reason="no oneDNN bf16 linear here")
def test_bf16_layers_run_through_onednn_too_with_pytorchs_results(loaded, image_folder):
    fast, plain = loaded("onednn", "bf16"), loaded("torch", "bf16")
    assert _kinds(fast.model) == (_kinds(plain.model)[1], 0) and _kinds(plain.model)[0] == 0
    assert {m.packed.dtype for m in fast.model.modules() if isinstance(m, OnednnLinear)} == {torch.bfloat16}
    a, b = (fx.cls_embeddings(image_folder.arrays[:3]) for fx in (plain, fast))
    cosine = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.9999  # bf16 rounding apart, the same embeddings


def test_fp16_keeps_pytorchs_layers(loaded):
    assert _kinds(loaded("onednn", "fp16").model)[0] == 0


@needs_onednn
def test_auto_uses_onednn_only_where_it_is_measurably_faster(monkeypatch, tiny_model_dir):
    from transformers import AutoModel

    def replaced(ratio: float, width: int = 512) -> int:
        linear.onednn_faster.cache_clear()
        monkeypatch.setattr(linear, "_time_ratio", lambda _width, _dtype: ratio)
        model = AutoModel.from_pretrained(tiny_model_dir).eval()
        monkeypatch.setattr(linear, "MIN_WIDTH", 0)  # the tiny model is below the timed width
        return use_fast_linears(model, "auto")

    try:
        assert replaced(1.2) > 0
        assert replaced(1.0) == 0  # within the noise: PyTorch's stays
        monkeypatch.setattr(linear, "MIN_WIDTH", 10**6)
        linear.onednn_faster.cache_clear()
        assert linear.onednn_faster(512) is False  # too small to time
    finally:
        linear.onednn_faster.cache_clear()


def test_a_missing_kernel_falls_back_with_a_warning(monkeypatch, tiny_model_dir, caplog):
    from transformers import AutoModel

    monkeypatch.setattr(linear, "onednn_linear_available", lambda _dtype="float32": False)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    with caplog.at_level(logging.WARNING, logger="core.model.linear"):
        assert use_fast_linears(model, "onednn") == 0
    assert "not available" in caplog.text
    assert _kinds(model)[0] == 0
    with pytest.raises(ValueError, match="unknown linear kernel"):
        use_fast_linears(model, "mkl")


@needs_onednn
def test_a_layer_keeps_one_packed_copy_of_its_weight_and_falls_back_outside_fp32_inference():
    layer = torch.nn.Linear(16, 8)
    fast = OnednnLinear(layer)
    assert dict(fast.named_parameters()).keys() == {"bias"}  # the plain weight is not kept
    assert fast.packed.is_mkldnn
    assert torch.equal(fast.weight, layer.weight.detach())  # unpacked on demand
    x = torch.randn(4, 16, requires_grad=True)
    with torch.inference_mode():
        np.testing.assert_allclose(fast(x).numpy(), layer(x).numpy(), atol=1e-5)
        fast.post_op = "swish"  # an activation fused in oneDNN's kernel ...
        expected = torch.nn.functional.silu(layer(x))
        np.testing.assert_allclose(fast(x).numpy(), expected.numpy(), atol=1e-5)
    # ... and in PyTorch's while gradients are on; they reach the input
    y = fast(x)
    np.testing.assert_allclose(y.detach().numpy(), expected.numpy(), atol=1e-5)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    with torch.inference_mode():
        assert fast(x.bfloat16()).dtype == torch.bfloat16  # another dtype: PyTorch's kernel


@needs_onednn
def test_nothing_of_the_weights_file_stays_referenced(tiny_model_dir):
    """The weights file is mapped into memory and every tensor from it keeps the mapping (and
    the pages packing read) alive: after packing, the model's tensors are its own copies."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    before = {name: t.untyped_storage().data_ptr() for name, t in model.state_dict().items()}
    use_fast_linears(model, "onednn")
    after = {name: t.untyped_storage().data_ptr() for name, t in model.state_dict().items()}
    assert after and not set(after.values()) & set(before.values())


def test_an_unknown_kernel_setting_stops_the_load_with_the_choices(monkeypatch, tiny_model_dir):
    from core.errors import ModelLoadError
    from core.model.loading import load_model

    monkeypatch.setenv("WEBSSL_LINEAR", "mkl")
    with pytest.raises(ModelLoadError, match=r"'mkl' \(\$WEBSSL_LINEAR\); use one of auto, onednn, torch"):
        load_model(tiny_model_dir, device="cpu")
