"""Commands on collections: ``index``, ``collections``, ``images``, ``search``, ``prune``."""

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
    model_options,
    open_index,
    progress_bar,
    shown,
)
from core.errors import InvalidArgumentError
from core.matching.params import DEFAULTS
from db import NotFoundError


def cmd_index(args: argparse.Namespace) -> int:
    from core import api

    with progress_bar(args) as bar:
        report = api.index_folder(
            args.paths, args.collection, db=args.db, progress=bar, **model_options(args)
        )
    rate = f", {report.images_per_s:.1f} images/s" if report.added else ""
    print(f"{shown(report.summary())} ({report.elapsed_s:.1f} s{rate})")
    for path, original in report.duplicates:
        print(f"  duplicate: {shown(path)} (same content as {shown(original)})")
    for path, reason in report.failed:
        print(f"  failed: {shown(path)}: {shown(reason)}")
    return 0


def cmd_collections(args: argparse.Namespace) -> int:
    if args.rename:
        return _rename(args, *args.rename)
    if args.delete:
        return _delete(args, args.delete)
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
    width = max(len(shown(c.name)) for c in rows)
    for c in rows:
        print(
            f"{shown(c.name):<{width}}  {c.image_count:>7} images  {c.failure_count:>4} failed  {shown(c.model_id)}"
        )
    return 0


def _rename(args: argparse.Namespace, old: str, new: str) -> int:
    with open_index(args, write=True) as index:
        renamed = index.rename_collection(old, new)
    print(f"renamed {shown(old)} to {shown(renamed.name)}")
    return 0


def _delete(args: argparse.Namespace, name: str) -> int:
    with open_index(args, write=True) as index:
        coll = index.get_collection(name)
        runs = len(index.list_runs(collection_id=coll.id))
        what = f"{coll.image_count} images, {runs} runs"
        if not confirmed(args, f"Delete collection {shown(coll.name)} ({what})?"):
            return EXIT_DECLINED
        index.delete_collection(coll.name)
    print(f"deleted collection {shown(coll.name)}: {what}")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    if args.remove:
        return _remove_images(args)
    with open_index(args) as index:
        coll = index.get_collection(args.collection)
        records = index.list_images(coll.id, offset=args.offset, limit=args.limit, name_filter=args.name)
        total = index.count_images(coll.id, args.name) if args.name else coll.image_count
    if args.json:
        print(json.dumps([_image_as_json(r) for r in records], indent=2))
        return 0
    for r in records:
        print(f"{r.id:>8}  {r.width:>5}×{r.height:<5}  {shown(r.path)}")
    which = f" whose names contain {shown(args.name)}" if args.name else ""
    print(f"{len(records)} of {total} images of {shown(coll.name)}{which} (--offset, --limit for more)")
    return 0


def _image_as_json(r) -> dict:
    return {
        "id": r.id,
        "name": r.name,
        "path": r.path,
        "width": r.width,
        "height": r.height,
        "sha256": r.sha256,
        "added": r.added,
    }


def _remove_images(args: argparse.Namespace) -> int:
    """``images --remove IMAGE...``: all named images are found, or nothing goes."""
    with open_index(args, write=True) as index:
        coll = index.get_collection(args.collection)
        picked = {r.id: r for name in args.remove for r in [_pick_image(index, coll, name)]}
        names = ", ".join(shown(r.name) for r in picked.values())
        question = (
            f"Remove {len(picked)} image(s) from {shown(coll.name)} ({names}), with their matches in runs?"
        )
        if not confirmed(args, question):
            return EXIT_DECLINED
        index.remove_images(coll.id, list(picked))
    print(f"removed {len(picked)} image(s) from {shown(coll.name)}; their matches left the runs")
    for r in picked.values():
        print(f"  {shown(r.path)}")
    return 0


