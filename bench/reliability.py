"""Reliability: what kills, concurrent writers, bad inputs and extreme images do to the index.

``python -m bench.reliability [--quick] [--json OUT.json]``: a full run (20 kills during
indexing, 10 during matching) gives README's Reliability section; ``--quick`` is what CI runs
(tests/test_reliability.py).

Every scenario runs in processes forked from this one before it does any model or image work
(the parent only orchestrates and reads SQLite with the standard library), so a worker starts
in milliseconds and a kill is a real ``SIGKILL`` of a separate process, as ``kill -9`` would be.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

_CTX = mp.get_context("fork")
THRESHOLD = 0.95  # separates near-duplicates from other pictures for the tiny model


@dataclass
class KillReport:
    """Kills during one kind of work, and what the index looked like after each."""

    kills: int = 0
    integrity_ok: int = 0  # kills after which PRAGMA integrity_check said ok
    rows_lost: int = 0  # rows that were committed before a kill and gone after it
    finished_before_kill: int = 0  # workers that completed before their kill came
    resumed_exact: bool = False  # the final resume equals an uninterrupted run
    detail: str = ""


@dataclass
class ConcurrencyReport:
    writers: int = 0
    readers: int = 0
    reads: int = 0
    writes_ok: int = 0
    locked_errors: int = 0
    other_errors: list[str] = field(default_factory=list)


@dataclass
class CorpusCase:
    kind: str  # image | video | database
    name: str
    exit_code: int
    clean: bool
    says: str  # the error or failure line the user sees


# -- workers (run in forked children) ------------------------------------------------------
def _quiet() -> None:
    import logging

    logging.disable(logging.CRITICAL)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class Sizes:
    pictures: int = 160  # in the collection the indexers build
    frames: int = 300  # of the video the matchers analyse


QUICK = Sizes(80, 150)


def _build(work: str, sizes: Sizes) -> None:
    """Child: the tiny model, the pictures and the video."""
    _quiet()
    from PIL import Image

    from bench import synthetic as syn
    from core.media.writer import VideoWriter

    root = Path(work)
    syn.build_tiny(root / "model")
    pictures = root / "pictures"
    pictures.mkdir(exist_ok=True)
    for i in range(sizes.pictures):
        Image.fromarray(syn.make_picture(7000 + i, (96, 128))).save(pictures / f"p{i:03d}.png")
    shown = [syn.make_picture(7000 + i, (240, 320)) for i in range(6)]
    with VideoWriter(root / "video.mp4", fps=25, crf=18) as writer:
        for n in range(sizes.frames):
            writer.write(shown[(n // 50) % len(shown)])


def _index_worker(work: str, db: str, collection: str, started) -> None:
    _quiet()
    from core.matching.indexing import index_images
    from core.model.features import FeatureExtractor
    from db import Index

    fx = FeatureExtractor.load(Path(work) / "model", device="cpu")
    with Index(db) as index:
        started.set()
        index_images(index, collection, [Path(work) / "pictures"], fx, batch_size=4)


def _match_worker(work: str, db: str, started) -> None:
    _quiet()
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from core.model.features import FeatureExtractor
    from db import Index

    fx = FeatureExtractor.load(Path(work) / "model", device="cpu")
    with Index(db) as index:
        started.set()
        match_video(
            index,
            Path(work) / "video.mp4",
            "pictures",
            fx,
            sampling=Sampling.every(),
            params=MatchParams(threshold=THRESHOLD, top_k=3),
            batch_size=4,
        )


def _run(target: Callable, *args, timeout: float = 600) -> int:
    """Run ``target`` in a forked child to its end; returns its exit code."""
    proc = _CTX.Process(target=target, args=args)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"{target.__name__} did not finish in {timeout} s")
    return proc.exitcode


# -- reading the index from the parent (read-only, through the db API) --------------------
@contextlib.contextmanager
def _opened(db: str):
    """The index opened read-only, or None where there is no complete index yet."""
    from db import DatabaseOpenError, Index, ReadOnlyDatabaseError

    if not Path(db).exists():
        yield None
        return
    try:
        index = Index(db, readonly=True)
    except (DatabaseOpenError, ReadOnlyDatabaseError):
        yield None
        return
    with index:
        yield index


def _integrity(db: str) -> bool:
    """The file passes SQLite's integrity check (workers are killed only after they opened it)."""
    with _opened(db) as index:
        return index is not None and index.integrity_ok()


def _images(db: str, collection: str) -> dict[str, bytes]:
    """path -> embedding bytes of the collection's images."""
    with _opened(db) as index:
        found = index.find_collection(collection) if index is not None else None
        if found is None:
            return {}
        matrix = index.load_embeddings(found.id)
        paths = index.image_paths(matrix.image_ids)
        return {paths[int(i)]: row.tobytes() for i, row in zip(matrix.image_ids, matrix.vectors, strict=True)}


