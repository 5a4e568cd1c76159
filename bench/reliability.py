"""Reliability: what kills, concurrent writers, bad inputs and extreme images do to the index.

``python -m bench.reliability [--quick] [--json OUT.json]``: a full run (20 kills during
indexing, 10 during matching) gives README's Reliability section; ``--quick`` is what CI runs
(tests/test_reliability.py).

Every scenario runs in processes forked from this one before it does any model or image work
(the parent only orchestrates and reads SQLite with the standard library), so a worker starts
in milliseconds and a kill is a real ``SIGKILL`` of a separate process, as ``kill -9`` would be
(:mod:`bench.forked`). The bad-input corpus is :mod:`bench.bad_inputs`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.bad_inputs import bad_inputs
from bench.forked import CTX, collect, quiet
from bench.forked import run as run_child

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


# -- workers (run in forked children) ------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    pictures: int = 160  # in the collection the indexers build
    frames: int = 300  # of the video the matchers analyse


QUICK = Sizes(80, 150)


def _build(work: str, sizes: Sizes) -> None:
    """Child: the tiny model, the pictures and the video."""
    quiet()
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
    quiet()
    from core.matching.indexing import index_images
    from core.model.features import FeatureExtractor
    from db import Index

    fx = FeatureExtractor.load(Path(work) / "model", device="cpu")
    with Index(db) as index:
        started.set()
        index_images(index, collection, [Path(work) / "pictures"], fx, batch_size=4)


def _match_worker(work: str, db: str, started) -> None:
    quiet()
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
        started = CTX.Event()
        proc = CTX.Process(target=worker, args=(*args(round_), started))
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
    run_child(_index_worker, str(work), db, name, CTX.Event())
    run_child(_index_worker, str(work), clean, name, CTX.Event())
    resumed, reference = _images(db, name), _images(clean, name)
    report.resumed_exact = resumed == reference and len(resumed) == pictures
    report.detail = f"{len(resumed)} images after resuming, {len(reference)} in an uninterrupted run"
    return report


def kills_during_match(work: Path, kills: int, seed: int = 1) -> KillReport:
    """Kill matchers at random moments; resume; compare with an uninterrupted run."""
    db, clean = str(work / "kill-match.sqlite"), str(work / "clean-match.sqlite")
    for path in (db, clean):
        run_child(_index_worker, str(work), path, "pictures", CTX.Event())

    def finished(round_: int) -> bool:  # the round's run is done (its process may not have exited)
        runs = _runs(db)
        return len(runs) == round_ + 1 and runs[-1].status == "done"

    # the frames of the round's run (one run per round)
    report, last = _kill_loop(
        _match_worker, lambda _r: (str(work), db), lambda r: _run_frames(db, r), kills, seed, finished
    )
    run_child(_match_worker, str(work), db, CTX.Event())
    run_child(_match_worker, str(work), clean, CTX.Event())
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
    quiet()
    try:
        fn()
        queue.put((label, 1, 0, ""))
    except Exception as err:  # noqa: BLE001 - counted and reported by the parent, never hidden
        locked = "locked" in str(err).lower() or "busy" in str(err).lower()
        queue.put((label, 0, int(locked), "" if locked else f"{type(err).__name__}: {err}"))


def _reader(db: str, stop, queue) -> None:
    quiet()
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
    run_child(_index_worker, str(work), db, "pictures", CTX.Event())
    queue, stop = CTX.Queue(), CTX.Event()
    writers = [
        CTX.Process(
            target=_counting,
            args=(lambda: _index_worker(str(work), db, "shared", CTX.Event()), queue, "index"),
        )
        for _ in range(2)
    ] + [
        CTX.Process(
            target=_counting, args=(lambda: _match_worker(str(work), db, CTX.Event()), queue, "match")
        )
        for _ in range(2)
    ]
    readers = [CTX.Process(target=_reader, args=(db, stop, queue)) for _ in range(2)]
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


# -- memory ---------------------------------------------------------------------------------
def _extreme(work: str, queue) -> None:
    quiet()
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
    queue.put(None)


def extreme_aspect_memory(work: Path) -> dict:
    """Index a 1×40000 and a 40000×1 picture in a forked child: its peak RSS over its start."""
    (result,) = collect(_extreme, str(work), timeout=300)
    return result


# -- the whole run --------------------------------------------------------------------------
def run(
    work: Path, *, index_kills: int, match_kills: int, quick: bool = False, log: Callable[[str], None] = print
) -> dict:
    sizes = QUICK if quick else Sizes()
    if run_child(_build, str(work), sizes) != 0:
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
