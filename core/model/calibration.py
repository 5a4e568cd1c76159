"""Generated pictures: photo-like RGB images made from a seed, identical on every machine.

The int8 path calibrates and validates its quantisation on them (no download, no user data),
and the benchmark renders its videos and collections from them.
"""

from __future__ import annotations

import cv2
import numpy as np


def generated_picture(seed: int, size: tuple[int, int] = (720, 1280)) -> np.ndarray:
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
