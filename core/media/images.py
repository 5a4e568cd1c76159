"""Reading image files into RGB arrays, hashing them, and finding them on disk.

Every image that enters the index goes through :func:`load_image` (files) or
:func:`decode_image_bytes` (uploads). Both return a :class:`LoadedImage`: an H×W×3 ``uint8``
array in RGB order with the EXIF orientation applied, plus the SHA-256 of the original bytes.
Anything that cannot be read or decoded raises :class:`~core.errors.ImageLoadError` with a
reason a user can act on ("empty file (0 bytes)", "truncated or corrupt image data ...").

Conversion rules (see :func:`to_rgb`):

* transparent images (RGBA, LA, PA, palette or RGB/L with a transparency key) are composited
  over a **white** background, the way most viewers show them;
* 16-bit images are scaled to 8 bits (``value / 257``), not clipped;
* 32-bit float images in ``[0, 1]`` are multiplied by 255, other float ranges are stretched
  linearly from their minimum..maximum to 0..255;
* animated GIF/WebP and multi-page TIFF give their first frame.

Decompression bombs: an image whose header claims more than :data:`MAX_IMAGE_PIXELS` pixels is
refused after ``Image.open`` read the header and before any pixel data is decoded. This check
does not depend on Pillow's global ``Image.MAX_IMAGE_PIXELS``; Pillow's own
``DecompressionBombError`` (and its warning, when warnings are escalated to errors) is turned
into an :class:`~core.errors.ImageLoadError` too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageLoadError, InvalidArgumentError
from core.media.files import NotARegularFileError, read_regular

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "THUMBNAIL_SIZE",
    "LoadedImage",
    "decode_image_bytes",
    "iter_image_files",
    "load_image",
    "make_thumbnail",
    "to_rgb",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)
"""File extensions (lower-case, with the dot) that :func:`iter_image_files` picks up in folders."""

MAX_IMAGE_PIXELS: int = 100_000_000
"""Images with more pixels than this are refused as possible decompression bombs."""

THUMBNAIL_SIZE = 256
"""Longest side, in pixels, of the thumbnails stored in the index."""

# What Pillow's format plugins raise on malformed or truncated data.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    struct.error,
    IndexError,
)
# Malformed EXIF blocks additionally show up as KeyError/TypeError inside ImageOps.exif_transpose.
_EXIF_ERRORS: tuple[type[BaseException], ...] = (*_DECODE_ERRORS, KeyError, TypeError)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_PIL_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A decoded image, ready for the model.

    Attributes:
        path: The path (or upload name) as given, as a string.
        rgb: H×W×3 ``uint8`` array in RGB order, C-contiguous and writable, EXIF orientation
            applied.
        sha256: Hex SHA-256 digest of the file's bytes (not of the pixels).
        width: Width in pixels, after the EXIF rotation.
        height: Height in pixels, after the EXIF rotation.
    """

    path: str
    rgb: np.ndarray
    sha256: str
    width: int
    height: int


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read and decode an image file.

    The file is read once; the SHA-256 and the pixels come from the same bytes.

    Args:
        path: The image file. Its extension is not checked: the format is detected from the
            content.

    Returns:
        The decoded image (see :class:`LoadedImage`).

    Raises:
        ImageLoadError: If the file is missing, unreadable, empty, not an image, corrupt,
            too large, or of an unsupported pixel format. ``err.reason`` says which.
    """
    name = os.fspath(path)
    return decode_image_bytes(read_image_file(name), name=name)


def read_image_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an image file, for :func:`decode_image_bytes` (indexing hashes them first and
    decodes only content it has not stored).

    Raises:
        ImageLoadError: If the file is missing, unreadable or not a regular file.
    """
    name = os.fspath(path)
    try:
        return read_regular(name)
    except FileNotFoundError as err:
        raise ImageLoadError(name, "file not found") from err
    except IsADirectoryError as err:
        raise ImageLoadError(name, "is a directory") from err
    except NotARegularFileError as err:
        reason = "is a directory" if os.path.isdir(name) else err.strerror
        raise ImageLoadError(name, reason) from err
    except PermissionError as err:
        # Windows reports opening a directory as a permission error.
        reason = "is a directory" if os.path.isdir(name) else "permission denied"
        raise ImageLoadError(name, reason) from err
    except OSError as err:
        raise ImageLoadError(name, f"cannot read file ({err.strerror or err})") from err


