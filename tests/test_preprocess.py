"""Preprocessing equals the model's Hugging Face image processor, batched and fast."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import pattern_image
from core.model.preprocess import Preprocessing, preprocess_batch, preprocess_images

SIZES = [(360, 640), (480, 300), (224, 224), (100, 150), (1080, 1920)]


@pytest.fixture(scope="module")
def hf_processor(tiny_model_dir):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def prep(hf_processor) -> Preprocessing:
    return Preprocessing.from_processor_dict(hf_processor.to_dict(), patch_size=14)


def test_settings_come_from_the_processor_config(prep):
    assert prep.shortest_edge == 256
    assert prep.crop_hw == (224, 224)
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406))
    assert prep.std == pytest.approx((0.229, 0.224, 0.225))
    assert prep.resample == "bicubic"


@pytest.mark.parametrize("size", SIZES)
def test_pixels_match_the_hf_processor(hf_processor, prep, size):
    img = pattern_image(sum(size), size)
    ref = hf_processor(images=Image.fromarray(img), return_tensors="pt")["pixel_values"]
    mine = preprocess_batch([img], prep)
    assert mine.shape == ref.shape == (1, 3, 224, 224)
    # in 8-bit levels: all but a handful of pixels are equal, none more than 2 levels apart
    levels = ((mine - ref).abs() * torch.tensor(prep.std).view(1, 3, 1, 1) * 255).round()
    assert levels.max().item() <= 2
    assert (levels == 0).float().mean().item() > 0.99


def test_batch_equals_one_by_one(prep):
    frames = [pattern_image(i, (360, 640)) for i in range(4)]
    batch = preprocess_batch(np.stack(frames), prep)
    singles = torch.cat([preprocess_batch([f], prep) for f in frames])
    assert torch.equal(batch, singles)


def test_mixed_sizes_are_grouped(prep):
    images = [pattern_image(1, (200, 300)), pattern_image(2, (300, 200)), pattern_image(3, (200, 300))]
    out = preprocess_images(images, prep)
    assert out.shape == (3, 3, 224, 224)
    assert torch.equal(out[1], preprocess_batch([images[1]], prep)[0])


def test_resize_geometry_follows_hf_rules(prep):
    assert prep.resized_hw(360, 640) == (256, 455)
    assert prep.resized_hw(640, 360) == (455, 256)
    assert prep.grid(360, 640) == (16, 16)


def test_full_frame_mode_keeps_the_whole_image(prep):
    full = prep.full_frame(448)
    assert full.mode == "full"
    h, w = full.output_hw(360, 640)
    assert h == 448 and w % 14 == 0 and abs(w / h - 640 / 360) < 0.05
    out = preprocess_batch([pattern_image(0, (360, 640))], full)
    assert out.shape == (1, 3, h, w)
    assert full.grid(360, 640) == (h // 14, w // 14)
    with pytest.raises(ValueError, match="patch size"):
        prep.full_frame(10)


def test_json_round_trip_and_key(prep):
    again = Preprocessing.from_json(prep.to_json())
    assert again == prep
    assert again.key == prep.key
    assert prep.full_frame().key != prep.key


def test_bad_input_is_refused(prep):
    with pytest.raises(ValueError, match="uint8"):
        preprocess_batch([np.zeros((10, 10, 3), np.float32)], prep)
    with pytest.raises(ValueError, match="no images"):
        preprocess_images([], prep)


def test_fixed_size_configs_are_understood():
    cfg = {
        "do_resize": True,
        "size": {"height": 224, "width": 224},
        "do_center_crop": False,
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
        "resample": 2,
    }
    prep = Preprocessing.from_processor_dict(cfg)
    assert prep.resize_hw == (224, 224) and prep.crop_hw is None and prep.resample == "bilinear"
    out = preprocess_batch([pattern_image(0, (100, 300))], prep)
    assert out.shape == (1, 3, 224, 224)


def test_view_box_is_the_part_the_model_sees(prep):
    # 360×640 resizes to 256×455; the 224×224 centre crop starts at (115, 16)
    assert prep.view_box(360, 640) == pytest.approx((115 / 455, 16 / 256, 339 / 455, 240 / 256))
    assert prep.full_frame(448).view_box(360, 640) == (0.0, 0.0, 1.0, 1.0)
    assert prep.view_box(100, 150) == pytest.approx(
        (80 / 384, 16 / 256, 304 / 384, 240 / 256)
    )  # enlarged first


# -- issue 9: memory is bounded by the model's input, not the source's aspect -------------------------
def test_extreme_aspect_is_cropped_before_it_is_resized():
    """A 1×40000 PNG used to be upscaled to 256×10,240,000 before the crop (31 GB)."""
    import subprocess
    import sys

    code = (
        "import resource, numpy as np;"
        "from core.model.preprocess import Preprocessing, preprocess_images;"
        "img = np.random.default_rng(0).integers(0, 256, (40000, 1, 3), dtype=np.uint8);"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "x = preprocess_images([img, img.transpose(1, 0, 2).copy()], Preprocessing());"
        "assert tuple(x.shape) == (2, 3, 224, 224), x.shape;"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip()) < 200  # MB of growth for two 40,000-pixel-long images


def test_cropping_first_stays_close_to_the_exact_path(monkeypatch):
    import core.model.preprocess as pp

    rng = np.random.default_rng(3)
    img = cv2.resize(
        rng.integers(0, 256, (30, 4, 3), dtype=np.uint8), (40, 1800), interpolation=cv2.INTER_CUBIC
    )
    prep = Preprocessing()
    exact = preprocess_images([img], prep)
    monkeypatch.setattr(pp, "CROP_FIRST_FACTOR", 1.0)  # force the bounded path on this ordinary image
    bounded = preprocess_images([img], prep)
    diff = (exact - bounded).abs() * 255 * 0.229  # back to pixel levels (roughly)
    assert float(diff.mean()) < 0.5 and float(diff.max()) < 8
