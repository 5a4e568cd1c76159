"""Command line: ``python -m core <command> --help``.

Expected failures (bad input, missing model, unknown collection) print one line to stderr and
exit with status 2; nothing already stored is lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from core import config
from core.errors import WebSSLError
from core.progress import ProgressEvent

logger = logging.getLogger("core.cli")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


# -- shared options ---------------------------------------------------------------------------
def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"SQLite index file (default: $WEBSSL_DB or {config.default_db_path()})",
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=None,
        help=f"Hub id or local folder of a DINOv2-family model (default: $WEBSSL_MODEL or {config.DEFAULT_MODEL_ID})",
    )
    g.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    g.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    g.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="fp32 (default, exact), bf16/fp16 (faster where supported), int8 (CPU, opt-in), auto",
    )
    g.add_argument("--batch-size", type=int, default=None, help="images per forward pass")


def open_index(args: argparse.Namespace, *, create: bool = False):
    """The index named by ``--db`` / ``$WEBSSL_DB``; only ``create=True`` makes a new file."""
    from db import Index

    path = Path(args.db or config.default_db_path())
    if not create and str(path) != ":memory:" and not path.exists():
        raise WebSSLError(
            f"No index database at {path}: index some images first (python -m core index PATH "
            "--collection NAME), or point --db / WEBSSL_DB at an existing file."
        )
    return Index(path)


def load_extractor(args: argparse.Namespace, precision: str | None = None):
    from core.features import FeatureExtractor

    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

    fx = FeatureExtractor.load(
        args.model or config.default_model_id(),
        revision=args.revision,
        device=args.device or config.default_device(),
        precision=args.precision or precision or config.default_precision(),
    )
    if args.batch_size:
        fx.batch_size = args.batch_size
    return fx


class TqdmProgress:
    """A progress callback that draws a tqdm bar on stderr (rate and ETA included)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=event.total, desc=self.desc, unit=f" {event.unit}", dynamic_ncols=True, leave=True
            )
        self.bar.update(event.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def progress_bar(args: argparse.Namespace, desc: str) -> Iterator[TqdmProgress | None]:
    """A tqdm progress callback (``None`` with ``-q``), closed when the block ends."""
    bar = None if getattr(args, "quiet", False) else TqdmProgress(desc)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


# -- commands ---------------------------------------------------------------------------------
def cmd_index(args: argparse.Namespace) -> int:
    from core.indexing import index_images

    with open_index(args, create=True) as index:
        fx = load_extractor(args)
        with progress_bar(args, "indexing") as bar:
            report = index_images(
                index, args.collection, args.paths, fx, batch_size=args.batch_size, progress=bar
            )
    print(
        f"{report.collection}: {len(report.added)} added, "
        f"{len(report.already_indexed) + len(report.duplicates)} already indexed, {len(report.failed)} failed "
        f"({report.elapsed_s:.1f} s, {report.images_per_s:.1f} images/s)"
    )
    for path, original in report.duplicates:
        print(f"  duplicate: {path} (same content as {original})")
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}")
    return 0


def _check_model_before_loading(coll, args: argparse.Namespace) -> None:
    """Refuse a collection built with another model before spending time loading this one."""
    from core.model import resolve_source
    from core.runs import check_collection_model

    check_collection_model(coll, resolve_source(args.model or config.default_model_id(), args.revision).label)


def _sampling(args: argparse.Namespace):
    from core.sampling import Sampling

    if args.every_frame:
        return Sampling.every()
    if args.fps is not None:
        return Sampling.rate(args.fps)
    if args.stride is not None:
        return Sampling.every_nth(args.stride)
    return Sampling.auto(max_interval_s=args.max_interval) if args.max_interval else Sampling.auto()