def _runs(db: str) -> list:
    """The runs, oldest first."""
    with _opened(db) as index:
        return [] if index is None else index.list_runs()[::-1]


def _run_frames(db: str, nth: int) -> set[int]:
    """The frames that the ``nth`` run (oldest first) has results for."""
    with _opened(db) as index:
        runs = [] if index is None else index.list_runs()[::-1]
        return set(index.load_frame_results(runs[nth].id).frame_index.tolist()) if nth < len(runs) else set()


def _frames(db: str) -> dict[tuple[int, int], tuple[str, float]]:
    """(frame, rank) -> (image file name, score) of the newest run."""
    with _opened(db) as index:
        runs = [] if index is None else index.list_runs(limit=1)
        if not runs:
            return {}
        res = index.load_frame_results(runs[0].id)
        paths = index.image_paths(res.image_ids[res.image_ids >= 0])
    return {
        (int(f), rank + 1): (Path(paths[int(i)]).name, float(s))
        for f, ids, scores in zip(res.frame_index, res.image_ids, res.scores, strict=True)
        for rank, (i, s) in enumerate(zip(ids, scores, strict=True))
        if i >= 0
    }


def _paths_in(db: str, collection: str) -> tuple[int, int]:
    """(rows, distinct paths) of a collection."""
    with _opened(db) as index:
        found = index.find_collection(collection) if index is not None else None
        if found is None:
            return 0, 0
        images = index.list_images(found.id, limit=1_000_000)
        return len(images), len({i.path for i in images})


def _kill_loop(
    worker: Callable,
    args: Callable[[int], tuple],
    rows: Callable[[int], set],
    kills: int,
    seed: int,
    finished: Callable[[int], bool] | None = None,
) -> tuple[KillReport, int]:
    """Start ``worker`` and SIGKILL it at a random moment, ``kills`` times; each start resumes
    the work the last one left. When the work is all done before a kill comes, a new round
    starts (``args(round)``); so it does when a kill came after the round's work was stored but
    before its process exited (``finished(round)``). Returns the report and the last round."""
    import random

    rng = random.Random(seed)
    report = KillReport()
    round_ = 0
    while report.kills < kills:
        before = rows(round_)
        started = _CTX.Event()
        proc = _CTX.Process(target=worker, args=(*args(round_), started))
        proc.start()
        if not started.wait(120):
            proc.kill()
            raise RuntimeError(f"{worker.__name__} did not start")
        proc.join(rng.uniform(0.02, 0.5))
        if not proc.is_alive():
            if proc.exitcode != 0:
                raise RuntimeError(f"{worker.__name__} failed with exit code {proc.exitcode}")
            report.finished_before_kill += 1
            round_ += 1
            continue
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        report.kills += 1
        report.integrity_ok += _integrity(args(round_)[1])
        report.rows_lost += len(before - rows(round_))
        if finished is not None and finished(round_):
            round_ += 1
    return report, round_


def kills_during_index(work: Path, kills: int, pictures: int, seed: int = 0) -> KillReport:
    """Kill indexers at random moments; resume; compare with an uninterrupted index."""
    db, clean = str(work / "kill-index.sqlite"), str(work / "clean-index.sqlite")
    report, last = _kill_loop(
        _index_worker,
        lambda r: (str(work), db, f"pictures-{r}"),
        lambda r: set(_images(db, f"pictures-{r}")),
        kills,
        seed,
    )
    name = f"pictures-{last}"
    _run(_index_worker, str(work), db, name, _CTX.Event())
    _run(_index_worker, str(work), clean, name, _CTX.Event())
    resumed, reference = _images(db, name), _images(clean, name)
    report.resumed_exact = resumed == reference and len(resumed) == pictures
    report.detail = f"{len(resumed)} images after resuming, {len(reference)} in an uninterrupted run"
    return report


