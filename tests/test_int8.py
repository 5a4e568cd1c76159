"""core.model.int8: int8 that is safe to turn on, isolated from the default path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from conftest import pattern_image


def test_the_default_path_never_imports_the_int8_backend(tiny_model_dir):
    """int8 is isolated in core.model.int8: fp32 loading neither imports it nor warns."""
    import subprocess
    import sys

    code = (
        "import sys, warnings; warnings.simplefilter('error', DeprecationWarning);"
        "from core.model.loading import load_model;"
        f"load_model({str(tiny_model_dir)!r}, device='cpu', precision='fp32');"
        "assert 'core.model.int8' not in sys.modules and 'openvino' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_building_an_int8_model_writes_nothing_on_stdout(tiny_model_dir, tmp_path):
    """NNCF logs to its own stdout handler ("INFO:nncf:58 ignored nodes were found…"): in a
    command's output, a table or JSON that a script reads, that line broke it. Its records go
    through logging like any library's (shown with -vv, on stderr)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("nncf")
    code = (
        "from core.model.loading import load_model;"
        f"load_model({str(tiny_model_dir)!r}, device='cpu', precision='int8')"
    )
    env = {**os.environ, "WEBSSL_INT8_CACHE": str(tmp_path / "int8")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""


# -- the int8 path on a model with DINOv2-like outlier activations --------------------------
@pytest.fixture(scope="module")
def outlier_model_dir(tmp_path_factory):
    """A tiny SwiGLU Dinov2 with outlier channels ~100× the rest (fp32 function unchanged);
    the tests that use it need the optional int8 backend."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from bench.synthetic import TINY, build_model

    return build_model(
        tmp_path_factory.mktemp("tiny-outliers"), {**TINY, "use_swiglu_ffn": True}, outliers=True
    )


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    import os

    folder = tmp_path_factory.mktemp("int8-cache")
    old = os.environ.get("WEBSSL_INT8_CACHE")
    os.environ["WEBSSL_INT8_CACHE"] = str(folder)
    yield folder
    if old is None:
        del os.environ["WEBSSL_INT8_CACHE"]
    else:
        os.environ["WEBSSL_INT8_CACHE"] = old


@pytest.fixture(scope="module")
def pair(outlier_model_dir, int8_cache):
    from core.model.features import FeatureExtractor

    fp32 = FeatureExtractor.load(outlier_model_dir, device="cpu", precision="fp32")
    int8 = FeatureExtractor.load(outlier_model_dir, device="cpu", precision="int8")
    return fp32, int8


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_the_outliers_defeat_a_plain_int8_scale(pair):
    """The test model is a real test: one int8 scale per tensor, as a plain dynamic
    quantisation uses, loses most of the [CLS] direction; SmoothQuant's int8 does not."""
    fp32, _ = pair
    pixels = fp32.preprocess([pattern_image(s) for s in range(4)])
    ref = fp32.forward(pixels).cls

    def fake_int8(x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax() / 127
        return (x / scale).round().clamp(-127, 127) * scale

    hooks = [
        m.register_forward_pre_hook(lambda _m, args: (fake_int8(args[0]),))
        for m in fp32.model.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    try:
        plain = fp32.forward(pixels).cls
    finally:
        for h in hooks:
            h.remove()
    assert _cosines(plain, ref).min() < 0.99


@pytest.mark.parametrize("swiglu", [True, False], ids=["swiglu", "gelu-mlp"])
def test_smoothing_computes_the_same_function_with_the_outliers_flattened(tmp_path, swiglu):
    """SmoothQuant folded into a copy of the model: the same tokens as the original (fp32),
    while the inputs of the linear layers it scales lose their outlier channels. The original
    model is left untouched."""
    pytest.importorskip("openvino")
    from bench.synthetic import TINY, build_model
    from core.model.features import FeatureExtractor
    from core.model.int8 import _smoothed_pairs, smooth

    folder = build_model(tmp_path, {**TINY, "use_swiglu_ffn": swiglu}, outliers=True)
    fx = FeatureExtractor.load(folder, device="cpu", precision="fp32")
    pixels = fx.preprocess([pattern_image(s) for s in range(6)])
    before = {k: v.clone() for k, v in fx.model.state_dict().items()}
    smoothed = smooth(fx.model, pixels[:4])
    assert all(torch.equal(before[k], v) for k, v in fx.model.state_dict().items())

    def spread(model) -> list[float]:
        """Per scaled linear layer: largest over median input channel peak, on other pictures."""
        peaks: dict[int, torch.Tensor] = {}
        consumers = [c for layer in model.encoder.layer for _, cs in _smoothed_pairs(layer) for c in cs]
        hooks = [
            c.register_forward_pre_hook(
                lambda m, a: peaks.__setitem__(id(m), a[0].abs().flatten(0, -2).amax(0))
            )
            for c in consumers
        ]
        with torch.inference_mode():
            out = model(pixel_values=pixels[4:]).last_hidden_state
        for h in hooks:
            h.remove()
        spread.out = out
        return [float(peaks[id(c)].max() / peaks[id(c)].median()) for c in consumers]

    original, flattened = spread(fx.model), None
    ref = spread.out
    flattened = spread(smoothed)
    torch.testing.assert_close(spread.out, ref, rtol=1e-3, atol=1e-3)
    assert len(original) == len(flattened) == TINY["num_hidden_layers"] * (7 if swiglu else 5)
    assert max(original) > 50  # the injected outliers (~100×)
    assert max(flattened) < 10  # 2.6 / 1.8 measured, from 233 / 187
    assert sorted(flattened)[len(flattened) // 2] < sorted(original)[len(original) // 2]


def test_int8_keeps_the_cls_direction_on_outlier_activations(pair):
    """Where a plain int8 scale falls below 0.99, the recipe stays within 0.001 of fp32 on the
    tiny model (0.9998 measured; on the ViT-L stress model 0.9994, bench numerics)."""
    from core.model.int8 import OpenVINOBackbone

    fp32, int8 = pair
    assert int8.precision == "int8" and isinstance(int8.model, OpenVINOBackbone)
    assert int8.model.validation.min_cosine >= 0.999 and int8.model.validation.pictures == 8
    frames = [pattern_image(s) for s in range(10, 16)]
    assert _cosines(int8.cls_embeddings(frames), fp32.cls_embeddings(frames)).min() >= 0.995
    assert (
        int8.embed(frames[:2], patches=True).patches.shape
        == fp32.embed(frames[:2], patches=True).patches.shape
    )


def test_int8_moves_region_modes_early_blocks_to_openvino_once_that_pays(pair, monkeypatch):
    """Region mode's early tokens (a whole frame of any size through the first blocks) come
    from the float model kept beside the int8 one: in PyTorch at first (one explained frame
    never pays for a conversion), then, once enough tokens went through, in OpenVINO. Both
    agree with the fp32 model's, at any frame size."""
    from core.model import int8 as int8_module
    from core.model.preprocess import preprocess_images

    fp32, int8 = pair
    monkeypatch.setattr(int8_module, "EARLY_IN_OPENVINO_AFTER", 100)  # tokens; one call has 226

    def check(size: tuple[int, int]) -> None:
        pixels = preprocess_images(
            [pattern_image(s, size) for s in (3, 4)], fp32.preprocessing.full_frame(112)
        )
        got, want = int8.early_patches(pixels, 2), fp32.early_patches(pixels, 2)
        assert got.shape == want.shape and got.dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(
            got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1])
        )
        assert cos.min() > 0.999  # OpenVINO: smoothed, int8 weights, 0.9999 measured (0.983 unsmoothed)

    check((100, 180))
    assert not int8.model.early_blocks_compiled  # PyTorch: not worth a conversion yet
    check((100, 180))
    assert set(int8.model.early_blocks_compiled) == {2}  # OpenVINO, for 2 blocks
    check((140, 140))  # another frame size: the same compiled model
    assert set(int8.model.early_blocks_compiled) == {2}


def test_int8_model_is_built_once_then_read_from_the_cache(pair, outlier_model_dir, int8_cache):
    from core.model.features import FeatureExtractor

    assert len(list(int8_cache.glob("*/model.xml"))) == 1
    again = FeatureExtractor.load(outlier_model_dir, device="cpu", precision="int8")
    assert again.model.validation == pair[1].model.validation  # the stored one, not a new build
    assert len(list(int8_cache.glob("*/model.xml"))) == 1


def test_int8_says_what_it_cannot_do(pair):
    from core.errors import ModelLoadError

    _, int8 = pair
    with pytest.raises(ModelLoadError, match="final-layer features only"):
        int8.embed([pattern_image(1)], layers=True)


def test_auto_uses_int8_only_where_it_meets_the_bar(outlier_model_dir, int8_cache, monkeypatch, caplog):
    from core.model import int8, precision
    from core.model.features import FeatureExtractor

    monkeypatch.setattr(precision, "INT8_IN_AUTO", True)
    monkeypatch.setattr(precision, "cpu_has_fast_int8", lambda: True)
    assert precision.resolve_precision("auto", torch.device("cpu")) == "int8"
    monkeypatch.setattr(int8, "MIN_COSINE", 0.99)  # a bar the tiny model's int8 meets (0.9998)
    assert FeatureExtractor.load(outlier_model_dir, device="cpu", precision="auto").precision == "int8"
    monkeypatch.setattr(int8, "MIN_COSINE", 1.01)  # a bar no int8 model meets
    with caplog.at_level(logging.WARNING):
        fx = FeatureExtractor.load(outlier_model_dir, device="cpu", precision="auto")
    assert fx.precision == precision.float_precision(torch.device("cpu"))
    assert "auto uses" in caplog.text
    # asked for explicitly, int8 runs anyway, with a warning
    assert FeatureExtractor.load(outlier_model_dir, device="cpu", precision="int8").precision == "int8"