def cmd_match(args: argparse.Namespace) -> int:
    from core.matching import MatchParams
    from core.runs import load_run, match_video
    from core.video import format_time

    params = MatchParams(
        threshold=args.threshold,
        top_k=args.top_k,
        gap_tolerance_s=args.gap,
        min_duration_s=args.min_duration,
    )
    sampling = _sampling(args)
    with open_index(args) as index:
        coll = index.get_collection(args.collection)  # fail before loading the model
        _check_model_before_loading(coll, args)
        fx = load_extractor(args, precision="auto")
        with progress_bar(args, "matching") as bar:
            summary = match_video(
                index,
                args.video,
                args.collection,
                fx,
                sampling=sampling,
                params=params,
                batch_size=args.batch_size,
                max_frames=args.max_frames,
                progress=bar,
            )
        view = load_run(index, summary.run_id)
    print(
        f"run {summary.run_id}: {summary.frames_recorded} frames ({sampling.describe()}): "
        f"{summary.frames_computed} analysed, {summary.frames_from_cache} from cache, "
        f"{summary.frames_inherited} unchanged; {summary.matched_frames} matched ≥ {params.threshold:g}; "
        f"{summary.elapsed_s:.1f} s ({summary.video_seconds_per_second:.2f}× real time)"
    )
    for seg in view.segments:
        print(
            f"  {view.image_name(seg.image_id)} from {format_time(seg.start_s)} to {format_time(seg.end_s)}, "
            f"peak {seg.peak_score:.2f}, mean {seg.mean_score:.2f}"
        )
    if not view.segments:
        print(f"  no segments: no frame reached the threshold {params.threshold:g}")
    _write_exports(view, args.json, args.csv, indent="  ")
    return 0


