"""Synthetic material for the benchmark: pictures, a video with camera motion and cuts, models.

Everything is generated locally and deterministically from seeds, so two runs on two machines
see the same pixels and the same weights:

- :func:`make_picture`: a photo-like RGB picture (gradients, shapes, texture), different per seed;
- :func:`render_video`: an H.264 video of shots over pictures (static, pans, zooms, hand-held
  shake, a dissolve, a fade), with the picture each frame shows as ground truth;
- :func:`build_vitl` / :func:`build_small`: random-weight Dinov2 models saved with
  ``save_pretrained`` plus a DINOv2 preprocessor config, loaded back through
  :meth:`core.features.FeatureExtractor.load` like any Hub model. The ViT-L one has the
  architecture (and so the FLOPs) of ``facebook/webssl-dino300m-full2b-224``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

logger = logging.getLogger(__name__)

Motion = Literal["static", "pan", "fast_pan", "zoom_in", "zoom_out", "shake", "pan_zoom"]
Transition = Literal["cut", "dissolve", "fade"]

#: The default model's architecture (``facebook/webssl-dino300m-full2b-224``).
VITL = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "patch_size": 14,
    "image_size": 224,
    "use_swiglu_ffn": True,
    "layerscale_value": 1e-5,
}
VITL_PARAMS_M = 303.66  # parameters of the real model, in millions

#: A small random Dinov2 whose CLS features rank near-duplicate pictures first (wide random
#: weights and layerscale 1 make the features depend on the pixels, unlike a random ViT-L with
#: layerscale 1e-5, whose CLS output is almost the same for every image).
SMALL = {
    "hidden_size": 192,
    "num_hidden_layers": 8,
    "num_attention_heads": 3,
    "intermediate_size": 384,
    "patch_size": 14,
    "image_size": 224,
    "layerscale_value": 1.0,
    "initializer_range": 0.1,
}
#: The tests' and the smoke benchmark's model: tiny, seconds on any machine. Wide random weights
#: make its CLS features discriminative: near-duplicates score ≥ 0.98, other images and noise
#: ≤ 0.93 (measured), so tests can use a threshold of 0.95.
TINY = {**SMALL, "hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 3, "intermediate_size": 96}


def cache_dir() -> Path:
    """Where models and videos are kept between runs (outside the repository)."""
    env = os.environ.get("WEBSSL_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "webssl-lens-bench"


# -- models ---------------------------------------------------------------------------------
def build_model(folder: Path, config: dict, *, seed: int = 0) -> Path:
    """Save a random-weight ``Dinov2Model`` and a DINOv2 preprocessor config to ``folder``.

    Reuses the folder when it already holds the same config (building ViT-L takes ~15 s).

    Returns:
        ``folder``, ready for ``FeatureExtractor.load(folder)``.
    """
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = Path(folder)
    stamp = folder / "bench-config.json"
    wanted = json.dumps({"config": config, "seed": seed}, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted and (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Dinov2Model(Dinov2Config(**config))
    model.save_pretrained(folder, safe_serialization=True)
    processor_cls = BitImageProcessor
    try:  # transformers ≥ 5 without torchvision warns and falls back to the PIL processor
        from transformers import BitImageProcessorPil as processor_cls  # type: ignore[no-redef]
    except ImportError:
        pass
    processor_cls(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    ).save_pretrained(folder)
    stamp.write_text(wanted)
    return folder


def build_vitl(folder: Path | None = None) -> Path:
    """The default model's architecture with random weights (303.66 M parameters)."""
    return build_model(folder or cache_dir() / "vitl14-random", VITL)


def build_small(folder: Path | None = None) -> Path:
    """The small random Dinov2 used to measure agreement."""
    return build_model(folder or cache_dir() / "small-random", SMALL)


def build_tiny(folder: Path, *, seed: int = 0, **overrides) -> Path:
    """The tiny model (:data:`TINY`, with ``overrides``) in ``folder``."""
    return build_model(folder, {**TINY, **overrides}, seed=seed)