def kills_during_match(work: Path, kills: int, seed: int = 1) -> KillReport:
    """Kill matchers at random moments; resume; compare with an uninterrupted run."""
    db, clean = str(work / "kill-match.sqlite"), str(work / "clean-match.sqlite")
    for path in (db, clean):
        _run(_index_worker, str(work), path, "pictures", _CTX.Event())

    def finished(round_: int) -> bool:  # the round's run is done (its process may not have exited)
        runs = _runs(db)
        return len(runs) == round_ + 1 and runs[-1].status == "done"

    # the frames of the round's run (one run per round)
    report, last = _kill_loop(
        _match_worker, lambda _r: (str(work), db), lambda r: _run_frames(db, r), kills, seed, finished
    )
    _run(_match_worker, str(work), db, _CTX.Event())
    _run(_match_worker, str(work), clean, _CTX.Event())
    runs = [(run.id, run.status) for run in _runs(db)]
    resumed, reference = _frames(db), _frames(clean)
    same = resumed.keys() == reference.keys() and all(
        resumed[k][0] == reference[k][0] and abs(resumed[k][1] - reference[k][1]) < 1e-6 for k in reference
    )
    # each round is one run, resumed by every start after a kill: as many runs as rounds, all done
    report.resumed_exact = same and len(runs) == last + 1 and all(status == "done" for _, status in runs)
    report.detail = (
        f"{len(runs)} run(s) after {report.kills} kills, each resumed to done; {len(reference)} frame matches"
    )
    return report


# -- concurrency ----------------------------------------------------------------------------
def _counting(fn: Callable[[], None], queue, label: str) -> None:
    """Run ``fn``; report (label, ok, locked, other) through ``queue``."""
    _quiet()
    try:
        fn()
        queue.put((label, 1, 0, ""))
    except Exception as err:  # noqa: BLE001 - counted and reported by the parent, never hidden
        locked = "locked" in str(err).lower() or "busy" in str(err).lower()
        queue.put((label, 0, int(locked), "" if locked else f"{type(err).__name__}: {err}"))


def _reader(db: str, stop, queue) -> None:
    _quiet()
    from db import Index

    reads = locked = 0
    other = ""
    with Index(db, readonly=True) as index:
        while not stop.is_set():
            try:
                for run in index.list_runs(limit=5):
                    index.load_frame_results(run.id)
                for coll in index.list_collections():
                    index.list_images(coll.id, limit=50)
                reads += 1
            except Exception as err:  # noqa: BLE001 - counted, see _counting
                if "locked" in str(err).lower() or "busy" in str(err).lower():
                    locked += 1
                else:
                    other = f"{type(err).__name__}: {err}"
                    break
    queue.put(("reader", reads, locked, other))


def concurrency(work: Path) -> ConcurrencyReport:
    """Two indexers (into one collection), two matchers and two readers at once."""
    db = str(work / "concurrent.sqlite")
    _run(_index_worker, str(work), db, "pictures", _CTX.Event())
    queue, stop = _CTX.Queue(), _CTX.Event()
    writers = [
        _CTX.Process(
            target=_counting,
            args=(lambda: _index_worker(str(work), db, "shared", _CTX.Event()), queue, "index"),
        )
        for _ in range(2)
    ] + [
        _CTX.Process(
            target=_counting, args=(lambda: _match_worker(str(work), db, _CTX.Event()), queue, "match")
        )
        for _ in range(2)
    ]
    readers = [_CTX.Process(target=_reader, args=(db, stop, queue)) for _ in range(2)]
    for proc in writers + readers:
        proc.start()
    for proc in writers:
        proc.join(600)
    stop.set()
    for proc in readers:
        proc.join(60)
    report = ConcurrencyReport(writers=len(writers), readers=len(readers))
    while not queue.empty():
        label, ok, locked, other = queue.get()
        report.locked_errors += locked
        if other:
            report.other_errors.append(other)
        if label == "reader":
            report.reads += ok
        else:
            report.writes_ok += ok
    rows, paths = _paths_in(db, "shared")
    if rows != paths:
        report.other_errors.append(f"the shared collection holds {rows} rows for {paths} paths")
    return report


# -- bad inputs -----------------------------------------------------------------------------
def _corpus(work: str, queue) -> None:
    """Child: make ≥ 40 bad inputs and give each to the CLI; report what the user saw."""
    _quiet()
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
    queue = _CTX.Queue()
    proc = _CTX.Process(target=_corpus, args=(str(work), queue))
    proc.start()
    cases = []
    while True:
        item = queue.get(timeout=600)
        if item is None:
            break
        cases.append(CorpusCase(**item))
    proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"the bad-input corpus failed (exit code {proc.exitcode})")
    return cases


# -- memory ---------------------------------------------------------------------------------
def _extreme(work: str, queue) -> None:
    _quiet()
    import resource

    import numpy as np
    import psutil
    from PIL import Image

    from core.matching.indexing import index_images
    from core.model.features import FeatureExtractor
    from db import Index

    folder = Path(work) / "extreme"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (1, 40000, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (40000, 1, 3), dtype=np.uint8)).save(folder / "tall.png")
    fx = FeatureExtractor.load(Path(work) / "model", device="cpu")
    base_mb = psutil.Process().memory_info().rss / 2**20
    start = time.perf_counter()
    with Index(Path(work) / "extreme.sqlite") as index:
        report = index_images(index, "extreme", [folder], fx)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "images": 2,
            "added": len(report.added),
            "failed": len(report.failed),
            "seconds": round(time.perf_counter() - start, 2),
            "rss_before_mb": round(base_mb, 1),
            "peak_rss_mb": round(peak_mb, 1),
            "growth_mb": round(peak_mb - base_mb, 1),
        }
    )


