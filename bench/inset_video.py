"""The region benchmark's video: collection pictures inserted into part of moving frames.

Each shot is a background picture (never in the collection) seen through a panning camera, with
one collection picture warped into it at 1/2, 1/3, 1/4 or 1/6 of the frame's width, anywhere
in the frame, with perspective (each corner moved by up to :data:`PERSPECTIVE` of the
picture's size, as a poster seen from the side) and a slow drift; some shots show no picture
at all. The truth is per frame: which picture, at which width, in which box.
:mod:`bench.regions` measures region mode on it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from bench import synthetic as syn

WIDTHS = (1 / 2, 1 / 3, 1 / 4, 1 / 6)
"""Widths of the inserted pictures, as shares of the frame's width."""
PERSPECTIVE = 0.10


@dataclass(frozen=True, slots=True)
class InsetPlan:
    """A region benchmark video: ``shots_per_width`` shots at each width plus as many without a
    picture, ``frames_per_shot`` frames each, in a seeded random order."""

    shots_per_width: int = 24
    frames_per_shot: int = 6
    fps: float = 10.0
    width: int = 640
    height: int = 360
    pictures: int = 12  # collection pictures that get inserted
    distractors: int = 36  # collection images never shown
    backgrounds: int = 8
    noise: float = 2.5
    seed: int = 23

    @property
    def frame_count(self) -> int:
        """Frames the rendered video has (:func:`_shots`, ``frames_per_shot`` each)."""
        return len(_shots(self)) * self.frames_per_shot

    def key(self) -> str:
        import hashlib

        raw = json.dumps({**asdict(self), "perspective": PERSPECTIVE, "widths": WIDTHS}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def picture_seed(self, i: int) -> int:
        return 3000 + i

    def distractor_seed(self, i: int) -> int:
        return 70_000 + i

    def background_seed(self, i: int) -> int:
        return 90_000 + i


def smoke_inset_plan() -> InsetPlan:
    return InsetPlan(
        shots_per_width=2, frames_per_shot=3, width=320, height=180, pictures=4, distractors=4, backgrounds=2
    )


@dataclass(frozen=True, slots=True, eq=False)
class InsetVideo:
    """A rendered region benchmark video and its truth, per frame."""

    path: Path
    plan: InsetPlan
    picture: np.ndarray  # picture number shown (-1: none)
    share: np.ndarray  # its width as a share of the frame's (0: none)
    boxes: np.ndarray  # its bounding box in frame pixels (NaN: none)

    @property
    def frame_count(self) -> int:
        return len(self.picture)


def _shots(plan: InsetPlan) -> list[tuple[float, int, int]]:
    """(width share or 0, picture, background) per shot, in a seeded order."""
    rng = np.random.default_rng(plan.seed)
    shots = [(w, -1, -1) for w in WIDTHS for _ in range(plan.shots_per_width)]
    shots += [(0.0, -1, -1)] * plan.shots_per_width
    order = rng.permutation(len(shots))
    return [
        (
            shots[i][0],
            int(rng.integers(plan.pictures)) if shots[i][0] else -1,
            int(rng.integers(plan.backgrounds)),
        )
        for i in order
    ]


def _inset(frame: np.ndarray, picture: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """``picture`` warped onto the quadrilateral ``quad`` (4×2, clockwise from top-left) of ``frame``."""
    h, w = frame.shape[:2]
    ph, pw = picture.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    scale = pw / max(1.0, float(np.ptp(quad[:, 0])))
    source = cv2.GaussianBlur(picture, (0, 0), 0.5 * scale) if scale > 1 else picture  # no aliasing
    warped = cv2.warpPerspective(source, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return frame * (1 - alpha) + warped.astype(np.float32) * alpha


def iter_inset_frames(plan: InsetPlan):
    """Frames of the plan with (picture, width share, box) each."""
    rng = np.random.default_rng(plan.seed + 1)
    big = (plan.height * 2, plan.width * 2)
    pictures = [syn.make_picture(plan.picture_seed(i), big) for i in range(plan.pictures)]
    backgrounds = [
        cv2.GaussianBlur(syn.make_picture(plan.background_seed(i), big), (0, 0), 1.0)
        for i in range(plan.backgrounds)
    ]
    w, h = plan.width, plan.height
    for share, picture, background in _shots(plan):
        n = plan.frames_per_shot
        pan = rng.uniform(-0.1, 0.1, 2)
        if share:
            pw = share * w
            ph = pw * pictures[picture].shape[0] / pictures[picture].shape[1]
            x0, y0 = rng.uniform(0, w - pw), rng.uniform(0, h - ph)
            corners = np.array([[x0, y0], [x0 + pw, y0], [x0 + pw, y0 + ph], [x0, y0 + ph]])
            corners += rng.uniform(-PERSPECTIVE, PERSPECTIVE, (4, 2)) * [pw, ph]
            drift = rng.uniform(-0.02, 0.02, 2) * [w, h]  # over the shot
        for j in range(n):
            u = j / max(1, n - 1)
            frame = syn.picture_view(
                backgrounds[background], pan[0] * (2 * u - 1), pan[1] * (2 * u - 1), 1.15, (w, h)
            )
            frame = frame.astype(np.float32)
            box = np.full(4, np.nan)
            if share:
                quad = np.clip(corners + drift * u, [0, 0], [w - 1, h - 1])
                frame = _inset(frame, pictures[picture], quad)
                box = np.array([*quad.min(0), *quad.max(0)])
            frame += rng.normal(0, plan.noise, frame.shape).astype(np.float32)
            yield np.clip(frame, 0, 255).astype(np.uint8), picture, share, box


def render_inset_video(plan: InsetPlan, folder: Path) -> InsetVideo:
    """Render (or reuse) the plan's video as H.264 MP4, with its truth."""
    from core.media.writer import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"regions-{plan.key()}.mp4"
    truth_path = path.with_suffix(".truth.npz")
    if path.exists() and truth_path.exists():
        t = np.load(truth_path)
        return InsetVideo(path, plan, t["picture"], t["share"], t["boxes"])
    pictures, shares, boxes = [], [], []
    tmp = path.with_suffix(".partial.mp4")
    with VideoWriter(tmp, fps=plan.fps, crf=18) as writer:
        for frame, picture, share, box in iter_inset_frames(plan):
            writer.write(frame)
            pictures.append(picture)
            shares.append(share)
            boxes.append(box)
    truth = {"picture": np.array(pictures), "share": np.array(shares), "boxes": np.array(boxes)}
    np.savez(truth_path, **truth)
    tmp.replace(path)
    return InsetVideo(path, plan, truth["picture"], truth["share"], truth["boxes"])


def write_inset_collection(plan: InsetPlan, folder: Path) -> tuple[list[Path], list[int]]:
    """The collection as JPEG files: the pictures that get inserted and the distractors.

    Returns:
        (paths, picture number of each path, -1 for a distractor)
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    size = (plan.height * 2, plan.width * 2)
    paths, owners = [], []
    for i in range(plan.pictures + plan.distractors):
        picture = i < plan.pictures
        path = folder / (f"picture-{i:02d}.jpg" if picture else f"distractor-{i - plan.pictures:03d}.jpg")
        if not path.exists():
            seed = plan.picture_seed(i) if picture else plan.distractor_seed(i - plan.pictures)
            Image.fromarray(syn.make_picture(seed, size)).save(path, quality=92)
        paths.append(path)
        owners.append(i if picture else -1)
    return paths, owners


# -- scoring -----------------------------------------------------------------------------------
