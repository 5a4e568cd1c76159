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
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from core.model.calibration import generated_picture

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
def build_model(folder: Path, config: dict, *, seed: int = 0, outliers: bool = False, training=None) -> Path:
    """Save a random-weight ``Dinov2Model`` and a DINOv2 preprocessor config to ``folder``.

    With ``outliers``, the weights get DINOv2-like outlier activations (:func:`inject_outliers`).
    With ``training`` (a :class:`bench.proxy.Training`), the random model is trained by it first.

    Reuses the folder when it already holds the same config (building ViT-L takes ~15 s).

    Returns:
        ``folder``, ready for ``FeatureExtractor.load(folder)``.
    """
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = Path(folder)
    stamp = folder / "bench-config.json"
    wanted = json.dumps(
        {
            "config": config,
            "seed": seed,
            **({"outliers": 1} if outliers else {}),
            **({"training": training.as_dict()} if training is not None else {}),
        },
        sort_keys=True,
    )
    if stamp.exists() and stamp.read_text() == wanted and (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Dinov2Model(Dinov2Config(**config))
    if outliers:
        inject_outliers(model, seed=seed)
    if training is not None:
        training.apply(model)
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


def inject_outliers(model, *, channels: int = 4, factor: float = 100.0, seed: int = 0) -> None:
    """Give a Dinov2 model DINOv2-like outlier activations without changing what it computes.

    Trained DINOv2 weights have a few channels whose activations are ~100× the rest; random
    weights have none, so an int8 scheme that looks exact on them can fail on the real model.
    In every block, ``channels`` channels of each quantisable linear layer's input are made
    ``factor`` times larger and the layer's matching weight columns ``factor`` times smaller, so
    that the fp32 function is unchanged (up to rounding) but the activations are not:

    - the outputs of ``norm1`` and ``norm2`` (inputs of q/k/v and of the MLP);
    - the value projection's output (input of the attention's output projection);
    - the SwiGLU's ``up_proj`` output (input of ``down_proj``), which scales the hidden unit
      by ``factor`` only where the token excites it: token-dependent massive activations.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)

    def pick(n: int) -> torch.Tensor:
        return torch.randperm(n, generator=gen)[:channels]

    with torch.no_grad():
        for layer in model.encoder.layer:
            att, mlp = layer.attention, layer.mlp
            first = [att.q_proj, att.k_proj, att.v_proj]
            second = [mlp.gate_proj, mlp.up_proj] if hasattr(mlp, "up_proj") else [mlp.fc1]
            for norm, consumers in ((layer.norm1, first), (layer.norm2, second)):
                c = pick(norm.weight.numel())
                norm.weight[c] *= factor
                norm.bias[c] *= factor
                for lin in consumers:
                    lin.weight[:, c] /= factor
            c = pick(att.v_proj.out_features)
            att.v_proj.weight[c] *= factor
            att.v_proj.bias[c] *= factor
            att.o_proj.weight[:, c] /= factor
            if hasattr(mlp, "up_proj"):
                c = pick(mlp.up_proj.out_features)
                mlp.up_proj.weight[c] *= factor
                mlp.up_proj.bias[c] *= factor
                mlp.down_proj.weight[:, c] /= factor


#: The numerics stress model: ViT-L whose blocks all contribute (layerscale 1; with the 1e-5 of a
#: fresh model every precision scores ≈ 1 trivially), with outlier activations injected.
VITL_STRESS = {**VITL, "layerscale_value": 1.0}


def build_vitl_outliers(folder: Path | None = None) -> Path:
    """ViT-L (:data:`VITL_STRESS`) with DINOv2-like outlier activations: the int8 bar."""
    return build_model(folder or cache_dir() / "vitl14-ls1-outliers", VITL_STRESS, outliers=True)


def build_small(folder: Path | None = None) -> Path:
    """The small random Dinov2 used to measure agreement."""
    return build_model(folder or cache_dir() / "small-random", SMALL)


def build_tiny(folder: Path, *, seed: int = 0, **overrides) -> Path:
    """The tiny model (:data:`TINY`, with ``overrides``) in ``folder``."""
    return build_model(folder, {**TINY, **overrides}, seed=seed)


# -- pictures -------------------------------------------------------------------------------
make_picture = generated_picture  # the product's calibration pictures are the benchmark's too


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
    occlusion: float = 0.0  # share of the view's width an unrelated object covers at its widest


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


def random_plan(seed: int, duration_s: float = 60.0) -> VideoPlan:
    """A generated video plan of about ``duration_s``: shots of 1.5–7 s over 15 pictures (12 in
    the collection), every kind of camera motion, cuts, dissolves and fades, and partial
    occlusion by an unrelated object in about a quarter of the shots. Different seeds give
    different pictures, collections and shot sequences (for tuning on some and testing on others).
    """
    rng = np.random.default_rng(seed)
    motions: tuple[Motion, ...] = ("static", "pan", "fast_pan", "zoom_in", "zoom_out", "shake", "pan_zoom")
    shots: list[Shot] = []
    total, previous = 0.0, -1
    while total < duration_s - 1.0:
        length = float(min(round(rng.uniform(1.5, 7.0), 1), max(1.5, duration_s - total)))
        picture = previous
        while picture == previous:
            picture = int(rng.integers(0, 15))
        transition = rng.choice(["cut", "dissolve", "fade"], p=[0.7, 0.2, 0.1]) if shots else "cut"
        shots.append(
            Shot(
                picture,
                length,
                motions[int(rng.integers(0, len(motions)))],
                str(transition),  # type: ignore[arg-type]
                0.5 if transition != "cut" else 0.0,
                float(rng.uniform(0.2, 0.45)) if rng.random() < 0.25 else 0.0,
            )
        )
        total, previous = total + length, picture
    seeds = tuple(10_000 * (seed + 1) + i for i in range(15))
    return VideoPlan(seeds, tuple(i < 12 for i in range(15)), tuple(shots), seed=seed)


TUNING_SEEDS = (1, 2, 3)
"""The generated videos (:func:`random_plan`) the sampling defaults were tuned on."""
HELD_OUT_SEEDS = (101, 102, 103)
"""Generated videos never used for tuning: the sampling targets are reported on these."""


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


def picture_view(picture: np.ndarray, dx: float, dy: float, zoom: float, size: tuple[int, int]) -> np.ndarray:
    """The camera's view of ``picture``: 85 % of it at zoom 1, centred at (dx, dy) off-centre."""
    ph, pw = picture.shape[:2]
    w, h = size
    win_w = pw * 0.85 / zoom
    scale = w / win_w
    cx, cy = pw / 2 + dx * pw, ph / 2 + dy * ph
    m = np.array([[scale, 0, w / 2 - cx * scale], [0, scale, h / 2 - cy * scale]], np.float32)
    return cv2.warpAffine(picture, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_occluder(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """An unrelated object (a flat colour with a blurred texture) as tall as the view."""
    w, h = size
    base = rng.integers(0, 256, 3).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 30, (h, w)).astype(np.float32), (0, 0), 3)
    return np.clip(base[None, None, :] + texture[:, :, None], 0, 255)


def occlude(frame: np.ndarray, occluder: np.ndarray, share: float) -> None:
    """Cover ``share`` of the frame's width from the left with the occluder (in place): an object
    that slides in front of the camera and out again."""
    cover = int(round(share * frame.shape[1]))
    if cover > 0:
        frame[:, :cover] = occluder[:, :cover]


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
        occluder = make_occluder(rng, size) if shot.occlusion > 0 else None
        for j in range(n):
            u = j / max(1, n - 1)
            dx, dy, zoom = _camera(shot.motion, u, rng, shake, j)
            frame = picture_view(blurred[shot.picture], dx, dy, zoom, size).astype(np.float32)
            if occluder is not None:
                occlude(frame, occluder, shot.occlusion * math.sin(math.pi * u))
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
