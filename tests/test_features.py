"""Features: CLS, patch grid, all layers; parity with the plain HF processor + model path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import pattern_image
from core.model.features import FeatureExtractor, l2_normalize


def test_shapes_and_dtypes(extractor):
    imgs = [pattern_image(i, (200, 300)) for i in range(3)]
    f = extractor.embed(imgs, patches=True, layers=True)
    assert f.cls.shape == (3, 48) and f.cls.dtype == np.float32
    assert f.patches.shape == (3, 16, 16, 48)
    assert f.layers.shape == (3, 3, 16, 16, 48)  # layers × images × rows × cols × dim
    assert np.isfinite(f.cls).all() and np.isfinite(f.layers).all()
    # layers come out of the final layer norm, as the output does: the last one is the output
    np.testing.assert_allclose(f.layers[-1], f.patches, atol=1e-5)


def test_cls_matches_the_reference_processor_and_model(extractor, tiny_model_dir):
    """Fast batched preprocessing + model == AutoImageProcessor + model: CLS cosine ≥ 0.9999."""
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    imgs = [
        pattern_image(10 + i, size) for i, size in enumerate([(360, 640), (480, 300), (224, 224), (90, 160)])
    ]
    ours = l2_normalize(extractor.embed(imgs, batch_size=2).cls)
    for img, mine in zip(imgs, ours, strict=True):
        with torch.inference_mode():
            pixels = processor(images=Image.fromarray(img), return_tensors="pt")["pixel_values"]
            ref = model(pixel_values=pixels).last_hidden_state[:, 0].numpy()
        assert float(l2_normalize(ref)[0] @ mine) >= 0.9999


def test_batching_does_not_change_results(extractor):
    imgs = [pattern_image(i, (240, 320)) for i in range(5)]
    a = extractor.embed(imgs, batch_size=1).cls
    b = extractor.embed(imgs, batch_size=5).cls
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_final_layer_patches_are_the_last_hidden_state(extractor):
    img = [pattern_image(3, (224, 224))]
    f = extractor.embed(img, patches=True, layers=True)
    # the last layer's raw tokens, layer-normed, are the final patch features
    norm = extractor.model.layernorm
    last = torch.from_numpy(f.layers[-1])
    with torch.inference_mode():
        normed = norm(last).numpy()
    np.testing.assert_allclose(normed, f.patches, atol=1e-4)


def test_full_frame_mode_gives_a_larger_grid(extractor):
    img = [pattern_image(0, (360, 640))]
    full = extractor.preprocessing.full_frame(448)
    f = extractor.embed(img, patches=True, preprocessing=full)
    assert f.patches.shape[1:3] == (32, 57)  # 448 × 798: 640/360 kept, sides multiples of 14


def test_empty_input(extractor):
    assert extractor.embed([]).cls.shape == (0, 48)


def test_embed_key_changes_with_precision_and_preprocessing(extractor):
    key = extractor.embed_key()
    assert key == extractor.embed_key()
    assert key != extractor.embed_key(extractor.preprocessing.full_frame(448))


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_stay_close_to_fp32(tiny_model_dir, extractor, precision):
    other = FeatureExtractor.load(tiny_model_dir, device="cpu", precision=precision)
    imgs = [pattern_image(i, (240, 320)) for i in range(3)]
    a = l2_normalize(extractor.embed(imgs).cls)
    b = l2_normalize(other.embed(imgs).cls)
    assert other.embed_key() != extractor.embed_key()
    assert (a * b).sum(1).min() > 0.99


def test_cls_only_forward_equals_the_full_forward(extractor):
    """CLS-only requests skip the last block's work for patch tokens; the result is the same."""
    from conftest import pattern_image

    assert extractor._cls_path
    x = extractor.preprocess([pattern_image(i, (180, 320)) for i in range(3)])
    fast = extractor.forward(x).cls
    full = extractor.forward(x, patches=True).cls
    np.testing.assert_allclose(fast, full, atol=1e-5, rtol=1e-5)


def test_early_patches_run_only_the_first_blocks(extractor):
    pixels = extractor.preprocess(
        [np.full((100, 140, 3), 90, np.uint8)], extractor.preprocessing.for_mode("full", 112)
    )
    first = extractor.early_patches(pixels, 1)
    rows, cols = pixels.shape[2] // 14, pixels.shape[3] // 14
    assert tuple(first.shape) == (1, rows, cols, extractor.hidden_size) and first.dtype == torch.float32
    layers = extractor.forward(pixels, layers=True).layers  # after the final norm: compare the direction
    cos = torch.nn.functional.cosine_similarity(
        torch.nn.functional.layer_norm(first, (first.shape[-1],)).reshape(-1, first.shape[-1]),
        torch.from_numpy(layers[0, 0]).reshape(-1, first.shape[-1]),
    )
    assert cos.min() > 0.99  # block 1's tokens, not the embeddings'
