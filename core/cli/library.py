"""Commands on the video library: ``index-videos``, ``find``, ``videos``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli.common import (
    EXIT_DECLINED,
    add_db_option,
    add_model_options,
    add_yes_option,
    confirmed,
    extractor_on_demand,
    load_extractor,
    open_index,
    progress_bar,
    shown,
)
from core.cli.runs import add_sampling_options, relabel_options, sampling_of
from core.errors import InvalidArgumentError


def cmd_index_videos(args: argparse.Namespace) -> int:
    from core.matching.library import index_videos

    with open_index(args, create=True) as index:
        model = extractor_on_demand(args, precision="auto")  # loaded only if a video is left to index
        with progress_bar(args) as bar:
            report = index_videos(
                index, args.paths, model, sampling=sampling_of(args), batch_size=args.batch_size, progress=bar
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
                    "file": a.file,
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
    from core.matching.params import MatchParams
    from core.media.files import FILE_STATE_NOTES
    from core.media.video import format_time

    params = MatchParams(threshold=args.threshold, gap_tolerance_s=args.gap, min_duration_s=args.min_duration)
    if bool(args.images) == bool(args.collection):
        raise InvalidArgumentError("give query image files, or --collection NAME for a collection's images")
    if args.name and not args.collection:
        raise InvalidArgumentError("--name picks images of a --collection")
    with open_index(args) as index:
        found = _find_collection(index, args, params) if args.collection else _find_files(index, args, params)
    if found is None:
        return 0
    if args.json:
        args.json.write_text(json.dumps(found_as_json(found), indent=2))
    shown_found = [f for f in found if f.appearances] if args.collection else found
    for f in shown_found:
        print(f"{shown(f.query)}: {len(f.appearances)} video(s)")
        for a in f.appearances:
            spans = ", ".join(
                f"{format_time(s.start_s)}–{format_time(s.end_s)} ({s.peak_score:.2f})" for s in a.segments
            )
            print(f"  {shown(a.video.path)}: {spans}")
            if a.file != "ok":
                print(f"    note: {FILE_STATE_NOTES[a.file]}")
    if args.collection:
        videos = {a.video.path for f in found for a in f.appearances}
        print(f"{len(shown_found)} of {len(found)} images appear in {len(videos)} video(s)")
    if args.json:
        print(f"JSON: {args.json}")
    return 0


def _find_files(index, args: argparse.Namespace, params):
    """``find IMAGE...``: the files embedded by the model (None: no frames to search)."""
    from core.matching.library import find_images, library_keys
    from core.media.images import load_image

    images = [load_image(path) for path in args.images]  # a bad query fails before the model loads
    fx = load_extractor(args, precision="auto")
    if not library_keys(index, fx):
        _no_frames(fx.model_id)
        return None
    names = [Path(p).name for p in args.images]
    with progress_bar(args) as bar:
        return find_images(index, fx, [i.rgb for i in images], names, params=params, progress=bar)


def _no_frames(model_id: str) -> None:
    print(
        f"no indexed video frames for model {shown(model_id)}: "
        "python -m core index-videos FOLDER (or match a video) first"
    )


def _find_collection(index, args: argparse.Namespace, params):
    """``find --collection C [--name TEXT]``: the collection's images by their stored
    embeddings, no model (None: no image to search)."""
    from core.matching.library import collection_library_keys, find_collection_images

    collection = index.get_collection(args.collection)
    if not collection_library_keys(index, collection):
        _no_frames(collection.model_id)
        return None
    total = index.count_images(collection.id, args.name)
    records = index.list_images(collection.id, limit=total, name_filter=args.name)
    if not records:
        print(
            f"no images in {shown(collection.name)}"
            + (f" whose name contains {args.name!r}" if args.name else "")
        )
        return None
    with progress_bar(args) as bar:
        return find_collection_images(index, collection, [r.id for r in records], params=params, progress=bar)


def cmd_videos(args: argparse.Namespace) -> int:
    from core.media.files import FILE_STATE_NOTES, video_file_state
    from core.media.video import format_time

    if args.remove or args.missing:
        return _remove_videos(args)
    with open_index(args) as index:
        entries = index.searchable_videos()
        states = {e.video.sha256: video_file_state(e.video, index) for e in entries}
    if args.json:
        print(json.dumps([_video_as_json(e, states[e.video.sha256]) for e in entries], indent=2))
        return 0
    if not entries:
        print("no videos in the library yet: python -m core index-videos FOLDER (or match a video)")
        return 0
    keys = {e.embed_key for e in entries}
    for e in entries:
        key = f"  {shown(e.embed_key)}" if len(keys) > 1 else ""
        state = states[e.video.sha256]
        print(
            f"{e.video.id:>5}  {format_time(e.video.duration_s):>9}  {e.frames:>7} frames  {e.source:<10}  "
            f"{shown(e.video.path)}{key}"
            + ("" if state == "ok" else f"  ({state}: {FILE_STATE_NOTES[state]})")
        )
    videos = {e.video.sha256: e.video for e in entries}
    seconds = sum(v.duration_s for v in videos.values())
    frames = sum(e.frames for e in entries)
    print(f"{len(videos)} video(s), {format_time(seconds)} of video, {frames} cached frames")
    return 0


def _video_as_json(e, state: str) -> dict:
    v = e.video
    return {
        "id": v.id,
        "path": v.path,
        "file": state,
        "sha256": v.sha256,
        "duration_s": v.duration_s,
        "embed_key": e.embed_key,
        "frames": e.frames,
        "source": e.source,
    }


def _remove_videos(args: argparse.Namespace) -> int:
    """``videos --remove VIDEO... / --missing``: all named videos are found, or nothing goes."""
    from core.media.files import video_file_state

    with open_index(args, write=True) as index:
        videos = {e.video.sha256: e.video for e in index.searchable_videos()}
        by_id = {str(v.id): v for v in videos.values()}
        by_path = {v.path: v for v in videos.values()}
        chosen = {}
        for name in args.remove or []:
            v = by_id.get(name) or by_path.get(name) or by_path.get(str(Path(name).expanduser().resolve()))
            if v is None:
                raise InvalidArgumentError(
                    f"{name} is not in the library: give an id or path that python -m core videos lists"
                )
            chosen[v.sha256] = v
        if args.missing:  # gone, or holding other content indexed since (a re-cut saved over it)
            gone = ("missing", "replaced")
            chosen.update({v.sha256: v for v in videos.values() if video_file_state(v, index) in gone})
        if not chosen:
            print("no video's file is missing or replaced: nothing to remove")
            return 0
        listed = ", ".join(shown(Path(v.path).name) for v in chosen.values())
        if not confirmed(args, f"Remove {len(chosen)} video(s) from the library ({listed})?"):
            return EXIT_DECLINED
        frames = index.forget_videos(list(chosen))
    print(f"removed {len(chosen)} video(s) from the library ({frames} cached frames); their match runs stay")
    for v in chosen.values():
        print(f"  {shown(v.path)}")
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

    p = sub.add_parser(
        "find",
        parents=[common],
        help="where images appear across all indexed videos",
        description="Find where images appear across all indexed videos: image files (embedded by the "
        "model), or a collection's images by their stored embeddings (no model; --name to pick some).",
    )
    p.add_argument("images", nargs="*", help="query image files")
    p.add_argument(
        "--collection", "-c", default=None, help="search the images of this collection instead of files"
    )
    p.add_argument(
        "--name", default=None, metavar="TEXT", help="only its images whose file name contains TEXT"
    )
    relabel_options(p, defaults=True)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the results as JSON")
    add_db_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_find)

    p = sub.add_parser(
        "videos",
        parents=[common],
        help="list the videos find searches, or remove some from the library",
        description="The videos find searches: those indexed with index-videos and those matched "
        "(their analysed frames are cached). --remove takes videos out of the library: their cached "
        "frames go, their match runs stay; the files are not touched.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--remove", nargs="+", metavar="VIDEO", help="videos to remove, by id or path as listed")
    p.add_argument(
        "--missing",
        action="store_true",
        help="remove the videos whose files are gone, or hold other content indexed since",
    )
    add_yes_option(p)
    add_db_option(p)
    p.set_defaults(func=cmd_videos)
