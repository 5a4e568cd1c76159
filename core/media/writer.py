"""Writing browser-playable H.264 MP4 (``yuv420p``, ``+faststart``) frame by frame with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class VideoWriter:
    """Write RGB frames to a browser-playable H.264 MP4, one frame at a time.

    >>> with VideoWriter("out.mp4", fps=30) as w:   # doctest: +SKIP
    ...     w.write(rgb_frame)

    The first frame fixes the size (rounded down to even numbers, as yuv420p requires);
    later frames of another size are resized to it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._rate = Fraction(fps).limit_denominator(1001)
        self._crf = crf
        self._preset = preset
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height)

    def _start(self, width: int, height: int) -> None:
        w, h = max(2, width - width % 2), max(2, height - height % 2)
        self._container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self._rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self._crf), "preset": self._preset}
        self._stream = stream
        self.size = (w, h)

    def write(self, rgb: np.ndarray) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected H×W×3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if self._container is None:
            self._start(rgb.shape[1], rgb.shape[0])
        assert self.size is not None and self._stream is not None and self._container is not None
        w, h = self.size
        if rgb.shape[1] != w or rgb.shape[0] != h:
            if (
                rgb.shape[1] >= w
                and rgb.shape[0] >= h
                and (rgb.shape[1] - w) <= 1
                and (rgb.shape[0] - h) <= 1
            ):
                rgb = rgb[:h, :w]
            else:
                import cv2

                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            return
        assert self._stream is not None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
        if exc_type is not None and self.frames_written == 0:
            self.path.unlink(missing_ok=True)
