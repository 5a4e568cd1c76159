"""Video decoding with PyAV (any container / codec FFmpeg reads).

Frames stream one at a time: nothing here holds a whole video in memory. Times are the
frames' presentation timestamps relative to the stream start, not ``index / fps`` guesses.
Writing videos: :mod:`core.media.writer`.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import VideoOpenError
from core.lazy import av
from core.media.files import NotARegularFileError, file_sha256, open_regular
from core.media.images import iter_files

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a video is: identity, timing and geometry (after rotation)."""

    path: str
    sha256: str
    fps: float
    frame_count: int  # from the container; estimated from duration × fps when it has none
    duration_s: float
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the decoded frames are turned to display upright
    size_bytes: int
    codec: str
    frame_count_exact: bool = True
    mtime_ns: int | None = None  # the file's modification time before it was hashed


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame, upright, as RGB uint8 (H×W×3)."""

    index: int  # position in presentation order, from 0
    time_s: float  # presentation time relative to the first frame's stream start
    rgb: np.ndarray


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    try:
        with open_regular(p) as fh:  # never hands FFmpeg a FIFO or a device: it would block
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError as err:
        raise VideoOpenError(str(path), "file not found") from err
    except NotARegularFileError as err:
        reason = "is a folder, not a video file" if p.is_dir() else err.strerror
        raise VideoOpenError(str(path), reason) from err
    except OSError as err:
        raise VideoOpenError(str(path), f"cannot read the file ({err.strerror or err})") from err
    if size == 0:
        raise VideoOpenError(str(path), "empty file (0 bytes)")
    try:
        container = av.open(str(p), mode="r")
    except av.FFmpegError as err:
        raise VideoOpenError(str(path), f"not a video FFmpeg can read ({err.strerror or err})") from err
    if not container.streams.video:
        container.close()
        raise VideoOpenError(str(path), "the file has no video stream (audio only or not a video)")
    formats = set(container.format.name.split(","))
    if "image2" in formats or any(name.endswith("_pipe") for name in formats):
        container.close()  # one rule for the CLI and the dashboard: a still image is not a video
        raise VideoOpenError(
            str(path),
            "it is a still image, not a video: to find the images like it, search the collection with it "
            "(python -m core search IMAGE -c NAME, or Browse & search in the dashboard)",
        )
    return container


def _rotation_of(stream: av.video.stream.VideoStream, first: av.VideoFrame | None) -> int:
    rot = 0
    if first is not None:
        rot = int(round(getattr(first, "rotation", 0) or 0))
    if not rot:
        tag = stream.metadata.get("rotate")
        if tag:
            try:
                rot = -int(tag)  # legacy tag is clockwise; frame.rotation is counter-clockwise
            except ValueError:
                rot = 0
    return rot % 360


def probe_video(
    path: str | os.PathLike,
    *,
    compute_hash: bool = True,
    hash_progress: Callable[[int, int], None] | None = None,
) -> VideoInfo:
    """Read a video's metadata (decodes only the first frame).

    Args:
        compute_hash: also hash the file's bytes (seconds for a long video).
        hash_progress: called as ``(bytes hashed, file size)`` while hashing.

    Raises:
        VideoOpenError: missing, empty, unreadable, or no video stream / no decodable frame.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.FFmpegError as err:
            raise VideoOpenError(str(path), f"the video stream cannot be decoded ({err})") from err
        if first is None:
            raise VideoOpenError(str(path), "the video stream has no frames")
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frames = int(stream.frames or 0)
        exact = frames > 0
        if not exact:
            frames = max(1, int(round(duration * fps))) if fps and duration else 0
        if fps <= 0 and duration > 0 and frames > 0:
            fps = frames / duration
        if duration <= 0 and fps > 0 and frames > 0:
            duration = frames / fps
        rotation = _rotation_of(stream, first)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        codec = stream.codec_context.name
    finally:
        container.close()
    stat = Path(path).stat()  # before hashing: a file changed while it is read is hashed again next time
    return VideoInfo(
        path=str(path),
        sha256=file_sha256(path, hash_progress) if compute_hash else "",
        fps=fps,
        frame_count=frames,
        duration_s=duration,
        width=w,
        height=h,
        rotation=rotation,
        size_bytes=stat.st_size,
        codec=codec,
        frame_count_exact=exact,
        mtime_ns=stat.st_mtime_ns,
    )


def iter_video_files(paths: Iterable[str | os.PathLike], *, recursive: bool = True) -> Iterator[Path]:
    """Expand files and folders into video files, like :func:`core.media.images.iter_image_files`
    (folders: files with a :data:`VIDEO_EXTENSIONS` extension; a file given directly as is).

    Raises:
        FileNotFoundError: one of ``paths`` does not exist.
    """
    return iter_files(paths, VIDEO_EXTENSIONS, recursive=recursive)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))


FrameFilter = Callable[[int, float], bool]


