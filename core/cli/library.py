"""Commands on the video library: ``index-videos``, ``find``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli.common import add_db_option, add_model_options, load_extractor, open_index, progress_bar, shown
from core.cli.runs import add_sampling_options, relabel_options, sampling_of


def cmd_index_videos(args: argparse.Namespace) -> int:
    from core.matching.library import index_videos

    with open_index(args, create=True) as index:
        fx = load_extractor(args, precision="auto")
        with progress_bar(args) as bar:
            report = index_videos(
                index, args.paths, fx, sampling=sampling_of(args), batch_size=args.batch_size, progress=bar
            )
    print(f"videos: {report.summary()}; {report.elapsed_s:.1f} s")
    for v in report.videos:
        if v.status == "indexed":
            print(
                f"  {shown(v.path)}: {v.recorded} frames, {v.analysed} analysed ({v.computed} computed), "
                f"{v.elapsed_s:.1f} s"
            )
        elif v.status == "failed":
            print(f"  failed: {shown(v.path)}: {shown(v.reason)}")
    return 0


def found_as_json(found) -> list[dict]:
    """``find`` results as plain JSON values."""
    return [
        {
            "query": f.query,
            "videos": [
                {
                    "video": a.video.path,
                    "duration_s": a.video.duration_s,
                    "peak_score": round(a.peak_score, 6),
                    "segments": [
                        {
                            "start_frame": s.start_frame,
                            "end_frame": s.end_frame,
                            "start_s": round(s.start_s, 3),
                            "end_s": round(s.end_s, 3),
                            "peak_score": round(s.peak_score, 6),
                            "mean_score": round(s.mean_score, 6),
                        }
                        for s in a.segments
                    ],
                }
                for a in f.appearances
            ],
        }
        for f in found
    ]


def cmd_find(args: argparse.Namespace) -> int:
    from core.matching.library import find_images, library_keys
    from core.matching.params import MatchParams
    from core.media.images import load_image
    from core.media.video import format_time

    params = MatchParams(threshold=args.threshold, gap_tolerance_s=args.gap, min_duration_s=args.min_duration)
    images = [load_image(path) for path in args.images]  # a bad query fails before the model loads
    with open_index(args) as index:
        fx = load_extractor(args, precision="auto")
        if not library_keys(index, fx):
            print(
                f"no indexed video frames for model {shown(fx.model_id)}: "
                "python -m core index-videos FOLDER (or match a video) first"
            )
            return 0
        found = find_images(
            index, fx, [i.rgb for i in images], [Path(p).name for p in args.images], params=params
        )
    if args.json:
        args.json.write_text(json.dumps(found_as_json(found), indent=2))
    for f in found:
        print(f"{shown(f.query)}: {len(f.appearances)} video(s)")
        for a in f.appearances:
            spans = ", ".join(
                f"{format_time(s.start_s)}–{format_time(s.end_s)} ({s.peak_score:.2f})" for s in a.segments
            )
            print(f"  {shown(a.video.path)}: {spans}")
    if args.json:
        print(f"JSON: {args.json}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "index-videos", parents=[common], help="index videos for search by image (no collection, no matching)"
    )
    p.add_argument("paths", nargs="+", help="video files and/or folders (searched recursively)")
    add_db_option(p)
    add_model_options(p)
    add_sampling_options(p)
    p.set_defaults(func=cmd_index_videos)

    p = sub.add_parser("find", parents=[common], help="where images appear across all indexed videos")
    p.add_argument("images", nargs="+", help="query image files")
    relabel_options(p, defaults=True)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the results as JSON")
    add_db_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_find)
