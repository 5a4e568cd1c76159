"""Commands that look closer at a stored run: ``evaluate`` (against ground truth) and ``explain``
(where a frame matched)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from core.cli.common import add_db_option, add_model_options, load_extractor, model_label, open_index


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.matching.runs import load_run
    from core.matching.truth import evaluate_run, read_truth

    truth = read_truth(args.truth)  # a bad file fails before the database is opened
    if args.plot is not None:
        from core.visual.figures import check_png

        check_png(args.plot)
    with open_index(args) as index:
        view = load_run(index, args.run_id).relabel(threshold=args.threshold)
    result = evaluate_run(view, truth)

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.1%}"

    def num(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    print(
        f"run {view.run.id} against {args.truth} ({truth.kind}, {result.units} frames evaluated), "
        f"threshold {result.threshold:g}:"
    )
    print(f"  frame accuracy {pct(result.frame_accuracy)}")
    print(
        f"  micro AP {num(result.micro_ap)}; at the threshold: precision {pct(result.precision)}, "
        f"recall {pct(result.recall)} (over time)"
    )
    at90 = result.threshold_at_p90
    print(f"  threshold reaching 90% precision: {'never reached' if at90 is None else f'{at90:.4f}'}")
    for q in result.per_image:
        print(
            f"    {q.image}: AP {num(q.ap)}, precision {pct(q.precision)}, recall {pct(q.recall)} "
            f"({q.truth_s:.1f} s on screen, {q.predicted_s:.1f} s found)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        print(f"  JSON: {args.json}")
    if args.plot:
        from core.visual.figures import pr_curve_png

        curve = result.curve
        title = (
            f"run {view.run.id}: micro AP {num(result.micro_ap)}, frame accuracy {pct(result.frame_accuracy)}"
        )
        out = pr_curve_png(
            curve.recall,
            curve.precision,
            curve.thresholds,
            args.plot,
            calibrated=curve.point(at90),
            title=title,
        )
        print(f"  PR curve: {out}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from core.matching.runs import load_run
    from core.visual.explain import explain_frame, region_settings, save_explanation
    from core.visual.figures import check_png

    check_png(args.out)  # before the model loads
    with open_index(args) as index:
        view = load_run(index, args.run_id)
        coll = index.get_collection_by_id(view.run.collection_id) if view.run.collection_id else None
        # the run's own model; an explicit --model must be the collection's (refused before loading)
        fx = load_extractor(args, model_label(args, coll) if coll is not None else view.run.model_id)
        settings = None
        if args.short_side is not None:
            settings = replace(region_settings(view), short_side=args.short_side)
        explanation = explain_frame(
            fx, view, args.frame, index.get_thumbnails, image_id=args.image, settings=settings
        )
    out = save_explanation(explanation, args.out)
    print(
        f"frame {explanation.frame_index} of run {view.run.id}: {explanation.image_name} "
        f"(score {explanation.score:.3f}{', region' if explanation.box is not None else ''}) -> {out}"
    )
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="a run's quality against ground truth: frame accuracy, AP over time, PR curve (no model)",
        description="Truth is a CSV: image,start_s,end_s (segments, last frame included) or "
        "frame_index,image (labelled frames; an empty image means none). See README.",
    )
    p.add_argument("run_id", type=int)
    p.add_argument("--truth", type=Path, required=True, metavar="TRUTH.csv")
    p.add_argument("--threshold", "-t", type=float, default=None, help="default: the run's threshold")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the results as JSON")
    p.add_argument(
        "--plot", type=Path, default=None, metavar="OUT.png", help="draw the precision–recall curve"
    )
    add_db_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "explain",
        parents=[common],
        help="where a frame matched: frame | heat map of the matched image's patches | the image (PNG)",
    )
    p.add_argument("run_id", type=int)
    p.add_argument("frame", type=int, help="frame number (the nearest frame with a result is used)")
    p.add_argument("--out", "-o", type=Path, required=True, metavar="FILE.png")
    p.add_argument("--image", type=int, default=None, help="image id to explain (default: the frame's best)")
    p.add_argument(
        "--short-side",
        type=int,
        default=None,
        help="the frame is seen whole at this short side in pixels (default: the run's region setting)",
    )
    add_db_option(p)
    add_model_options(p, bound=True)
    p.set_defaults(func=cmd_explain)
