"""Bad inputs for the reliability benchmark: at least 40 broken, hostile or odd images, videos and
databases, each given to the CLI as a user would (:func:`bad_inputs`). A case is clean when the CLI
says what went wrong in one line (exit code 2, or a ``failed:`` line while indexing the rest), with
no traceback, and leaves the databases it was given unchanged.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.forked import collect, quiet


@dataclass
class CorpusCase:
    kind: str  # image | video | database
    name: str
    exit_code: int
    clean: bool
    says: str  # the error or failure line the user sees


def _corpus(work: str, queue) -> None:
    """Child: make ≥ 40 bad inputs and give each to the CLI; report what the user saw."""
    quiet()
    import numpy as np
    from PIL import Image

    from core.cli import main

    root = Path(work) / "corpus"
    root.mkdir(exist_ok=True)
    model = str(Path(work) / "model")
    good_db = str(root / "good.sqlite")
    env = {"WEBSSL_MODEL": model, "WEBSSL_DATA_DIR": str(root / "data")}
    os.environ.update(env)
    rng = np.random.default_rng(0)
    picture = Path(work) / "pictures" / "p000.png"
    video = Path(work) / "video.mp4"

    def cli(argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = int(exc.code or 0)
            except BaseException:  # noqa: BLE001 - an escaping exception is what we count
                import traceback

                traceback.print_exc(file=err)
                code = -1
        return code, out.getvalue(), err.getvalue()

    def judge(kind: str, name: str, argv: list[str], *, failed_line: bool = False) -> None:
        code, out, err = cli(argv)
        lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
        clean = "Traceback" not in err and code in (0, 2)
        if code == 2:
            clean = clean and len(lines) == 1
            says = lines[0] if lines else err.strip()[:200]
        elif failed_line:
            failed = [line.strip() for line in out.splitlines() if line.strip().startswith("failed:")]
            clean = clean and len(failed) == 1 and "\n" not in failed[0]
            says = failed[0] if failed else out.strip()[:200]
        else:
            says = (out.strip().splitlines() or [""])[-1][:200]
        queue.put(asdict(CorpusCase(kind, name, code, clean, says)))

    cli(["index", str(picture), "-c", "good", "--db", good_db, "-q"])
    jpeg = io.BytesIO()
    Image.open(picture).convert("RGB").save(jpeg, "JPEG")
    jpeg_bytes = jpeg.getvalue()
    png_bytes = picture.read_bytes()

    def png_header(width: int, height: int) -> bytes:
        import struct
        import zlib

        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        chunk = b"IHDR" + ihdr
        iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
        return (
            b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + iend
        )

    images: dict[str, Callable[[Path], None]] = {
        "empty.jpg": lambda p: p.write_bytes(b""),
        "text.jpg": lambda p: p.write_text("hello, not an image"),
        "random.png": lambda p: p.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()),
        "truncated.jpg": lambda p: p.write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2]),
        "truncated.png": lambda p: p.write_bytes(png_bytes[: len(png_bytes) // 2]),
        "page.jpg": lambda p: p.write_text("<html><body>404</body></html>"),
        "bomb.png": lambda p: p.write_bytes(png_header(200_000, 200_000)),
        "header-only.png": lambda p: p.write_bytes(png_header(64, 64)),
        "wide-1x40000.png": lambda p: Image.fromarray(
            rng.integers(0, 256, (1, 40000, 3), dtype=np.uint8)
        ).save(p),
        "tall-40000x1.png": lambda p: Image.fromarray(
            rng.integers(0, 256, (40000, 1, 3), dtype=np.uint8)
        ).save(p),
        "one-pixel.png": lambda p: Image.new("RGB", (1, 1)).save(p),
        "cmyk.jpg": lambda p: Image.open(picture).convert("CMYK").save(p),
        "sixteen-bit.png": lambda p: Image.fromarray(
            (rng.integers(0, 65535, (40, 40))).astype(np.uint16)
        ).save(p),
        "transparent.gif": lambda p: Image.new("P", (30, 30)).save(p, transparency=0),
        "bad-exif.jpg": lambda p: p.write_bytes(bad_exif_jpeg()),
        "fifo.jpg": lambda p: os.mkfifo(p),
        "folder.jpg": lambda p: p.mkdir(),
        "dangling.jpg": lambda p: p.symlink_to(root / "nowhere.jpg"),
        "truncated.webp": lambda p: p.write_bytes(_webp(picture)[:60]),
        "bmp-header.bmp": lambda p: p.write_bytes(b"BM" + b"\x00" * 20),
        "name\nwith a newline.jpg": lambda p: p.write_text("x"),
        "=HYPERLINK(1).jpg": lambda p: p.write_bytes(jpeg_bytes),
        "déjà vu 写真.png": lambda p: p.write_bytes(png_bytes),
    }
    img_dir = root / "images"
    img_dir.mkdir(exist_ok=True)
    for name, make in images.items():
        path = img_dir / name
        make(path)
        judge(
            "image",
            name,
            ["index", str(path), "-c", "good", "--db", good_db, "-q"],
            failed_line=name
            not in (
                "wide-1x40000.png",
                "tall-40000x1.png",
                "one-pixel.png",
                "cmyk.jpg",
                "sixteen-bit.png",
                "transparent.gif",
                "bad-exif.jpg",
                "folder.jpg",
                "=HYPERLINK(1).jpg",
                "déjà vu 写真.png",
            ),
        )
    judge("image", "/dev/zero", ["index", "/dev/zero", "-c", "good", "--db", good_db, "-q"], failed_line=True)

    vid_dir = root / "videos"
    vid_dir.mkdir(exist_ok=True)
    data = video.read_bytes()
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 6000] = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    videos: dict[str, Callable[[Path], None]] = {
        "empty.mp4": lambda p: p.write_bytes(b""),
        "random.mp4": lambda p: p.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()),
        "text.mp4": lambda p: p.write_text("not a video"),
        "truncated.mp4": lambda p: p.write_bytes(data[: len(data) // 2]),
        "corrupt-middle.mp4": lambda p: p.write_bytes(bytes(corrupt)),
        "audio-only.m4a": _audio_only,
        "picture.jpg": lambda p: p.write_bytes(jpeg_bytes),
        "folder.mp4": lambda p: p.mkdir(),
        "fifo.mp4": lambda p: os.mkfifo(p),
        "missing.mp4": lambda p: None,
    }
    for name, make in videos.items():
        path = vid_dir / name
        make(path)
        judge("video", name, ["match", str(path), "-c", "good", "--db", good_db, "--stride", "25", "-q"])
    judge("video", "/dev/zero", ["match", "/dev/zero", "-c", "good", "--db", good_db, "-q"])

    db_dir = root / "databases"
    db_dir.mkdir(exist_ok=True)
    good = Path(good_db).read_bytes()
    databases: dict[str, Callable[[Path], None]] = {
        "random.sqlite": lambda p: p.write_bytes(rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()),
        "folder.sqlite": lambda p: p.mkdir(),
        "notes.sqlite": lambda p: _sqlite(p, "notes"),
        "negative-version.sqlite": lambda p: _sqlite(p, "collections", version=-1),
        "version-0-tables.sqlite": lambda p: _sqlite(p, "collections", version=0),
        "too-new.sqlite": lambda p: (p.write_bytes(good), _sqlite(p, None, version=99)),
        "truncated.sqlite": lambda p: p.write_bytes(good[: len(good) // 3]),
        "empty.sqlite": lambda p: p.write_bytes(b""),
    }
    for name, make in databases.items():
        path = db_dir / name
        make(path)
        before = path.read_bytes() if path.is_file() else None
        judge("database", f"{name} (collections)", ["collections", "--db", str(path)])
        judge("database", f"{name} (index)", ["index", str(picture), "-c", "x", "--db", str(path), "-q"])
        if before is not None and name not in ("empty.sqlite",):
            assert path.read_bytes() == before or name == "truncated.sqlite", f"{name} was changed"
    queue.put(None)


def bad_exif_jpeg() -> bytes:
    """A small JPEG whose EXIF tag directory is broken: Pillow warns when it reads it."""
    from PIL import Image

    img = Image.new("RGB", (20, 10), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    data = bytearray(buf.getvalue())
    start = data.find(b"Exif\x00\x00") + 20
    data[start : start + 20] = b"\xff" * 20
    return bytes(data)


def _webp(picture: Path) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(picture).save(buf, "WEBP")
    return buf.getvalue()


def _audio_only(path: Path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _sqlite(path: Path, table: str | None, version: int | None = None) -> None:
    """A SQLite file that is not (or not yet, or no longer) an index: one table of one column."""
    import sqlite_utils

    db = sqlite_utils.Database(path)
    if table:
        db[table].create({"id": int})
    if version is not None:
        db.execute(f"PRAGMA user_version = {version}")
    db.conn.commit()
    db.close()


def bad_inputs(work: Path) -> list[CorpusCase]:
    """Make the corpus in ``work`` (which holds the tiny model, the pictures and the video) and give
    each bad input to the CLI in a forked child; what the user saw of each."""
    return [CorpusCase(**item) for item in collect(_corpus, str(work))]
