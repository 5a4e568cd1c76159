"""Tests for core.images: decoding, mode conversion, EXIF, bombs, thumbnails, file discovery."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageLoadError, InvalidArgumentError
from core.media import images
from core.media.images import (
    IMAGE_EXTENSIONS,
    LoadedImage,
    decode_image_bytes,
    iter_image_files,
    load_image,
    make_thumbnail,
    to_rgb,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


# --------------------------------------------------------------------------- helpers & fixtures


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_bytes(
    width: int, height: int, *, bit_depth: int = 1, color_type: int = 0, raw: bytes = b""
) -> bytes:
    """A hand-made PNG; the IDAT holds ``raw`` (so a huge header costs nothing to write)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _halves(width: int, height: int, left=RED, right=BLUE) -> Image.Image:
    """An RGB image whose left half is ``left`` and right half is ``right``."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = left
    arr[:, width // 2 :] = right
    return Image.fromarray(arr)


def _header(path: Path, attribute: str):
    """Read one attribute (mode, n_frames, ...) of an image file, closing it again."""
    with Image.open(path) as img:
        return getattr(img, attribute)


def _close(actual, expected, tol: int = 8) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int)) <= tol))


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """root/{a.png, b.JPG, notes.txt, .hidden.png, .cache/x.png, sub/c.jpeg, sub/deeper/d.TIFF, z.webp}"""
    root = tmp_path / "root"
    for rel in [
        "a.png",
        "b.JPG",
        "notes.txt",
        ".hidden.png",
        ".cache/x.png",
        "sub/c.jpeg",
        "sub/deeper/d.TIFF",
        "z.webp",
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


# --------------------------------------------------------------------------- bad inputs


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty file \(0 bytes\)") as info:
        load_image(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(str(path))


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageLoadError, match=r"not an image \(cannot identify image format\)"):
        load_image(path)


def test_truncated_jpeg(tmp_path: Path, rgb_array: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.tile(rgb_array, (8, 8, 1))).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"truncated or corrupt image data"):
        load_image(path)


def test_corrupt_png_pixel_data(tmp_path: Path) -> None:
    data = bytearray(_png_bytes(64, 64, bit_depth=8, color_type=0, raw=bytes(65 * 64)))
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = b"\xff" * 40  # garbage in the zlib stream
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match=r"truncated or corrupt image data"):
        load_image(path)


def test_decompression_bomb_refused_by_pillow(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(20_000, 20_000))  # 400 MP claimed, a few dozen bytes on disk
    with pytest.raises(
        ImageLoadError,
        match=r"image too large: 400 MP exceeds the 100 MP limit \(decompression bomb protection\)",
    ):
        load_image(path)


def test_decompression_bomb_refused_without_pillow_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # our own check must still apply
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(20_000, 20_000))
    with pytest.raises(
        ImageLoadError,
        match=r"image too large: 20000×20000 = 400 MP exceeds the 100 MP limit "
        r"\(decompression bomb protection\)",
    ):
        load_image(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_between_pillow_and_our_limit(tmp_path: Path) -> None:
    # 110 MP: Pillow only warns (its default error threshold is ~179 MP); our limit refuses it.
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes(11_000, 10_000))
    with pytest.raises(ImageLoadError, match=r"11000×10000 = 110 MP exceeds the 100 MP limit"):
        load_image(path)


def test_pixel_limit_is_read_at_call_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1_000_000)
    path = tmp_path / "two_mp.png"
    path.write_bytes(_png_bytes(2000, 1000))
    with pytest.raises(ImageLoadError, match=r"2000×1000 = 2 MP exceeds the 1 MP limit"):
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"file not found"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"is a directory"):
        load_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_permission_denied(png_file: Path) -> None:
    png_file.chmod(0)
    try:
        with pytest.raises(ImageLoadError, match=r"permission denied"):
            load_image(png_file)
    finally:
        png_file.chmod(0o644)


def test_permission_denied_reported(png_file: Path, monkeypatch) -> None:
    # Runs as root too (where chmod does not stop reads): simulate what open() raises.
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "read_regular", denied)
    with pytest.raises(ImageLoadError, match=r"permission denied"):
        load_image(png_file)


def test_decode_bytes_errors_use_name() -> None:
    with pytest.raises(ImageLoadError, match=r"^<upload>: empty file") as info:
        decode_image_bytes(b"")
    assert info.value.path == "<upload>"
    with pytest.raises(ImageLoadError, match=r"^photo\.png: not an image"):
        decode_image_bytes(b"hello", name="photo.png")


# --------------------------------------------------------------------------- good inputs


def test_loaded_image_contract(png_file: Path, rgb_array: np.ndarray) -> None:
    loaded = load_image(png_file)
    assert isinstance(loaded, LoadedImage)
    assert loaded.path == str(png_file)
    assert loaded.rgb.dtype == np.uint8
    assert loaded.rgb.shape == (24, 32, 3)
    assert loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable
    assert (loaded.width, loaded.height) == (32, 24)
    np.testing.assert_array_equal(loaded.rgb, rgb_array)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.width = 1  # type: ignore[misc]


def test_unknown_extension_is_decoded_by_content(tmp_path: Path, rgb_array: np.ndarray) -> None:
    path = tmp_path / "picture.dat"
    Image.fromarray(rgb_array).save(path, format="PNG")
    np.testing.assert_array_equal(load_image(path).rgb, rgb_array)


def test_grayscale(tmp_path: Path) -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    rgb = load_image(path).rgb
    assert rgb.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_bilevel(tmp_path: Path) -> None:
    img = Image.new("1", (8, 4), 0)
    img.paste(1, (4, 0, 8, 4))
    path = tmp_path / "bits.png"
    img.save(path)
    rgb = load_image(path).rgb
    assert set(np.unique(rgb)) == {0, 255}
    assert (rgb[:, :4] == 0).all() and (rgb[:, 4:] == 255).all()


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[:, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    arr[:, 1] = (255, 0, 0, 255)  # opaque red -> red
    arr[:, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = tmp_path / "rgba.png"
    Image.fromarray(arr).save(path)
    rgb = load_image(path).rgb
    assert (rgb[:, 0] == 255).all()
    assert (rgb[:, 1] == RED).all()
    assert _close(rgb[:, 2], (127, 127, 127), tol=1)


def test_gray_alpha_is_composited_over_white(tmp_path: Path) -> None:
    img = Image.new("LA", (2, 1), (0, 0))
    img.putpixel((1, 0), (0, 255))
    path = tmp_path / "la.png"
    img.save(path)
    rgb = load_image(path).rgb
    assert (rgb[0, 0] == 255).all() and (rgb[0, 1] == 0).all()


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 255, 0] + [255, 0, 0] + [0] * (254 * 3))  # index 0 green, 1 red
    img.paste(1, (2, 0, 4, 2))
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)  # green is the transparent index
    assert _header(path, "mode") == "P"
    rgb = load_image(path).rgb
    assert (rgb[:, :2] == 255).all()  # transparent -> white, not green
    assert (rgb[:, 2:] == RED).all()


def test_rgb_with_transparent_colour_key(tmp_path: Path) -> None:
    img = _halves(4, 2, left=(0, 255, 0), right=RED)
    path = tmp_path / "keyed.png"
    img.save(path, transparency=(0, 255, 0))  # PNG tRNS chunk: green means transparent
    rgb = load_image(path).rgb
    assert (rgb[:, :2] == 255).all()
    assert (rgb[:, 2:] == RED).all()


def test_palette_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0] + [10, 20, 30] + [0] * (254 * 3))
    path = tmp_path / "palette.png"
    img.save(path)
    assert (load_image(path).rgb == (10, 20, 30)).all()


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert _header(path, "mode").startswith("I")
    rgb = load_image(path).rgb
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_16bit_rgb_png(tmp_path: Path) -> None:
    pixels = np.zeros((3, 4, 3), dtype=">u2")
    pixels[..., 0] = 65535
    pixels[..., 1] = 32896
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    path = tmp_path / "rgb48.png"
    path.write_bytes(_png_bytes(4, 3, bit_depth=16, color_type=2, raw=raw))
    rgb = load_image(path).rgb
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert _close(rgb, (255, 128, 0), tol=1)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_deflate"})],
)
def test_lossless_formats_round_trip(tmp_path: Path, rgb_array: np.ndarray, fmt: str, options: dict) -> None:
    path = tmp_path / f"picture.{fmt.lower()}"
    Image.fromarray(rgb_array).save(path, format=fmt, **options)
    np.testing.assert_array_equal(load_image(path).rgb, rgb_array)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # red
    img.paste((0, 0, 0, 0), (8, 0, 16, 8))  # white
    path = tmp_path / "cmyk.jpg"
    img.save(path, quality=95)
    assert _header(path, "mode") == "CMYK"
    rgb = load_image(path).rgb
    assert rgb.shape == (8, 16, 3)
    assert _close(rgb[2:6, 1:5], RED, tol=12)
    assert _close(rgb[2:6, 11:15], (255, 255, 255), tol=12)


@pytest.mark.parametrize(
    ("orientation", "size", "red_at", "blue_at"),
    [
        # The stored image is 40×20, left half red, right half blue.
        (1, (40, 20), (10, 10), (10, 30)),  # as stored
        (3, (40, 20), (10, 30), (10, 10)),  # rotate 180: left/right swap
        (6, (20, 40), (10, 10), (30, 10)),  # rotate 90° clockwise: left half goes to the top
        (8, (20, 40), (30, 10), (10, 10)),  # rotate 90° counter-clockwise: left half goes to the bottom
    ],
)
def test_exif_orientation(tmp_path: Path, orientation: int, size, red_at, blue_at) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.jpg"
    _halves(40, 20).save(path, quality=95, exif=exif)

    loaded = load_image(path)
    assert (loaded.width, loaded.height) == size
    assert loaded.rgb.shape == (size[1], size[0], 3)
    assert loaded.rgb.flags.c_contiguous
    assert _close(loaded.rgb[red_at], RED, tol=30)
    assert _close(loaded.rgb[blue_at], BLUE, tol=30)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, (0, 255, 0), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert _header(path, "n_frames") == 3
    assert (load_image(path).rgb == RED).all()


def test_transparent_gif(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0] + [0, 0, 255] + [0] * (254 * 3))
    img.paste(1, (0, 0, 2, 4))
    path = tmp_path / "transparent.gif"
    img.save(path, transparency=0)
    rgb = load_image(path).rgb
    assert (rgb[:, :2] == BLUE).all() and (rgb[:, 2:] == 255).all()


def test_animated_webp_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, lossless=True)
    assert _header(path, "n_frames") == 2
    assert (load_image(path).rgb == RED).all()


# --------------------------------------------------------------------------- to_rgb on in-memory modes


def test_to_rgb_16bit_big_endian() -> None:
    img = Image.fromarray(np.array([[0, 257, 65535]], dtype=">u2"))
    assert img.mode == "I;16B"
    np.testing.assert_array_equal(to_rgb(img)[0, :, 1], [0, 1, 255])


def test_to_rgb_int32_16bit_range() -> None:
    img = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.int32))
    assert img.mode == "I"
    np.testing.assert_array_equal(to_rgb(img)[0, :, 0], [0, 1, 255])


def test_to_rgb_int32_outside_16bit_range_is_stretched() -> None:
    img = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    np.testing.assert_array_equal(to_rgb(img)[0, :, 0], [0, 128, 255])


def test_to_rgb_float_unit_range() -> None:
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert img.mode == "F"
    np.testing.assert_array_equal(to_rgb(img)[0, :, 2], [0, 128, 255])


def test_to_rgb_float_other_range_is_stretched() -> None:
    img = Image.fromarray(np.array([[-2.0, 3.0, 8.0, np.nan]], dtype=np.float32))
    np.testing.assert_array_equal(to_rgb(img)[0, :, 0], [0, 128, 255, 0])


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "RGBa", "PA", "La"])
def test_to_rgb_modes_give_rgb_uint8(mode: str) -> None:
    rgb = to_rgb(Image.new(mode, (5, 3)))
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous


def test_to_rgb_ycbcr_matches_pillow() -> None:
    img = _halves(8, 4).convert("YCbCr")
    assert _close(to_rgb(img)[0, 0], RED, tol=3)


# --------------------------------------------------------------------------- bytes


def test_decode_bytes_equals_load_image(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    _halves(40, 20).save(path, exif=exif)
    from_file = load_image(path)
    from_bytes = decode_image_bytes(path.read_bytes(), name="photo.jpg")
    assert from_bytes.path == "photo.jpg"
    assert from_bytes.sha256 == from_file.sha256
    assert (from_bytes.width, from_bytes.height) == (from_file.width, from_file.height) == (20, 40)
    np.testing.assert_array_equal(from_bytes.rgb, from_file.rgb)
    assert decode_image_bytes(path.read_bytes()).path == "<upload>"


# --------------------------------------------------------------------------- thumbnails


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((500, 1000), 256, (256, 128)),  # landscape
        ((1000, 400), 256, (102, 256)),  # portrait
        ((300, 300), 64, (64, 64)),  # square
        ((50, 100), 256, (100, 50)),  # smaller than the box: not enlarged
    ],
)
def test_make_thumbnail(shape, size: int, expected) -> None:
    rgb = np.asarray(_halves(shape[1], shape[0]))
    data = make_thumbnail(rgb, size=size)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == expected
        assert max(thumb.size) <= size
        assert abs(thumb.size[0] / thumb.size[1] - shape[1] / shape[0]) < 0.02
        thumb_rgb = np.asarray(thumb.convert("RGB"))
    h, w = thumb_rgb.shape[:2]
    assert _close(thumb_rgb[h // 2, w // 8], RED, tol=30)
    assert _close(thumb_rgb[h // 2, w - 1 - w // 8], BLUE, tol=30)


def test_make_thumbnail_quality_changes_size() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(200, 200, 3), dtype=np.uint8)
    assert len(make_thumbnail(rgb, quality=30)) < len(make_thumbnail(rgb, quality=95))


def test_make_thumbnail_rejects_bad_arguments() -> None:
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"H×W×3 uint8"):
        make_thumbnail(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"H×W×3 uint8"):
        make_thumbnail(rgb.astype(np.float32))
    with pytest.raises(InvalidArgumentError, match=r"thumbnail size"):
        make_thumbnail(rgb, size=0)
    with pytest.raises(InvalidArgumentError, match=r"JPEG quality"):
        make_thumbnail(rgb, quality=0)


# --------------------------------------------------------------------------- finding files


def test_image_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} == IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)


def test_iter_image_files_recursive(image_tree: Path) -> None:
    found = list(iter_image_files([image_tree]))
    assert all(isinstance(p, Path) for p in found)
    assert [p.relative_to(image_tree).as_posix() for p in found] == [
        "a.png",
        "b.JPG",
        "sub/c.jpeg",
        "sub/deeper/d.TIFF",
        "z.webp",
    ]


def test_iter_image_files_accepts_str_and_is_deterministic(image_tree: Path) -> None:
    assert list(iter_image_files([str(image_tree)])) == list(iter_image_files([image_tree]))


def test_iter_image_files_not_recursive(image_tree: Path) -> None:
    found = list(iter_image_files([image_tree], recursive=False))
    assert [p.name for p in found] == ["a.png", "b.JPG", "z.webp"]


def test_iter_image_files_explicit_files_yielded_as_is(image_tree: Path) -> None:
    notes = image_tree / "notes.txt"
    hidden = image_tree / ".hidden.png"
    assert list(iter_image_files([notes, hidden])) == [notes, hidden]


def test_iter_image_files_yields_each_file_once(image_tree: Path) -> None:
    found = list(iter_image_files([image_tree / "a.png", image_tree, image_tree / "sub"]))
    names = [p.name for p in found]
    assert names == ["a.png", "b.JPG", "c.jpeg", "d.TIFF", "z.webp"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_iter_image_files_survives_symlink_loop(image_tree: Path) -> None:
    try:
        (image_tree / "sub" / "loop").symlink_to(image_tree, target_is_directory=True)
    except OSError:
        pytest.skip("cannot create symlinks here")
    found = list(iter_image_files([image_tree]))
    assert len(found) == 5


def test_iter_image_files_missing_path(image_tree: Path) -> None:
    missing = image_tree / "missing"
    # Raised at call time, before anything is yielded.
    with pytest.raises(FileNotFoundError, match=r"No such file or directory: .*missing"):
        iter_image_files([image_tree, missing])


# -- issue 9: only regular files are read, and reads are bounded -------------------------------------
def test_special_files_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="FIFO"):
        load_image(fifo)  # used to block forever
    with pytest.raises(ImageLoadError, match="character device"):
        load_image("/dev/zero")  # used to read 4.7 GB, then MemoryError


def test_files_over_the_limit_are_not_read(tmp_path, monkeypatch):
    import core.media.files

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 5000)
    monkeypatch.setattr(core.media.files, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(big)


def test_pillow_warnings_go_to_the_log_in_one_line(tmp_path: Path, caplog, capfd) -> None:
    """A corrupt EXIF block makes Pillow warn; the warning must reach logging, not the console."""
    import logging
    import warnings

    from bench.bad_inputs import bad_exif_jpeg

    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(bad_exif_jpeg())
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping load_image fails the test
        loaded = load_image(path)
    assert loaded.rgb.shape[2] == 3
    logged = [r for r in caplog.records if r.name == "core.media.images" and "bad_exif.jpg" in r.getMessage()]
    assert logged and all("\n" not in r.getMessage() for r in logged)
    assert capfd.readouterr().err == ""