@dataclass(slots=True)
class DecodeReport:
    """What :func:`iter_frames` decoded; filled in as it goes, final once ``complete``.

    Attributes:
        decoded: frames decoded.
        lost: frames that corrupt data cost (found from the timestamp gap after it); later
            frames keep their true numbers.
        corrupt_packets: packets skipped as corrupt.
        expected: the frame count the container states, when it states one.
        duration_s: presentation time covered by the decoded frames (to the end of the last).
        complete: the stream was read to its end (not stopped by ``max_frames`` or the caller).
    """

    decoded: int = 0
    lost: int = 0
    corrupt_packets: int = 0
    expected: int | None = None
    duration_s: float = 0.0
    complete: bool = False

    @property
    def ended_early(self) -> bool:
        """The stream ended well before the frame count its container states (a truncated file)."""
        if not self.complete or not self.expected:
            return False
        return self.decoded + self.lost < self.expected - max(2, round(0.01 * self.expected))

    def describe(self, path: str | os.PathLike) -> str:
        """One line for the user: what was decoded, and what went wrong."""
        text = f"{path}: decoded {self.decoded} frames ({self.duration_s:.1f} s)"
        if self.expected:
            text += f" of the {self.expected} its container states"
        if self.lost:
            text += f"; {self.lost} frames lost to corrupt data ({self.corrupt_packets} bad packets)"
        if self.ended_early:
            text += "; the stream ended early: the file may be truncated"
        return text


def iter_frames(
    path: str | os.PathLike,
    *,
    select: FrameFilter | None = None,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    threads: bool = True,
    report: DecodeReport | None = None,
) -> Iterator[Frame]:
    """Decode a video frame by frame.

    Args:
        path: the video file.
        select: ``select(index, time_s) -> bool``; frames it rejects are decoded (codecs need
            that) but not converted to RGB, which is where most per-frame cost lies.
        max_frames: stop after this many frames (selected or not).
        size: optional (width, height) to scale to while converting (cheap, in FFmpeg).
        threads: let FFmpeg decode with several threads.
        report: filled with what was decoded (see :class:`DecodeReport`). A stream that ends
            early or loses frames to corrupt data is also logged as a warning.

    Yields:
        :class:`Frame` objects, upright, in presentation order. A frame's ``index`` is its
        position in the stream: frames lost to corrupt data leave a gap (found from the
        timestamps), so later frames keep their numbers; ``time_s`` is its timestamp.

    Raises:
        VideoOpenError: the file cannot be opened. Corrupt packets later in the file are
            skipped with a warning.
    """
    report = report if report is not None else DecodeReport()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"
        start = stream.start_time or 0
        tb = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        report.expected = int(stream.frames or 0) or None
        index = 0
        rotation: int | None = None
        last_time: float | None = None
        steps: deque[float] = deque(maxlen=15)  # recent frame durations
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError as err:
                report.corrupt_packets += 1
                if report.corrupt_packets <= 3:
                    logger.warning("%s: skipping a corrupt packet (%s)", path, err)
                continue
            for frame in decoded:
                if frame.pts is not None:
                    time_s = float((frame.pts - start) * tb)
                else:
                    time_s = index / fps if fps else 0.0
                if last_time is not None:
                    gap = time_s - last_time
                    step = float(np.median(steps)) if steps else (1 / fps if fps else 0.0)
                    if report.corrupt_packets and step > 0 and gap > 1.5 * step:
                        # after corrupt data, a timestamp gap is frames it cost (the decoder
                        # outputs frames late, so the gap need not follow the bad packet)
                        missing = round(gap / step) - 1
                        report.lost += missing
                        index += missing
                    elif gap > 0:
                        steps.append(gap)
                if max_frames is not None and index >= max_frames:
                    return
                if rotation is None:
                    rotation = _rotation_of(stream, frame)
                if select is None or select(index, time_s):
                    if size is not None:
                        w, h = size if rotation in (0, 180) else (size[1], size[0])
                        rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
                    else:
                        rgb = frame.to_ndarray(format="rgb24")
                    yield Frame(index=index, time_s=time_s, rgb=_upright(rgb, rotation))
                report.decoded += 1
                report.duration_s = time_s + (1 / fps if fps else 0.0)
                last_time = time_s
                index += 1
        report.complete = True
        if report.corrupt_packets or report.ended_early:
            logger.warning("%s", report.describe(path))
    finally:
        container.close()


def read_frame(path: str | os.PathLike, frame_index: int, time_s: float) -> np.ndarray:
    """The single frame shown at ``time_s`` (frame ``frame_index``), upright RGB uint8.

    Seeks to the key frame before ``time_s`` and decodes forward to the first frame whose
    presentation time reaches it (times as :func:`iter_frames` reports them), so frame 50,000
    of a long video costs a few dozen decoded frames. Falls back to decoding from the start
    where the container cannot seek.

    Raises:
        VideoOpenError: the video cannot be opened or has no such frame.
    """
    container = _open(path)
    rgb = None
    try:
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1)
        start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        half_frame = 0.5 / float(rate) if rate else 0.02
        target = start + int((time_s - half_frame) / tb) if time_s > half_frame else start
        container.seek(max(target, start), stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            last = frame
            if float((frame.pts - start) * tb) >= time_s - half_frame:
                break
        if last is not None:
            rgb = _upright(last.to_ndarray(format="rgb24"), _rotation_of(stream, last))
    except av.FFmpegError as err:
        logger.warning("%s: seeking failed (%s); decoding from the start", path, err)
    finally:
        container.close()
    if rgb is None:
        wanted = int(frame_index)
        for frame in iter_frames(path, select=lambda i, _t: i == wanted, max_frames=wanted + 1):
            rgb = frame.rgb
        if rgb is None:
            raise VideoOpenError(str(path), f"it has no frame {frame_index}")
    return rgb


def format_time(seconds: float) -> str:
    """``m:ss.s`` (or ``h:mm:ss.s``) for a time in seconds."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{int(h)}:{int(m):02d}:{s:04.1f}"
    return f"{int(m)}:{s:04.1f}"