def _pick_image(index, coll, name: str):
    """The image of ``coll`` that ``name`` gives: its id, its path, or a file name it alone has.

    Raises:
        InvalidArgumentError: no image, or more than one, answers to ``name``.
    """
    if name.isdigit():
        try:
            rec = index.get_image(int(name))
        except NotFoundError:
            rec = None
        if rec is not None and rec.collection_id == coll.id:
            return rec
    path = str(Path(name).expanduser().resolve())
    candidates = index.list_images(coll.id, limit=PICK_LIMIT, name_filter=Path(name).name)
    found = [r for r in candidates if r.path in (name, path)] or [r for r in candidates if r.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidArgumentError(
            f"{name} is not an image of {coll.name}: give an id, path or file name that "
            f"python -m core images -c {coll.name} lists"
        )
    raise InvalidArgumentError(f"{name} names {len(found)} images of {coll.name}: give its id or path")


PICK_LIMIT = 1000  # images with a name like the one given that are compared with it


def cmd_search(args: argparse.Namespace) -> int:
    from core import api

    hits = api.search(args.image, args.collection, db=args.db, k=args.top_k, **model_options(args))
    rows = [{"image": h.image, "path": h.path, "score": round(h.score, 6)} for h in hits]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, row in enumerate(rows, 1):
        print(f"{rank:>3}. {row['score']:.3f}  {shown(row['image'])}  ({shown(row['path'])})")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from core.matching.indexing import find_missing_files, remove_missing_files

    with open_index(args, write=True) as index:
        missing = find_missing_files(index, index.get_collection(args.collection))
        name, n, total = shown(missing.collection.name), len(missing.images), missing.collection.image_count
        if not missing.images:
            print(f"{shown(missing.summary())}: nothing removed")
            return 0
        if missing.everything and not args.all:
            raise InvalidArgumentError(
                f"{missing.summary()}. Nothing removed; add --all to remove them anyway."
            )
        if args.dry_run:
            print(f"{name}: would remove {n} of {total} images whose files are gone")
            for _, path in missing.images:
                print(f"  {shown(path)}")
            return 0
        if not confirmed(
            args, f"Remove {n} of {total} images of {name} whose files are gone, with their matches?"
        ):
            return EXIT_DECLINED
        removed = remove_missing_files(index, missing)
    print(f"{name}: removed {len(removed)} image(s) whose files are gone")
    for path in removed:
        print(f"  {shown(path)}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="index image files and folders into a collection")
    p.add_argument("paths", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--collection", "-c", required=True, help="collection name (created if new)")
    add_db_option(p)
    add_model_options(p, bound=True)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("collections", parents=[common], help="list, rename or delete collections")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="rename a collection")
    action.add_argument("--delete", metavar="NAME", help="delete a collection with its images and match runs")
    add_yes_option(p)
    p.set_defaults(func=cmd_collections)

    p = sub.add_parser("images", parents=[common], help="list a collection's images, or remove some from it")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--name", default=None, metavar="TEXT", help="only images whose file name contains TEXT")
    p.add_argument("--offset", type=int, default=0, help="skip this many (by path)")
    p.add_argument("--limit", type=int, default=100, help="list at most this many (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--remove",
        nargs="+",
        metavar="IMAGE",
        help="images to remove (id, path or file name), with their embeddings and their matches in runs",
    )
    add_yes_option(p)
    add_db_option(p)
    p.set_defaults(func=cmd_images)

    p = sub.add_parser(
        "search", parents=[common], help="the images of a collection most similar to a query image"
    )
    p.add_argument("image", help="query image file")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--top-k", "-k", type=int, default=DEFAULTS.top_k, help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_db_option(p)
    add_model_options(p, bound=True)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("prune", parents=[common], help="remove images whose files no longer exist")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--dry-run", action="store_true", help="list the images it would remove; remove nothing")
    p.add_argument(
        "--all",
        action="store_true",
        help="remove them even when every file is gone (an unmounted drive looks like that)",
    )
    add_yes_option(p)
    add_db_option(p)
    p.set_defaults(func=cmd_prune)
