"""Demo media made on the spot: a few generated pictures and a short video that shows them.

For trying the tool with no files of one's own (the examples notebook uses them when no
``WEBSSL_IMAGES`` / ``WEBSSL_VIDEO`` is given, so it runs anywhere, Colab included). The
pictures are :func:`core.model.calibration.generated_picture` (the same on every machine);
the video shows each picture in turn with a slow camera pan, with a stretch of noise between
two pictures that matches nothing.

>>> media = write_demo_media("demo/")                         # doctest: +SKIP
>>> media.images_dir, media.video                              # doctest: +SKIP
(PosixPath('demo/images'), PosixPath('demo/demo.mp4'))
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.errors import InvalidArgumentError
from core.media.writer import VideoWriter
from core.model.calibration import generated_picture

DEMO_SEED = 2024


@dataclass(frozen=True, slots=True)
class DemoMedia:
    """Where the demo media were written."""

    images_dir: Path
    images: tuple[Path, ...]  # the pictures, in the order the video shows them
    video: Path
    fps: float
    shot_frames: int  # frames each picture (and the noise stretch) is shown

    @property
    def frame_count(self) -> int:
        return self.shot_frames * (len(self.images) + 1)


def _shot(picture: np.ndarray, frames: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """``frames`` views of ``picture`` at ``size`` (H, W), panning slowly left to right."""
    h, w = size
    big = cv2.resize(picture, (w + w // 8, h + h // 8), interpolation=cv2.INTER_AREA)
    spare = big.shape[1] - w
    for j in range(frames):
        x = round(spare * j / max(1, frames - 1))
        yield np.ascontiguousarray(big[h // 16 : h // 16 + h, x : x + w])


def _noise(frames: int, size: tuple[int, int], rng: np.random.Generator) -> Iterator[np.ndarray]:
    h, w = size
    for _ in range(frames):
        yield cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (w, h))


def write_demo_media(
    folder: str | os.PathLike,
    *,
    images: int = 3,
    shot_frames: int = 12,
    fps: float = 6.0,
    size: tuple[int, int] = (240, 320),
    seed: int = DEMO_SEED,
) -> DemoMedia:
    """Write ``images`` generated pictures (PNG) into ``folder/images`` and a video of them,
    ``folder/demo.mp4`` (H.264): each picture for ``shot_frames`` frames, noise after the first.

    Args:
        folder: where to write (created).
        images: how many pictures (≥ 1).
        shot_frames: frames per picture and for the noise stretch (≥ 2).
        fps: the video's frame rate.
        size: (height, width) of the pictures and the video.
        seed: the first picture's seed (the others follow).

    Raises:
        InvalidArgumentError: a count or size out of range.
    """
    if images < 1 or shot_frames < 2 or fps <= 0 or min(size) < 32:
        raise InvalidArgumentError(
            f"demo media need ≥ 1 image, ≥ 2 frames a shot, fps > 0 and sides ≥ 32 px "
            f"(got {images}, {shot_frames}, {fps}, {size})"
        )
    root = Path(folder)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    pictures = [generated_picture(seed + i, size) for i in range(images)]
    paths = []
    for i, picture in enumerate(pictures):
        path = images_dir / f"picture-{i + 1}.png"
        Image.fromarray(picture).save(path)
        paths.append(path)
    rng = np.random.default_rng(seed)
    video = root / "demo.mp4"
    with VideoWriter(video, fps=fps) as writer:
        for i, picture in enumerate(pictures):
            for frame in _shot(picture, shot_frames, size):
                writer.write(frame)
            if i == 0:
                for frame in _noise(shot_frames, size, rng):
                    writer.write(frame)
    return DemoMedia(images_dir, tuple(paths), video, fps, shot_frames)