def decode_image_bytes(
    data: bytes | bytearray | memoryview, name: str = "<upload>", *, sha256: str | None = None
) -> LoadedImage:
    """Decode an image held in memory, e.g. an upload.

    Args:
        data: The encoded image (the bytes of a JPEG, PNG, ... file).
        name: Shown in error messages and stored as :attr:`LoadedImage.path`.
        sha256: the digest of ``data`` where the caller has it already.

    Returns:
        The decoded image; ``sha256`` is the digest of ``data``.

    Raises:
        ImageLoadError: If the bytes are empty, not an image, corrupt, too large, or of an
            unsupported pixel format.
    """
    if len(data) == 0:
        raise ImageLoadError(name, "empty file (0 bytes)")
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    # Pillow warns (a corrupt EXIF block, ...) with multi-line UserWarnings: each becomes one
    # log line naming the file, instead of text on the console.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _decode(data, name, sha256)
        finally:
            for warning in caught:
                logger.warning("%s: %s", name, " ".join(str(warning.message).split()))


def _decode(data: bytes | bytearray | memoryview, name: str, sha256: str) -> LoadedImage:

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise ImageLoadError(name, "not an image (cannot identify image format)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(name, _pil_bomb_reason(err)) from err
    except _DECODE_ERRORS as err:
        raise ImageLoadError(name, f"corrupt image header ({err})") from err

    with img:
        width, height = img.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageLoadError(
                name,
                f"image too large: {width}×{height} = {_megapixels(width * height)} MP exceeds the "
                f"{_megapixels(MAX_IMAGE_PIXELS)} MP limit (decompression bomb protection)",
            )
        try:
            img.load()  # decode now, so truncated data fails here and not in a later step
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageLoadError(name, _pil_bomb_reason(err)) from err
        except MemoryError as err:
            raise ImageLoadError(
                name, f"not enough memory to decode a {width}×{height} {img.format} image"
            ) from err
        except _DECODE_ERRORS as err:
            raise ImageLoadError(name, f"truncated or corrupt image data ({err})") from err

        _apply_exif_orientation(img, name)
        try:
            rgb = to_rgb(img)
        except ValueError as err:
            raise ImageLoadError(name, str(err)) from err

    height, width = rgb.shape[:2]
    return LoadedImage(path=name, rgb=rgb, sha256=sha256, width=width, height=height)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any common mode to an RGB ``uint8`` array.

    * RGB: copied as is. L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX: Pillow's conversion.
    * Transparency (RGBA, RGBa, LA, La, PA, or a ``transparency`` key in ``img.info`` as palette,
      grayscale and RGB PNGs/GIFs carry): composited over a **white** background.
    * 16-bit grayscale (``I;16``, ``I;16B``, ...): divided by 257, so 0..65535 maps to 0..255.
    * 32-bit integer (``I``): divided by 257 when the values fit 0..65535 (16-bit data, e.g.
      PGM or TIFF), otherwise stretched linearly from min..max to 0..255.
    * 32-bit float (``F``): multiplied by 255 when the values lie in [0, 1], otherwise stretched
      linearly from min..max to 0..255; NaN counts as the minimum, ±inf as the extremes.

    Args:
        img: The image; its first (current) frame is converted.

    Returns:
        H×W×3 ``uint8`` array, C-contiguous and writable.

    Raises:
        ValueError: If the mode cannot be converted to RGB.
    """
    mode = img.mode
    if mode in _ALPHA_MODES or ("transparency" in img.info and mode in {"P", "L", "RGB", "1"}):
        return _composite_over_white(img)

    if mode == "RGB":
        return np.array(img, dtype=np.uint8)

    if mode in {"I", "F"} or mode.startswith("I;"):
        gray = _scale_to_uint8(np.asarray(img), mode)
        return np.repeat(gray[:, :, np.newaxis], 3, axis=2)

    try:
        converted = img.convert("RGB")
    except ValueError as err:
        raise ValueError(f"unsupported pixel format (mode {mode!r} cannot be converted to RGB)") from err
    return np.array(converted, dtype=np.uint8)


def make_thumbnail(rgb: np.ndarray, size: int = THUMBNAIL_SIZE, quality: int = 85) -> bytes:
    """Shrink an image to fit a ``size``×``size`` box and encode it as JPEG.

    The aspect ratio is kept; images already smaller than ``size`` are not enlarged.

    Args:
        rgb: H×W×3 ``uint8`` array.
        size: Longest side of the thumbnail, in pixels.
        quality: JPEG quality, 1..100.

    Returns:
        The JPEG file's bytes.

    Raises:
        ValueError: If ``rgb`` is not an H×W×3 ``uint8`` array.
        InvalidArgumentError: If ``size`` or ``quality`` is out of range.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 array, got shape {rgb.shape} and dtype {rgb.dtype}")
    if size < 1:
        raise InvalidArgumentError(f"thumbnail size must be at least 1 pixel, got {size}")
    if not 1 <= quality <= 100:
        raise InvalidArgumentError(f"JPEG quality must be between 1 and 100, got {quality}")

    img = Image.fromarray(np.ascontiguousarray(rgb))
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def iter_image_files(paths: Iterable[str | os.PathLike[str]], *, recursive: bool = True) -> Iterator[Path]:
    """Expand files and folders into the image files to index.

    * A file given directly is yielded as is, whatever its extension (:func:`load_image` then
      says why it cannot be read, if it cannot).
    * A folder is walked in sorted name order (deterministic), yielding files whose extension
      is in :data:`IMAGE_EXTENSIONS` (case-insensitive). Hidden files and folders (names
      starting with ``.``) inside it are skipped; symlinked folders are followed once.
      Subfolders that cannot be listed are skipped with a warning.
    * Each file is yielded once, even if reachable through several of the given paths.

    All paths are checked before anything is yielded, so a typo fails immediately.

    Args:
        paths: Files and folders.
        recursive: Whether to descend into subfolders.

    Returns:
        An iterator of paths (given paths joined with the names found below them).

    Raises:
        FileNotFoundError: If one of ``paths`` does not exist.
    """
    return iter_files(paths, IMAGE_EXTENSIONS, recursive=recursive)


def iter_files(
    paths: Iterable[str | os.PathLike[str]], extensions: frozenset[str], *, recursive: bool = True
) -> Iterator[Path]:
    """:func:`iter_image_files` for files of other ``extensions`` (lower case, with the dot)."""
    roots = [Path(p) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise FileNotFoundError(f"No such file or directory: {', '.join(missing)}")
    return _iter_files(roots, extensions, recursive=recursive)


def _iter_files(roots: list[Path], extensions: frozenset[str], *, recursive: bool) -> Iterator[Path]:
    seen: set[str] = set()
    visited_dirs: set[tuple[int, int]] = set()
    for root in roots:
        if root.is_dir():
            candidates = _walk(root, extensions, recursive=recursive, visited_dirs=visited_dirs)
        else:
            candidates = iter((root,))
        for path in candidates:
            key = os.path.normcase(os.path.abspath(path))
            if key not in seen:
                seen.add(key)
                yield path


def _walk(
    folder: Path, extensions: frozenset[str], *, recursive: bool, visited_dirs: set[tuple[int, int]]
) -> Iterator[Path]:
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in visited_dirs:  # a symlink loop, or a folder given twice
            return
        visited_dirs.add((info.st_dev, info.st_ino))
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        logger.warning("Skipping folder %s: %s", folder, err.strerror or err)
        return

    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if is_dir:
            if recursive:
                yield from _walk(folder / entry.name, extensions, recursive=True, visited_dirs=visited_dirs)
        elif is_file and os.path.splitext(entry.name)[1].lower() in extensions:
            yield folder / entry.name


def _apply_exif_orientation(img: Image.Image, name: str) -> None:
    """Rotate/flip ``img`` in place as its EXIF orientation tag says; keep it as is if unreadable."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except _EXIF_ERRORS as err:
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, err)


def _composite_over_white(img: Image.Image) -> np.ndarray:
    if img.mode == "La":  # Pillow converts premultiplied L+alpha only to LA
        img = img.convert("LA")
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    alpha_min, _ = rgba.getchannel("A").getextrema()
    if alpha_min < 255:
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgba = Image.alpha_composite(background, rgba)
    return np.array(rgba.convert("RGB"), dtype=np.uint8)


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map a 2-D integer or float array to ``uint8`` without clipping (see :func:`to_rgb`)."""
    if values.ndim != 2:
        raise ValueError(f"unsupported pixel format (mode {mode!r} with shape {values.shape})")
    if values.dtype.kind == "b":
        return values.astype(np.uint8) * np.uint8(255)
    if values.dtype.kind in "iu":
        if values.size == 0:
            return np.zeros(values.shape, dtype=np.uint8)
        lo, hi = int(values.min()), int(values.max())
        if lo >= 0 and hi <= 0xFFFF:
            return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return _stretch(values.astype(np.float64), float(lo), float(hi))
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return np.zeros(values.shape, dtype=np.uint8)
        lo, hi = float(finite.min()), float(finite.max())
        values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(values * 255.0).astype(np.uint8)
        return _stretch(values, lo, hi)
    raise ValueError(f"unsupported pixel format (mode {mode!r}, dtype {values.dtype})")


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _pil_bomb_reason(err: Exception) -> str:
    match = _PIL_BOMB_PIXELS.search(str(err))
    if match and int(match.group(1)) > MAX_IMAGE_PIXELS:
        pixels = int(match.group(1))
        return (
            f"image too large: {_megapixels(pixels)} MP exceeds the {_megapixels(MAX_IMAGE_PIXELS)} MP "
            "limit (decompression bomb protection)"
        )
    return f"image too large (decompression bomb protection: {err})"


def _megapixels(pixels: int) -> str:
    if pixels % 1_000_000 == 0:
        return str(pixels // 1_000_000)
    return f"{pixels / 1_000_000:.1f}"
