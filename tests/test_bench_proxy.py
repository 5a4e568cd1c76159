"""The trained proxy model (bench.proxy): what it trains on, its loss, and how it is built and cached."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import proxy
from bench import synthetic as syn


def test_training_pictures_never_appear_in_the_benchmark_videos_or_collections():
    used = set()
    for plan in (
        syn.benchmark_plan(),
        syn.smoke_plan(),
        *(syn.random_plan(s) for s in syn.TUNING_SEEDS + syn.HELD_OUT_SEEDS),
    ):
        used |= set(plan.picture_seeds) | {50_000 + k for k in range(plan.distractors)}
    training = range(proxy.FIRST_PICTURE_SEED, proxy.FIRST_PICTURE_SEED + proxy.TRAINING.pictures)
    assert used and not used & set(training)


def test_info_nce_by_hand():
    torch = pytest.importorskip("torch")
    eye = torch.eye(2)
    # rows belong together and are orthogonal to the other row: logits [[1, 0], [0, 1]] at T = 1,
    # each row's loss -log(e / (e + 1)) = log(1 + 1/e), the same both ways
    assert float(proxy.info_nce(eye, eye, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)))
    # swapped partners: each row's partner scores 0 and the other 1, so log(1 + e)
    assert float(proxy.info_nce(eye, eye.flip(0), 1.0)) == pytest.approx(math.log(1 + math.e))
    # features are normalised first: the scale of a row does not matter
    assert float(proxy.info_nce(3 * eye, eye, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)))


def test_pairs_are_model_inputs_of_the_same_picture_and_repeat_with_the_seed():
    pictures = [syn.make_picture(proxy.FIRST_PICTURE_SEED + k, proxy.PICTURE_SIZE) for k in range(4)]
    a, b = proxy.pair_batch(pictures, np.random.default_rng(3), 4)
    assert a.shape == b.shape == (4, 3, proxy.CROP, proxy.CROP) and a.dtype == np.float32
    again, _ = proxy.pair_batch(pictures, np.random.default_rng(3), 4)
    np.testing.assert_array_equal(a, again)
    # row i of each holds the same picture: with a red, a green and a blue picture, the colour
    # that leads a row leads its partner too (whatever view, occluder or dissolve each got)
    flat = [np.zeros((*proxy.PICTURE_SIZE, 3), np.uint8) for _ in range(3)]
    for channel, picture in enumerate(flat):
        picture[..., channel] = 200
    for seed in range(5):
        a, b = proxy.pair_batch(flat, np.random.default_rng(seed), 3)
        lead_a = (a * proxy.STD[:, None, None] + proxy.MEAN[:, None, None]).mean(axis=(2, 3)).argmax(axis=1)
        lead_b = (b * proxy.STD[:, None, None] + proxy.MEAN[:, None, None]).mean(axis=(2, 3)).argmax(axis=1)
        assert sorted(lead_a) == [0, 1, 2] and (lead_a == lead_b).all()


def test_a_camera_view_is_a_frame_of_the_view_size():
    picture = syn.make_picture(proxy.FIRST_PICTURE_SEED, proxy.PICTURE_SIZE)
    rng = np.random.default_rng(0)
    views = [proxy.camera_view(picture, rng, picture) for _ in range(8)]
    assert all(v.shape == (proxy.VIEW_SIZE[1], proxy.VIEW_SIZE[0], 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 8  # each view differs (pan, zoom, noise)


def test_training_lowers_the_loss():
    torch = pytest.importorskip("torch")
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(**syn.TINY))
    losses = proxy.Training(steps=30, batch=8, pictures=24, learning_rate=1e-3).apply(
        model, log=lambda _: None
    )
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert not model.training  # left ready for inference


def test_built_through_the_product_loader_and_cached(tmp_path):
    from core.model.features import FeatureExtractor

    training = proxy.Training(steps=2, batch=4, pictures=8)
    folder = syn.build_model(tmp_path / "m", syn.TINY, training=training)
    stamp = (folder / "bench-config.json").read_text()
    assert '"training"' in stamp and '"steps": 2' in stamp
    fx = FeatureExtractor.load(folder, device="cpu", precision="fp32")
    cls = fx.embed([syn.make_picture(1, (180, 320))]).cls
    assert cls.shape == (1, syn.TINY["hidden_size"]) and np.isfinite(cls).all()
    # the same recipe again: the cached model is kept; another recipe trains anew
    weights = (folder / "model.safetensors").stat().st_mtime_ns
    syn.build_model(tmp_path / "m", syn.TINY, training=training)
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights
    syn.build_model(tmp_path / "m", syn.TINY, training=proxy.Training(steps=1, batch=4, pictures=8))
    assert '"steps": 1' in (folder / "bench-config.json").read_text()
