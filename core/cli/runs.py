"""Commands on match runs: ``match``, ``runs``, ``export``, ``rematch``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import config
from core.cli.common import (
    EXIT_DECLINED,
    add_db_option,
    add_model_options,
    add_yes_option,
    confirmed,
    extractor_on_demand,
    load_extractor,
    model_label,
    model_options,
    open_index,
    progress_bar,
    shown,
)
from core.errors import InvalidArgumentError, WebSSLError
from core.matching.export import EXPORT_FORMATS, ExportFormat
from core.matching.params import DEFAULTS
from core.matching.sampling import DEFAULT_SAMPLING


def sampling_of(args: argparse.Namespace):
    """The sampling that :func:`add_sampling_options` parsed."""
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
    sampling = sampling_of(args)
    regions = None
    if args.regions:
        from core.matching.regions import DEFAULT_REGIONS as regions
    if len(args.videos) > 1 or Path(args.videos[0]).is_dir() or args.ray is not None:
        with open_index(args, write=True) as index:
            coll = index.get_collection(args.collection)  # fail before loading the model
            # loaded only if a video is left to match
            model = extractor_on_demand(args, model_label(args, coll), precision=config.MATCH_PRECISION)
            return _match_batch(args, index, coll, model, sampling, params, regions)
    with progress_bar(args) as bar:
        summary = api.match(
            args.videos[0],
            args.collection,
            db=args.db,
            sampling=sampling,
            params=params,
            max_frames=args.max_frames,
            progress=bar,
            regions=regions,
            **model_options(args),
        ).summary
    view = summary.view
    print(
        f"run {summary.run_id}: {summary.frames_recorded} frames ({sampling.describe()}): "
        f"{summary.frames_computed} analysed, {summary.frames_from_cache} from cache, "
        f"{summary.frames_inherited} unchanged; {summary.matched_frames} matched ≥ {params.threshold:g}; "
        f"{summary.elapsed_s:.1f} s ({summary.video_seconds_per_second:.2f}× real time)"
        + ("; regions searched" if regions else "")
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
        print(f"  warning: {shown(decode.describe(args.videos[0]))}")
    _write_exports(view, _export_targets(args), indent="  ")
    return 0


def _match_batch(args: argparse.Namespace, index, coll, model, sampling, params, regions) -> int:
    """Several videos (or a folder): one run each, then a summary table; ``--ray`` on a cluster."""
    from core.matching.batch import match_batch
    from core.matching.runs import load_run

    folders = _export_targets(args)
    for _, folder in folders:
        if folder.suffix:
            raise WebSSLError(
                f"With several videos, export options name folders (one file per run), not {folder}."
            )
    options = dict(sampling=sampling, params=params, batch_size=args.batch_size, max_frames=args.max_frames)
    with progress_bar(args) as bar:
        if args.ray is not None:
            from core.matching.cluster import match_on_ray

            report = match_on_ray(
                index,
                args.videos,
                coll.name,
                model,
                address=args.ray or None,
                workers=args.workers,
                progress=bar,
                regions=regions,
                **options,
            )
        else:
            report = match_batch(
                index, args.videos, coll.name, model, progress=bar, regions=regions, **options
            )
    width = max(len(shown(Path(item.path).name)) for item in report.items) if report.items else 5
    print(
        f"{'video':<{width}}  {'status':<11}  {'run':>5}  {'frames':>7}  {'analysed':>8}  {'matched':>7}  {'segments':>8}  {'s':>7}"
    )
    for item in report.items:
        run = str(item.run_id) if item.run_id is not None else "-"
        print(
            f"{shown(Path(item.path).name):<{width}}  {item.status:<11}  {run:>5}  {item.frames:>7}  "
            f"{item.analysed:>8}  {item.matched:>7}  {item.segments:>8}  {item.elapsed_s:>7.1f}"
            + (f"  {shown(item.reason)}" if item.reason else "")
        )
    print(report.summary() + (f" on {report.workers} Ray workers" if args.ray is not None else ""))
    for item in report.items:
        if item.run_id is not None and folders:
            stem = f"{Path(item.path).stem}.run{item.run_id}"
            targets = [(fmt, folder / f"{stem}{fmt.suffix}") for fmt, folder in folders]
            _write_exports(load_run(index, item.run_id), targets, indent="  ")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    if args.delete:
        return _delete_runs(args, args.delete)
    if args.refresh:
        return _refresh_runs(args)
    if args.videos:
        raise InvalidArgumentError("--videos goes with --refresh: runs --refresh --videos")
    from core.matching.runs import out_of_date_runs

    with open_index(args) as index:
        coll = index.get_collection(args.collection) if args.collection else None
        runs = index.list_runs(collection_id=coll.id if coll else None, limit=args.limit)
        stale = {r.id for r in out_of_date_runs(index, coll.id if coll else None)}
    if args.json:
        print(json.dumps([_run_as_json(r) for r in runs], indent=2))
        return 0
    if not runs:
        if coll is not None:
            print(f"no match runs of {shown(coll.name)} yet: python -m core match VIDEO --collection NAME")
        else:
            print("no match runs yet: python -m core match VIDEO --collection NAME")
        return 0
    for r in runs:
        print(
            f"{r.id:>5}  {r.created}  {r.status:<11}  {shown(r.collection_name or '?')}  "
            f"{shown(Path(r.video_path).name)}  threshold {r.params.get('threshold')}  {_outcome(r, r.id in stale)}"
        )
    return 0


def _refresh_runs(args: argparse.Namespace) -> int:
    """``runs --refresh``: the runs whose collection changed, brought up to date from the cache."""
    from core.matching.refresh import refresh_runs

    load = (lambda model, precision: load_extractor(args, model, precision)) if args.videos else None
    with open_index(args, write=True) as index, progress_bar(args) as bar:
        done = refresh_runs(index, args.collection, load=load, progress=bar)
    if not done:
        print("no run is out of date: every done run has searched its collection as it is now")
        return 0
    for d in done:
        print(
            f"{d.run_id:>5}  {d.status:<16}  {shown(Path(d.video_path).name)}"
            + (f"  {shown(d.reason)}" if d.reason else "")
        )
    searched = sum(d.status == "searched again" for d in done)
    matched = sum(d.status == "matched again" for d in done)
    print(
        f"{searched + matched} of {len(done)} out-of-date run(s) brought up to date: {searched} from their "
        f"cached frames, {matched} matched again from their videos"
    )
    return 0


def _outcome(r, out_of_date: bool = False) -> str:
    """What a run found, or how far an unfinished one got (``out_of_date``: its collection changed
    since and no newer run of the video has the same options)."""
    stats = r.stats or {}
    if r.status == "done":
        found = f"{stats.get('matched', '?')} matched / {stats.get('recorded', '?')} frames"
        if out_of_date and r.params.get("regions"):  # a new image's regions are in the pixels
            return f"{found}; the collection changed since: runs --refresh --videos matches it again from its video"
        if out_of_date:
            return f"{found}; the collection changed since: runs --refresh brings it up to date (no model)"
        if r.collection_changed:
            return f"{found}; the collection changed since: a newer run of the video has the same options"
        return found
    if r.status == "running":
        return "running"
    frames = stats.get("decoded")
    so_far = f"{frames} frames decoded; " if frames else ""
    return f"unfinished: {so_far}match the video again with the same options to resume"


def _run_as_json(r) -> dict:
    return {
        "id": r.id,
        "created": r.created,
        "finished": r.finished,
        "status": r.status,
        "collection": r.collection_name,
        "video": r.video_path,
        "model": r.model_id,
        "threshold": r.params.get("threshold"),
        "stats": r.stats or {},
        "collection_changed": r.collection_changed,
    }


def _delete_runs(args: argparse.Namespace, run_ids: list[int]) -> int:
    with open_index(args, write=True) as index:
        runs = [index.get_run(run_id) for run_id in dict.fromkeys(run_ids)]  # all known, or none goes
        names = [
            f"run {r.id} ({shown(Path(r.video_path).name)} against {shown(r.collection_name or '?')})"
            for r in runs
        ]
        question = (
            f"Delete {names[0]}?" if len(names) == 1 else f"Delete {len(names)} runs ({', '.join(names)})?"
        )
        if not confirmed(args, question):
            return EXIT_DECLINED
        for r in runs:
            index.delete_run(r.id)
    for name in names:
        print(f"deleted {name}")
    return 0


def _export_options(p: argparse.ArgumentParser) -> None:
    """``--json``, ``--csv``, ``--edl``, ... : one option per export format."""
    for fmt in EXPORT_FORMATS:
        p.add_argument(
            f"--{fmt.key}",
            type=Path,
            default=None,
            metavar=f"OUT{fmt.suffix}",
            help=f"write {fmt.description}",
        )


def _export_targets(args: argparse.Namespace) -> list[tuple[ExportFormat, Path]]:
    """The export options given: (format, file or folder)."""
    return [(fmt, getattr(args, fmt.key)) for fmt in EXPORT_FORMATS if getattr(args, fmt.key)]


def _write_exports(view, targets: list[tuple[ExportFormat, Path]], indent: str = "") -> None:
    for fmt, path in targets:
        print(f"{indent}{fmt.label}: {fmt.write(view, path)}")


def cmd_export(args: argparse.Namespace) -> int:
    from core.matching.runs import load_run

    targets = _export_targets(args)
    if not targets:
        options = ", ".join(f"--{fmt.key} OUT{fmt.suffix}" for fmt in EXPORT_FORMATS)
        raise WebSSLError(f"Nothing to export: give one or more of {options}")
    with open_index(args) as index:
        view = load_run(index, args.run_id).relabel(
            threshold=args.threshold, gap_tolerance_s=args.gap, min_duration_s=args.min_duration
        )
    if not view.complete:
        print(f"warning: {shown(view.incomplete_note())}", file=sys.stderr)
    _write_exports(view, targets)
    return 0


def cmd_rematch(args: argparse.Namespace) -> int:
    from core.matching.params import MatchParams
    from core.matching.runs import rematch

    with open_index(args, write=True) as index:
        old = index.get_run(args.run_id)
        params = MatchParams.from_dict(old.params).updated(threshold=args.threshold, top_k=args.top_k)
        with progress_bar(args) as bar:
            view = rematch(index, args.run_id, collection=args.collection, params=params, progress=bar)
    print(
        f"run {view.run.id}: re-matched from run {args.run_id} without the model; "
        f"{len(view.segments)} segments"
    )
    return 0


def relabel_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
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


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """``--every-frame``, ``--fps``, ``--stride``, ``--max-interval`` (read by :func:`sampling_of`)."""
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


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("match", parents=[common], help="match videos' frames against a collection")
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files (any format FFmpeg reads) and/or folders of videos: several make a batch, "
        "one run per video, resumable, with a summary table",
    )
    p.add_argument("--collection", "-c", required=True)
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the batch on Ray (optional extra: pip install 'webssl-lens[cluster]'): workers decode and "
        "embed, this process writes the database; no ADDRESS: a local Ray instance, 'auto': the cluster "
        "this machine is in, ray://HOST:10001: a remote one",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="Ray workers (default: one per CPU of the cluster)"
    )
    add_db_option(p)
    add_model_options(p, bound=True)
    add_sampling_options(p)
    relabel_options(p, defaults=True)
    p.add_argument("--top-k", "-k", type=int, default=DEFAULTS.top_k, help="default: %(default)s")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many decoded frames")
    p.add_argument(
        "--regions",
        action="store_true",
        help="also find images that fill only part of a frame (each frame costs more; see README)",
    )
    _export_options(p)
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("runs", parents=[common], help="list, delete or bring up to date stored match runs")
    add_db_option(p)
    p.add_argument("--limit", type=int, default=20, help="the newest this many (default: %(default)s)")
    p.add_argument("--collection", "-c", default=None, help="only the runs against this collection")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--delete", type=int, nargs="+", metavar="RUN", help="delete runs with their results (by id)"
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="bring the done runs whose collection changed up to date from their cached frames "
        "(no model, no video file; with --collection, that collection's only)",
    )
    p.add_argument(
        "--videos",
        action="store_true",
        help="with --refresh: also match again from their videos, with their own options, the runs "
        "that need them (region runs, runs whose frames are no longer cached); loads the model",
    )
    add_yes_option(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "export", parents=[common], help="export a stored run: JSON, CSV, EDL, OpenTimelineIO, WebVTT"
    )
    p.add_argument("run_id", type=int)
    add_db_option(p)
    relabel_options(p, defaults=False)
    _export_options(p)
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
