"""Commands on match runs: ``match``, ``runs``, ``export``, ``rematch``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import (
    add_db_option,
    add_model_options,
    model_options,
    open_index,
    progress_bar,
    shown,
)
from core.errors import WebSSLError
from core.matching.params import DEFAULTS
from core.matching.sampling import DEFAULT_SAMPLING


def _sampling(args: argparse.Namespace):
    from core.matching.sampling import Sampling

    if args.every_frame:
        return Sampling.every()
    if args.fps is not None:
        return Sampling.rate(args.fps)
    if args.stride is not None:
        return Sampling.every_nth(args.stride)
    return Sampling.auto(max_interval_s=args.max_interval)


def cmd_match(args: argparse.Namespace) -> int:
    from core import api
    from core.matching.params import MatchParams
    from core.media.video import format_time

    params = MatchParams(
        threshold=args.threshold,
        top_k=args.top_k,
        gap_tolerance_s=args.gap,
        min_duration_s=args.min_duration,
    )
    sampling = _sampling(args)
    with progress_bar(args) as bar:
        summary = api.match(
            args.video,
            args.collection,
            db=args.db,
            sampling=sampling,
            params=params,
            max_frames=args.max_frames,
            progress=bar,
            **model_options(args),
        ).summary
    view = summary.view
    print(
        f"run {summary.run_id}: {summary.frames_recorded} frames ({sampling.describe()}): "
        f"{summary.frames_computed} analysed, {summary.frames_from_cache} from cache, "
        f"{summary.frames_inherited} unchanged; {summary.matched_frames} matched ≥ {params.threshold:g}; "
        f"{summary.elapsed_s:.1f} s ({summary.video_seconds_per_second:.2f}× real time)"
    )
    for seg in view.segments:
        print(
            f"  {shown(view.image_name(seg.image_id))} from {format_time(seg.start_s)} to {format_time(seg.end_s)}, "
            f"peak {seg.peak_score:.2f}, mean {seg.mean_score:.2f}"
        )
    if not view.segments:
        print(f"  no segments: no frame reached the threshold {params.threshold:g}")
    decode = summary.decode
    if decode.lost or decode.ended_early:
        print(f"  warning: {shown(decode.describe(args.video))}")
    _write_exports(view, args.json, args.csv, indent="  ")
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
            f"{r.id:>5}  {r.created}  {r.status:<9}  {shown(r.collection_name or '?')}  {shown(Path(r.video_path).name)}  "
            f"threshold {r.params.get('threshold')}  {stats.get('matched', '?')} matched / "
            f"{stats.get('recorded', '?')} frames"
        )
    return 0


def _write_exports(view, json_path: Path | None, csv_path: Path | None, indent: str = "") -> None:
    from core.matching.export import write_csv, write_json

    if json_path:
        print(f"{indent}JSON: {write_json(view, json_path)}")
    if csv_path:
        print(f"{indent}CSV: {write_csv(view, csv_path)}")


def cmd_export(args: argparse.Namespace) -> int:
    from core.matching.runs import load_run

    if not args.json and not args.csv:
        raise WebSSLError("Nothing to export: give --json OUT.json and/or --csv OUT.csv")
    with open_index(args) as index:
        view = load_run(index, args.run_id).relabel(
            threshold=args.threshold, gap_tolerance_s=args.gap, min_duration_s=args.min_duration
        )
    if not view.complete:
        print(f"warning: {shown(view.incomplete_note())}", file=sys.stderr)
    _write_exports(view, args.json, args.csv)
    return 0


def cmd_rematch(args: argparse.Namespace) -> int:
    from core.matching.params import MatchParams
    from core.matching.runs import rematch

    with open_index(args, write=True) as index:
        old = index.get_run(args.run_id)
        params = MatchParams.from_dict(old.params).updated(threshold=args.threshold, top_k=args.top_k)
        view = rematch(index, args.run_id, collection=args.collection, params=params)
    print(
        f"run {view.run.id}: re-matched from run {args.run_id} without the model; "
        f"{len(view.segments)} segments"
    )
    return 0


def _relabel_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--threshold``, ``--gap``, ``--min-duration``: the defaults, or (export) the run's own."""

    def default(value):
        return value if defaults else None

    def shown(value) -> str:
        return f"default: {value:g}" if defaults else "default: the run's"

    p.add_argument(
        "--threshold", "-t", type=float, default=default(DEFAULTS.threshold), help=shown(DEFAULTS.threshold)
    )
    p.add_argument(
        "--gap",
        type=float,
        default=default(DEFAULTS.gap_tolerance_s),
        help=f"segment gap tolerance in seconds ({shown(DEFAULTS.gap_tolerance_s)})",
    )
    p.add_argument(
        "--min-duration",
        type=float,
        default=default(DEFAULTS.min_duration_s),
        help=f"drop shorter segments, in seconds ({shown(DEFAULTS.min_duration_s)})",
    )


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("match", parents=[common], help="match a video's frames against a collection")
    p.add_argument("video", help="video file (any format FFmpeg reads)")
    p.add_argument("--collection", "-c", required=True)
    add_db_option(p)
    add_model_options(p, bound=True)
    s = p.add_argument_group("sampling (default: change-driven, see README)").add_mutually_exclusive_group()
    s.add_argument("--every-frame", action="store_true", help="analyse every frame")
    s.add_argument("--fps", type=float, default=None, help="analyse F frames per second of video")
    s.add_argument("--stride", type=int, default=None, help="analyse every N-th frame")
    p.add_argument(
        "--max-interval",
        type=float,
        default=DEFAULT_SAMPLING.max_interval_s,
        help="change-driven: refresh at least every S seconds (default: %(default)s)",
    )
    _relabel_options(p, defaults=True)
    p.add_argument("--top-k", "-k", type=int, default=DEFAULTS.top_k, help="default: %(default)s")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many decoded frames")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT.csv", help="write the results as CSV")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("runs", parents=[common], help="list stored match runs")
    add_db_option(p)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("export", parents=[common], help="export a stored run as JSON and/or CSV")
    p.add_argument("run_id", type=int)
    add_db_option(p)
    _relabel_options(p, defaults=False)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT.csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "rematch",
        parents=[common],
        help="re-match a stored run (other collection / top-k / threshold), no model",
    )
    p.add_argument("run_id", type=int)
    add_db_option(p)
    p.add_argument("--collection", "-c", default=None, help="default: the run's collection")
    p.add_argument("--threshold", "-t", type=float, default=None, help="default: the run's")
    p.add_argument("--top-k", "-k", type=int, default=None, help="default: the run's")
    p.set_defaults(func=cmd_rematch)