def cmd_collections(args: argparse.Namespace) -> int:
    with open_index(args) as index:
        rows = index.list_collections()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": c.name,
                        "model": c.model_id,
                        "images": c.image_count,
                        "failures": c.failure_count,
                        "embed_dim": c.embed_dim,
                        "created": c.created,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print("no collections yet: python -m core index PATH --collection NAME")
        return 0
    width = max(len(c.name) for c in rows)
    for c in rows:
        print(f"{c.name:<{width}}  {c.image_count:>7} images  {c.failure_count:>4} failed  {c.model_id}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with open_index(args) as index:
        runs = index.list_runs(limit=args.limit)
    if not runs:
        print("no match runs yet: python -m core match VIDEO --collection NAME")
        return 0
    for r in runs:
        stats = r.stats or {}
        print(
            f"{r.id:>5}  {r.created}  {r.status:<9}  {r.collection_name or '?'}  {Path(r.video_path).name}  "
            f"threshold {r.params.get('threshold')}  {stats.get('matched', '?')} matched / "
            f"{stats.get('recorded', '?')} frames"
        )
    return 0


def _write_exports(view, json_path: Path | None, csv_path: Path | None, indent: str = "") -> None:
    from core.export import write_csv, write_json

    if json_path:
        print(f"{indent}JSON: {write_json(view, json_path)}")
    if csv_path:
        print(f"{indent}CSV: {write_csv(view, csv_path)}")


def cmd_export(args: argparse.Namespace) -> int:
    from core.runs import load_run

    if not args.json and not args.csv:
        raise WebSSLError("Nothing to export: give --json OUT.json and/or --csv OUT.csv")
    with open_index(args) as index:
        view = load_run(index, args.run_id)
        if args.threshold is not None:
            view = view.relabel(threshold=args.threshold)
    _write_exports(view, args.json, args.csv)
    return 0


def cmd_rematch(args: argparse.Namespace) -> int:
    from core.matching import MatchParams
    from core.runs import load_run, rematch

    with open_index(args) as index:
        old = index.get_run(args.run_id)
        params = MatchParams.from_dict(old.params).updated(threshold=args.threshold, top_k=args.top_k)
        new_id = rematch(index, args.run_id, collection=args.collection, params=params)
        view = load_run(index, new_id)
    print(f"run {new_id}: re-matched from run {args.run_id} without the model; {len(view.segments)} segments")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from core.images import load_image
    from core.search import search_images

    query = load_image(args.image)
    with open_index(args) as index:
        coll = index.get_collection(args.collection)
        _check_model_before_loading(coll, args)
        matrix = index.load_embeddings(coll.id)
        if not len(matrix):
            raise WebSSLError(f"Collection {coll.name!r} has no images yet.")
        fx = load_extractor(args)
        hits = search_images(fx, matrix, [query.rgb], args.top_k)[0]
        records = index.get_images([h.image_id for h in hits])
    rows = [
        {"image": records[h.image_id].name, "path": records[h.image_id].path, "score": round(h.score, 6)}
        for h in hits
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, row in enumerate(rows, 1):
        print(f"{rank:>3}. {row['score']:.3f}  {row['image']}  ({row['path']})")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    with open_index(args) as index:
        coll = index.get_collection(args.collection)
        removed = index.prune_missing(coll.id)
    print(f"{args.collection}: removed {len(removed)} image(s) whose files are gone")
    for path in removed:
        print(f"  {path}")
    return 0


# -- parser -----------------------------------------------------------------------------------
CommandRegistrar = Callable[[argparse._SubParsersAction], None]
_EXTRA_COMMANDS: list[CommandRegistrar] = []


def register_commands(fn: CommandRegistrar) -> CommandRegistrar:
    """Let another module add sub-commands (e.g. the visualisation commands)."""
    _EXTRA_COMMANDS.append(fn)
    return fn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Index images with a Web-SSL DINO ViT and find where they appear in videos.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name: str, **kwargs) -> argparse.ArgumentParser:
        return _add(name, parents=[common, *kwargs.pop("parents", [])], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]  # every command takes -v / -q

    p = sub.add_parser("index", help="index image files and folders into a collection")
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--collection", "-c", required=True, help="collection name (created if new)")
    add_db_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("match", help="match a video's frames against a collection")
    p.add_argument("video", help="video file (any format FFmpeg reads)")
    p.add_argument("--collection", "-c", required=True)
    add_db_option(p)
    add_model_options(p)
    s = p.add_argument_group("sampling (default: change-driven, see README)").add_mutually_exclusive_group()
    s.add_argument("--every-frame", action="store_true", help="analyse every frame")
    s.add_argument("--fps", type=float, default=None, help="analyse F frames per second of video")
    s.add_argument("--stride", type=int, default=None, help="analyse every N-th frame")
    p.add_argument(
        "--max-interval", type=float, default=None, help="change-driven: refresh at least every S s"
    )
    p.add_argument(
        "--threshold", "-t", type=float, default=config.DEFAULT_THRESHOLD, help="default: %(default)s"
    )
    p.add_argument("--top-k", "-k", type=int, default=config.DEFAULT_TOP_K, help="default: %(default)s")
    p.add_argument(
        "--gap", type=float, default=0.5, help="segment gap tolerance in seconds (default: %(default)s)"
    )
    p.add_argument("--min-duration", type=float, default=0.0, help="drop shorter segments (seconds)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many decoded frames")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT.csv", help="write the results as CSV")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("collections", help="list collections")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_collections)

    p = sub.add_parser("runs", help="list stored match runs")
    add_db_option(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("export", help="export a stored run as JSON and/or CSV")
    p.add_argument("run_id", type=int)
    add_db_option(p)
    p.add_argument("--threshold", "-t", type=float, default=None, help="re-label with another threshold")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT.csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "rematch", help="re-match a stored run (other collection / top-k / threshold), no model"
    )
    p.add_argument("run_id", type=int)
    add_db_option(p)
    p.add_argument("--collection", "-c", default=None, help="default: the run's collection")
    p.add_argument("--threshold", "-t", type=float, default=None)
    p.add_argument("--top-k", "-k", type=int, default=None)
    p.set_defaults(func=cmd_rematch)

    p = sub.add_parser("search", help="the images of a collection most similar to a query image")
    p.add_argument("image", help="query image file")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--top-k", "-k", type=int, default=config.DEFAULT_TOP_K, help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_db_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("prune", help="remove images whose files no longer exist")
    p.add_argument("--collection", "-c", required=True)
    add_db_option(p)
    p.set_defaults(func=cmd_prune)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def _load_extra_commands() -> None:
    """Import modules that register further commands (optional parts of the product)."""
    import importlib

    for name in ("core.cli_visual",):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except WebSSLError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished batches are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