def extreme_aspect_memory(work: Path) -> dict:
    queue = _CTX.Queue()
    proc = _CTX.Process(target=_extreme, args=(str(work), queue))
    proc.start()
    result = queue.get(timeout=300)
    proc.join(60)
    return result


# -- the whole run --------------------------------------------------------------------------
def run(
    work: Path, *, index_kills: int, match_kills: int, quick: bool = False, log: Callable[[str], None] = print
) -> dict:
    sizes = QUICK if quick else Sizes()
    if _run(_build, str(work), sizes) != 0:
        raise RuntimeError("building the test material failed")
    results: dict = {"machine": _machine(), **asdict(sizes), "work": str(work)}
    steps = [
        ("kills_during_index", lambda: asdict(kills_during_index(work, index_kills, sizes.pictures))),
        ("kills_during_match", lambda: asdict(kills_during_match(work, match_kills))),
        ("concurrency", lambda: asdict(concurrency(work))),
        ("bad_inputs", lambda: [asdict(c) for c in bad_inputs(work)]),
        ("extreme_aspect", lambda: extreme_aspect_memory(work)),
    ]
    for name, step in steps:
        start = time.perf_counter()
        results[name] = step()
        log(f"{name}: {time.perf_counter() - start:.0f} s")
    return results


def _machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0]}


def markdown(results: dict) -> str:
    """The README's Reliability tables."""
    idx, mat, con = results["kills_during_index"], results["kills_during_match"], results["concurrency"]
    cases = results["bad_inputs"]
    mem = results["extreme_aspect"]
    lines = [
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores.",
        "",
        "| scenario | kills | integrity ok | rows lost | resume equals an uninterrupted run |",
        "|---|---:|---:|---:|---|",
        f"| `kill -9` during indexing | {idx['kills']} | {idx['integrity_ok']} | {idx['rows_lost']} | "
        f"{'yes' if idx['resumed_exact'] else 'NO'} ({idx['detail']}) |",
        f"| `kill -9` during matching | {mat['kills']} | {mat['integrity_ok']} | {mat['rows_lost']} | "
        f"{'yes' if mat['resumed_exact'] else 'NO'} ({mat['detail']}) |",
        "",
        f"Concurrency: {con['writers']} writers (2 indexers into one collection, 2 matchers) and "
        f"{con['readers']} readers at once: {con['reads']:,} read rounds, {con['writes_ok']} of "
        f'{con["writers"]} writers finished, **{con["locked_errors"]} "database is locked" errors**, '
        f"{len(con['other_errors'])} other errors.",
        "",
        f"Bad inputs: **{sum(c['clean'] for c in cases)} of {len(cases)} handled cleanly** (exit 0 with a "
        "one-line `failed:` reason, or exit 2 with one `error:` line; no traceback, nothing stored lost):",
        "",
        "| kind | input | exit | what the user sees |",
        "|---|---|---:|---|",
    ]
    work = results.get("work", "")
    for c in cases:
        says = c["says"].replace(work + "/corpus/", "…/") if work else c["says"]
        says = says.replace("|", "\\|").replace("\n", "\\n")
        if len(says) > 110:
            says = says[:107] + "..."
        name = c["name"].replace("\n", "\\n").replace("|", "\\|")
        lines.append(f"| {c['kind']} | `{name}` | {c['exit_code']} | {says} |")
    lines += [
        "",
        f"Extreme aspect (a 1×40000 and a 40000×1 PNG indexed): peak RSS {mem['peak_rss_mb']:.0f} MB, "
        f"{mem['growth_mb']:.0f} MB above the process before indexing ({mem['added']} added, "
        f"{mem['failed']} failed, {mem['seconds']} s).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer kills (CI): 6 during indexing, 4 during matching"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--markdown", action="store_true", help="print README's tables")
    args = parser.parse_args(argv)
    kills = (6, 4) if args.quick else (20, 10)
    with tempfile.TemporaryDirectory(prefix="webssl-reliability-") as tmp:
        results = run(
            Path(tmp),
            index_kills=kills[0],
            match_kills=kills[1],
            quick=args.quick,
            log=lambda m: print(m, file=sys.stderr),
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