# -- pictures -------------------------------------------------------------------------------
def make_picture(seed: int, size: tuple[int, int] = (720, 1280)) -> np.ndarray:
    """A photo-like RGB uint8 picture (H×W×3): smooth colours, shapes, lines and fine texture."""
    h, w = size
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(14):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 4)
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(h // 20, h // 4)), color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), color, -1)
        elif kind == 2:
            pts = rng.integers(0, [w, h], (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
        else:
            cv2.line(
                img,
                (x, y),
                (int(rng.integers(0, w)), int(rng.integers(0, h))),
                color,
                int(rng.integers(3, 12)),
                cv2.LINE_AA,
            )
    texture = cv2.GaussianBlur(rng.normal(0, 14, (h, w)).astype(np.float32), (0, 0), 1.5)
    return np.clip(img.astype(np.float32) + texture[:, :, None], 0, 255).astype(np.uint8)


# -- the video ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Shot:
    """One shot: a picture seen through a moving camera.

    ``picture`` indexes :attr:`VideoPlan.pictures`; ``transition`` says how the shot begins.
    """

    picture: int
    duration_s: float
    motion: Motion = "static"
    transition: Transition = "cut"
    transition_s: float = 0.0


@dataclass(frozen=True, slots=True)
class VideoPlan:
    """A benchmark video: pictures (by seed), shots, geometry. ``in_collection[i]`` says
    whether picture ``i`` is indexed into the collection (the others are unrelated footage)."""

    picture_seeds: tuple[int, ...]
    in_collection: tuple[bool, ...]
    shots: tuple[Shot, ...]
    fps: float = 30.0
    width: int = 640
    height: int = 360
    distractors: int = 36  # extra collection images that never appear in the video
    noise: float = 2.5  # sensor noise (grey levels, std)
    seed: int = 11

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.shots)

    @property
    def frame_count(self) -> int:
        return sum(int(round(s.duration_s * self.fps)) for s in self.shots)

    def repeated(self, times: int) -> VideoPlan:
        """The same shots ``times`` over (the memory test's longer video)."""
        return VideoPlan(
            self.picture_seeds,
            self.in_collection,
            self.shots * times,
            self.fps,
            self.width,
            self.height,
            self.distractors,
            self.noise,
            self.seed,
        )

    def key(self) -> str:
        import hashlib

        raw = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]


def benchmark_plan() -> VideoPlan:
    """The default benchmark video: 60 s at 30 fps, 640×360, 19 shots.

    Pans, zooms, hand-held shake and static shots of 12 collection pictures and 3 pictures
    that are not in the collection; hard cuts, one dissolve and one fade from black.
    """
    shots = (
        Shot(0, 3.0, "static"),
        Shot(1, 4.0, "pan"),
        Shot(2, 3.0, "zoom_in"),
        Shot(3, 3.0, "shake"),
        Shot(12, 3.0, "pan"),  # not in the collection
        Shot(4, 2.0, "static"),
        Shot(5, 4.0, "pan", "dissolve", 0.5),
        Shot(6, 3.0, "fast_pan"),
        Shot(7, 4.0, "zoom_out"),
        Shot(8, 5.0, "static"),
        Shot(13, 3.0, "shake"),  # not in the collection
        Shot(9, 4.0, "pan_zoom"),
        Shot(10, 2.0, "static"),
        Shot(11, 3.0, "shake"),
        Shot(0, 3.0, "fast_pan"),
        Shot(1, 3.0, "static", "fade", 0.5),
        Shot(14, 2.0, "static"),  # not in the collection
        Shot(2, 3.0, "pan_zoom"),
        Shot(5, 3.0, "zoom_in"),
    )
    seeds = tuple(1000 + i for i in range(15))
    return VideoPlan(seeds, tuple(i < 12 for i in range(15)), shots)


def smoke_plan() -> VideoPlan:
    """A few seconds of video for the smoke test (same kinds of shots, 8 fps, 320×180)."""
    shots = (
        Shot(0, 1.0, "static"),
        Shot(1, 1.0, "pan"),
        Shot(3, 1.0, "shake"),  # not in the collection
        Shot(2, 1.0, "zoom_in", "dissolve", 0.25),
    )
    return VideoPlan(
        (1000, 1001, 1002, 1012),
        (True, True, True, False),
        shots,
        fps=8.0,
        width=320,
        height=180,
        distractors=4,
    )


def _camera(motion: Motion, u: float, rng: np.random.Generator, shake: np.ndarray, j: int):
    """(dx, dy, zoom) of the camera at shot progress ``u`` (0..1); offsets in picture fractions."""
    if motion == "static":
        return 0.0, 0.0, 1.0
    if motion == "pan":
        return -0.06 + 0.12 * u, 0.02 - 0.04 * u, 1.0
    if motion == "fast_pan":
        return -0.12 + 0.24 * u, 0.0, 1.1
    if motion == "zoom_in":
        return 0.0, 0.0, 1.0 + 0.35 * u
    if motion == "zoom_out":
        return 0.0, 0.0, 1.35 - 0.35 * u
    if motion == "shake":
        return float(shake[j, 0]), float(shake[j, 1]), 1.0
    if motion == "pan_zoom":
        return -0.05 + 0.1 * u, 0.0, 1.0 + 0.25 * u
    raise ValueError(f"unknown motion {motion!r}")


def _view(picture: np.ndarray, dx: float, dy: float, zoom: float, size: tuple[int, int]) -> np.ndarray:
    """The camera's view of ``picture``: 85 % of it at zoom 1, centred at (dx, dy) off-centre."""
    ph, pw = picture.shape[:2]
    w, h = size
    win_w = pw * 0.85 / zoom
    scale = w / win_w
    cx, cy = pw / 2 + dx * pw, ph / 2 + dy * ph
    m = np.array([[scale, 0, w / 2 - cx * scale], [0, scale, h / 2 - cy * scale]], np.float32)
    return cv2.warpAffine(picture, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def iter_plan_frames(plan: VideoPlan, pictures: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
    """Frames of the plan with the picture each shows (``-1`` when mostly black)."""
    rng = np.random.default_rng(plan.seed)
    size = (plan.width, plan.height)
    # pictures pre-blurred to the video's scale so that sub-pixel motion does not alias
    blurred = [cv2.GaussianBlur(p, (0, 0), 0.5 * p.shape[1] / plan.width) for p in pictures]
    prev_last: np.ndarray | None = None
    truth_prev = -1
    for shot in plan.shots:
        n = int(round(shot.duration_s * plan.fps))
        walk = np.cumsum(rng.normal(0, 0.004, (n, 2)), axis=0)
        shake = walk - np.linspace(0, 1, n)[:, None] * walk[-1:]  # hand-held: wanders and returns
        trans = int(round(shot.transition_s * plan.fps)) if shot.transition != "cut" else 0
        frame = None
        for j in range(n):
            u = j / max(1, n - 1)
            dx, dy, zoom = _camera(shot.motion, u, rng, shake, j)
            frame = _view(blurred[shot.picture], dx, dy, zoom, size).astype(np.float32)
            truth = shot.picture
            if j < trans:
                a = (j + 1) / (trans + 1)
                other = (
                    prev_last
                    if shot.transition == "dissolve" and prev_last is not None
                    else np.zeros_like(frame)
                )
                frame = a * frame + (1 - a) * other
                if a < 0.5:
                    truth = -1 if shot.transition == "fade" else truth_prev
            frame += rng.normal(0, plan.noise, frame.shape).astype(np.float32)
            out = np.clip(frame, 0, 255).astype(np.uint8)
            yield out, truth
        prev_last = frame
        truth_prev = shot.picture


@dataclass(frozen=True, slots=True)
class BenchVideo:
    """A rendered benchmark video with its ground truth."""

    path: Path
    plan: VideoPlan
    truth: np.ndarray  # per frame: picture number shown (-1: none)

    @property
    def frame_count(self) -> int:
        return len(self.truth)

    @property
    def duration_s(self) -> float:
        return len(self.truth) / self.plan.fps


def pictures_of(plan: VideoPlan, size: tuple[int, int] = (720, 1280)) -> list[np.ndarray]:
    return [make_picture(s, size) for s in plan.picture_seeds]


def render_video(plan: VideoPlan, folder: Path | None = None, *, crf: int = 23) -> BenchVideo:
    """Render (or reuse) the plan's video as H.264 MP4; returns it with its ground truth."""
    from core.media.writer import VideoWriter

    folder = Path(folder or cache_dir() / "videos")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{plan.key()}-crf{crf}.mp4"
    truth_path = path.with_suffix(".truth.npy")
    if path.exists() and truth_path.exists():
        return BenchVideo(path, plan, np.load(truth_path))
    pic_size = (plan.height * 2, plan.width * 2)
    pictures = pictures_of(plan, pic_size)
    truth: list[int] = []
    tmp = path.with_suffix(".partial.mp4")
    with VideoWriter(tmp, fps=plan.fps, crf=crf) as writer:
        for frame, t in iter_plan_frames(plan, pictures):
            writer.write(frame)
            truth.append(t)
    np.save(truth_path, np.asarray(truth, np.int64))
    tmp.replace(path)
    return BenchVideo(path, plan, np.asarray(truth, np.int64))


def write_collection(plan: VideoPlan, folder: Path) -> tuple[list[Path], list[int]]:
    """Write the collection's images (pictures in the collection + distractors) as JPEG files.

    Returns:
        (paths, picture number of each path, or -1 for a distractor)
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = (plan.height * 2, plan.width * 2)
    paths, owners = [], []
    for i, (seed, member) in enumerate(zip(plan.picture_seeds, plan.in_collection, strict=True)):
        if member:
            path = folder / f"picture-{i:02d}.jpg"
            if not path.exists():
                Image.fromarray(make_picture(seed, size)).save(path, quality=92)
            paths.append(path)
            owners.append(i)
    for k in range(plan.distractors):
        path = folder / f"distractor-{k:03d}.jpg"
        if not path.exists():
            Image.fromarray(make_picture(50_000 + k, size)).save(path, quality=92)
        paths.append(path)
        owners.append(-1)
    return paths, owners
