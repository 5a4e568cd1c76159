"""A trained stand-in for the real model: the small Dinov2 taught to see a picture through a camera.

The real model's weights cannot be downloaded here, and random weights are a poor stand-in
wherever what is measured depends on how steady the best match is. With the small random
Dinov2 the every-frame answer on the held-out videos is the right picture on only 85–96 % of
the frames that show one, and the best image leads the runner-up by a median 0.002–0.005 just
before it changes: the answer flickers between pictures 54–72 times a minute with nothing in the
frame to say so, which no sampler can follow. DINO's features are made to stay put under such
changes of view.

:class:`Training` gives the same architecture (:data:`bench.synthetic.SMALL`) a few minutes of
contrastive training (InfoNCE on the [CLS] output, as SimCLR does) on generated pictures that
never appear in the benchmark's videos or collections (:data:`FIRST_PICTURE_SEED` on). Each pair
is a picture, or a camera view of it, and another camera view of it made the way the benchmark's
videos are made (:func:`camera_view`: pan, zoom, an occluder, a dissolve into another picture,
exposure, sensor noise), both prepared as the product prepares a frame (shortest edge 256,
centre crop 224). :func:`build_trained` caches the result like the other bench models.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from bench import synthetic as syn
from core.model.calibration import generated_picture

logger = logging.getLogger(__name__)

FIRST_PICTURE_SEED = 900_000
"""Training pictures are ``generated_picture(FIRST_PICTURE_SEED + k)``: seeds that no benchmark
video, collection or distractor uses (tests check it)."""

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PICTURE_SIZE = (360, 640)  # (H, W) of a training picture: the benchmark videos' frame size
VIEW_SIZE = (455, 256)  # (W, H): a 640×360 frame with its shortest edge resized to 256
CROP = 224


@dataclass(frozen=True)
class Training:
    """How the proxy is trained (part of the cached model's stamp: a change retrains it)."""

    steps: int = 150
    batch: int = 48  # pairs per step
    pictures: int = 2048
    learning_rate: float = 3e-4
    temperature: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def apply(self, model, log: Callable[[str], None] = logger.info) -> list[float]:
        """Train ``model`` (a ``Dinov2Model``) in place; returns the loss of every step."""
        return train(model, self, log)


TRAINING = Training()
SMOKE_TRAINING = Training(steps=3, batch=4, pictures=16)
"""The smoke benchmark's: the same code path in seconds (not a useful model)."""


def prepare(view: np.ndarray) -> np.ndarray:
    """A ``VIEW_SIZE`` RGB view as the model's input (3×224×224, normalised): its centre crop."""
    h, w = view.shape[:2]
    y0, x0 = (h - CROP) // 2, (w - CROP) // 2
    crop = view[y0 : y0 + CROP, x0 : x0 + CROP].astype(np.float32) / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)


def still(picture: np.ndarray) -> np.ndarray:
    """The picture itself, as a collection image is seen (resized to ``VIEW_SIZE``)."""
    return cv2.resize(picture, VIEW_SIZE, interpolation=cv2.INTER_AREA)


def camera_view(picture: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """A frame of ``picture`` as the benchmark's videos show one (``VIEW_SIZE``, uint8): panned
    and zoomed, sometimes partly covered, sometimes dissolving into ``other``, with a change of
    exposure and sensor noise."""
    dx, dy = rng.uniform(-0.15, 0.15, 2)
    frame = syn.picture_view(picture, float(dx), float(dy), float(rng.uniform(0.95, 1.45)), VIEW_SIZE)
    frame = frame.astype(np.float32)
    if rng.random() < 0.3:
        syn.occlude(frame, syn.make_occluder(rng, VIEW_SIZE), float(rng.uniform(0.1, 0.45)))
    if rng.random() < 0.2:
        a = float(rng.uniform(0.55, 1.0))
        behind = syn.picture_view(other, 0.0, 0.0, 1.0, VIEW_SIZE) if rng.random() < 0.7 else 0.0
        frame = a * frame + (1 - a) * behind
    frame *= float(rng.uniform(0.7, 1.15))
    frame += rng.normal(0, float(rng.uniform(0, 6)), frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def pair_batch(
    pictures: list[np.ndarray], rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` pairs of model inputs (two N×3×224×224 arrays), row i of each showing the same
    picture: the picture or a view of it, and another view of it."""
    a, b = [], []
    for i in rng.choice(len(pictures), size, replace=False):
        picture, other = pictures[int(i)], pictures[int(rng.integers(len(pictures)))]
        first = still(picture) if rng.random() < 0.5 else camera_view(picture, rng, other)
        a.append(prepare(first))
        b.append(prepare(camera_view(picture, rng, other)))
    return np.stack(a), np.stack(b)


def info_nce(za, zb, temperature: float):
    """Symmetric InfoNCE of two batches of features whose rows i belong together."""
    import torch
    import torch.nn.functional as F

    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    logits = za @ zb.T / temperature
    target = torch.arange(len(za))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train(model, training: Training, log: Callable[[str], None] = logger.info) -> list[float]:
    """Train ``model``'s [CLS] output (``pooler_output``) with :func:`info_nce` on
    :func:`pair_batch` batches: AdamW, 10 warm-up steps, cosine decay, gradients clipped at 1."""
    import torch

    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    pictures = [generated_picture(FIRST_PICTURE_SEED + k, PICTURE_SIZE) for k in range(training.pictures)]
    opt = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=0.05)
    losses: list[float] = []
    model.train()
    for step in range(training.steps):
        warm = min(1.0, (step + 1) / 10)
        for group in opt.param_groups:
            group["lr"] = (
                training.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * step / training.steps))
            )
        a, b = pair_batch(pictures, rng, min(training.batch, len(pictures)))
        z = model(pixel_values=torch.from_numpy(np.concatenate([a, b]))).pooler_output
        loss = info_nce(z[: len(a)], z[len(a) :], training.temperature)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == training.steps - 1:
            log(f"proxy training: step {step + 1}/{training.steps}, loss {losses[-1]:.3f}")
    model.eval()
    return losses


def build_trained(folder: Path | None = None, training: Training = TRAINING) -> Path:
    """The small Dinov2 trained by ``training`` (about 13 minutes on 2 cores; cached)."""
    return syn.build_model(folder or syn.cache_dir() / "small-trained", syn.SMALL, training=training)
