"""Region mode's benchmark: quality and cost of ``match --regions`` on the inset video.

The video (:mod:`bench.inset_video`) shows collection pictures in part of moving frames. The
quality measurement (:func:`m_regions_quality`) matches it twice, with and without regions, and
compares "which image, which frames" at an equal false-positive rate; :func:`m_regions_cost`
times both modes on the ViT-L architecture.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import synthetic as syn
from bench.harness import load_extractor, measure, resolved_auto, timed, warm
from bench.inset_video import (
    WIDTHS,
    InsetPlan,
    render_inset_video,
    smoke_inset_plan,
    write_inset_collection,
)
from bench.settings import cache_dir, model_folder, model_kind

FP_RATES = (0.05, 0.01)
"""The false-positive rates (share of frames without a picture given an image) compared at."""


def threshold_at_fp_rate(scores: np.ndarray, labels: np.ndarray, negative: np.ndarray, rate: float) -> float:
    """The lowest threshold that gives an image to at most ``rate`` of the negative frames."""
    neg = np.sort(np.nan_to_num(scores[negative & (labels >= 0)], nan=-np.inf))[::-1]
    allowed = int(np.floor(rate * int(negative.sum())))
    if allowed >= len(neg):
        return -1.0
    return float(np.nextafter(neg[allowed], np.inf))  # just above the first score not allowed


def frame_quality(
    picture: np.ndarray, share: np.ndarray, labels: np.ndarray, scores: np.ndarray, rate: float
) -> dict:
    """Recall per width and precision of "which image, which frames" at an FP rate."""
    from core.matching.params import matched_mask

    negative = picture < 0
    cut = threshold_at_fp_rate(scores, labels, negative, rate)
    given = np.where(matched_mask(scores, cut), labels, -1)
    right = (given >= 0) & (given == picture)
    out = {
        "threshold": cut,
        "fp_rate": float(np.mean(given[negative] >= 0)) if negative.any() else None,
        "precision": float(right.sum() / max(1, (given >= 0).sum())),
        "recall": {},
    }
    for w in WIDTHS:
        mask = np.isclose(share, w)
        out["recall"][f"1/{round(1 / w)}"] = float(right[mask].mean()) if mask.any() else None
    return out


# -- the benchmark section (bench.sections calls it; each measurement runs in its own process) --
def inset_plan_for(settings) -> InsetPlan:
    """The region video of a benchmark mode (``settings``: :class:`bench.settings.Settings`)."""
    if settings.plan == "smoke":
        return smoke_inset_plan()
    return InsetPlan(shots_per_width=12) if settings.mode == "quick" else InsetPlan()


def _owners(index, paths: list[Path], owners: list[int]) -> dict[int, int]:
    """image id -> picture number, distractors as 1000 + image id (a wrong answer, never -1)."""
    by_path = {str(p.resolve()): o for p, o in zip(paths, owners, strict=True)}
    coll = index.get_collection("regions")
    ids = index.load_embeddings(coll.id).image_ids.tolist()
    out = {}
    for image_id, rec in index.get_images(ids).items():
        owner = by_path.get(str(Path(rec.path).resolve()), -1)
        out[image_id] = owner if owner >= 0 else 1000 + image_id
    return out


PLAN_OVERRIDES = ("seed", "distractors")
"""What a quality measurement may change in the mode's plan (``python -m bench.regions``)."""


def m_regions_quality(settings, arg: dict) -> dict:
    """Global and region runs of the region video with the small model (``arg["model"]``:
    ``small``, the random one, or ``proxy``, the trained stand-in of :mod:`bench.proxy`): recall
    per width and precision at equal false-positive rates, and micro AP (core.matching.truth).
    ``arg["seed"]`` places the shots anew, ``arg["distractors"]`` sets how many collection images
    are never shown (:data:`PLAN_OVERRIDES`)."""
    import tempfile

    from core.matching.indexing import index_images
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.regions import RegionSettings
    from core.matching.sampling import Sampling
    from core.matching.truth import GroundTruth, TruthFrame, evaluate_run
    from db import Index

    plan = replace(inset_plan_for(settings), **{k: int(arg[k]) for k in PLAN_OVERRIDES if k in arg})
    cache = cache_dir(settings)
    video = render_inset_video(plan, cache / "videos")
    paths, owners = write_inset_collection(plan, cache / f"collection-regions-{plan.key()}")
    which = arg.get("model", "small")
    fx = load_extractor(model_folder(settings, which), "fp32")
    truth = GroundTruth(
        "frames",
        frames=tuple(
            TruthFrame(i, f"picture-{p:02d}.jpg" if p >= 0 else "")
            for i, p in enumerate(video.picture.tolist())
        ),
    )
    model = model_kind(settings, which)
    out: dict = {
        "frames": video.frame_count,
        "collection_images": len(paths),
        "model": model,
        "plan_seed": plan.seed,
    }
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "regions.sqlite")
        index_images(index, "regions", paths, fx)
        owner_of = _owners(index, paths, owners)
        for mode, regions in (("global", None), ("regions", RegionSettings())):
            with timed() as t:
                summary = match_video(
                    index,
                    video.path,
                    "regions",
                    fx,
                    sampling=Sampling.every(),
                    params=MatchParams(top_k=1),
                    regions=regions,
                )
            view = summary.view
            labels = np.array([owner_of.get(int(i), -1) for i in view.best_image])
            scores = np.asarray(view.best_score, np.float64)
            out[mode] = {
                "wall_s": round(t.wall_s, 2),
                "micro_ap": evaluate_run(view, truth).micro_ap,
                "at_fp": {
                    f"{r:g}": frame_quality(video.picture, video.share, labels, scores, r) for r in FP_RATES
                },
            }
            if regions is not None:
                out["settings"] = regions.to_dict()
                box_iou = _box_iou(view.regions.boxes, video.boxes[view.regions.frame_index])
                right = labels[view.regions.frame_index] == video.picture[view.regions.frame_index]
                out[mode]["median_iou_when_right"] = (
                    float(np.nanmedian(box_iou[right])) if right.any() else None
                )
        index.close()
    return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes row by row (NaN where a box is missing)."""
    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1, y1 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / area


def m_regions_cost(settings, arg: dict) -> dict:
    """Analysed frames per second of one mode on the region video (every frame, ``frames`` of them)."""
    import tempfile

    from core.matching.pipeline import match_video
    from core.matching.regions import RegionSettings
    from core.matching.sampling import Sampling
    from db import Index

    plan = inset_plan_for(settings)
    video = render_inset_video(plan, cache_dir(settings) / "videos")
    fx = load_extractor(model_folder(settings, arg.get("model", "big")), arg["precision"])
    warm(fx, plan.height, plan.width)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "cost.sqlite")
        _cost_collection(index, fx, plan)
        with timed() as t:
            summary = match_video(
                index,
                video.path,
                "bench",
                fx,
                sampling=Sampling.every(),
                max_frames=arg["frames"],
                regions=RegionSettings() if arg["regions"] else None,
            )
        index.close()
    return {"frames": summary.frames_computed, "timing": t.as_dict(), "precision": fx.precision}


def _cost_collection(index, fx, plan: InsetPlan) -> None:
    """The collection's size and thumbnails (what region mode's cost depends on), with random
    embeddings: indexing 48 images with the big model would only add minutes."""
    from core.media.images import make_thumbnail
    from db import NewImage

    coll = index.get_or_create_collection("bench", fx.model_id, fx.preprocessing.to_json(), fx.hidden_size)
    rng = np.random.default_rng(5)
    size = (plan.height * 2, plan.width * 2)
    items = []
    for i in range(plan.pictures + plan.distractors):
        seed = plan.picture_seed(i) if i < plan.pictures else plan.distractor_seed(i - plan.pictures)
        thumb = make_thumbnail(syn.make_picture(seed, size))
        items.append(
            NewImage(
                f"/synthetic/{i}.jpg",
                f"{i:064d}",
                size[1],
                size[0],
                thumb,
                rng.standard_normal(fx.hidden_size),
            )
        )
    index.add_images(coll.id, items)


MEASUREMENTS = {"regions_quality": m_regions_quality, "regions_cost": m_regions_cost}
COST_FRAMES_FACTOR = 3
"""The cost runs take this many times the speed section's every-frame count (n and 2n frames):
with 16 and 32 frames the whole frame's cost per frame moved by up to 20 % between runs of the
same code (0.29–0.35 s, ViT-L int8), since the difference of two short runs carries each one's
start-up noise."""


def section_regions(settings, log) -> dict:
    """Quality (small model) and cost (the big model, both modes at n and 2n frames: the
    difference is the steady per-frame cost, without the one-off templates) of region mode."""

    log("regions: quality, global and region runs (small model)")
    out = {"quality": measure(settings, "regions_quality")}
    log("regions: quality, global and region runs (trained proxy)")
    out["quality_proxy"] = measure(settings, "regions_quality", {"model": "proxy"})
    log(
        f"regions: quality, global and region runs (trained proxy, the video placed anew: seed {PLACED_ANEW})"
    )
    out["quality_proxy_anew"] = measure(settings, "regions_quality", {"model": "proxy", "seed": PLACED_ANEW})
    n = min(COST_FRAMES_FACTOR * settings.every_frames, inset_plan_for(settings).frame_count // 2)
    precision = resolved_auto()
    walls = {}
    for frames in (n, 2 * n):  # the modes alternate, so a change in the machine's load hits both
        for mode in ("global", "regions"):
            log(f"regions: cost, {mode}, {frames} frames ({settings.big_model})")
            r = measure(
                settings,
                "regions_cost",
                {"regions": mode == "regions", "frames": frames, "precision": precision},
            )
            walls[(mode, frames)] = r["timing"]["wall_s"]
    per_frame = {m: (walls[(m, 2 * n)] - walls[(m, n)]) / n for m in ("global", "regions")}
    out["cost"] = {
        "model": settings.big_model,
        "precision": precision,
        "frames": [n, 2 * n],
        "wall_s": {f"{m}-{f}": round(w, 2) for (m, f), w in walls.items()},
        "s_per_frame": {m: round(v, 4) for m, v in per_frame.items()},
        "frames_per_s": {m: round(1 / v, 4) if v > 0 else None for m, v in per_frame.items()},
        # None when timing noise makes a difference negative (tiny models, a busy machine)
        "ratio": round(per_frame["regions"] / per_frame["global"], 3)
        if min(per_frame.values()) > 0
        else None,
        "ratio_with_setup": round(walls[("regions", n)] / walls[("global", n)], 3),
    }
    return out


def targets(section: dict | None) -> list[dict]:
    """Region mode's targets (issue 11), in :func:`bench.report.targets`' form."""
    if not section:
        return []
    cost = section["cost"]
    rate = f"{FP_RATES[0]:g}"
    rows = []
    for key in QUALITY_KEYS:
        q = section.get(key)
        if q is None:  # the proxy is absent from results made before it was measured
            continue
        region_r = q["regions"]["at_fp"][rate]["recall"]["1/4"]
        global_r = q["global"]["at_fp"][rate]["recall"]["1/4"]
        note = f"FP rate {FP_RATES[0]:.0%}, {_model_words(q)}"
        rows += [
            {
                "target": f"region recall at 1/4 width ({_target_words(q)})",
                "value": region_r,
                "goal": "≥ 0.9",
                "met": region_r >= 0.9,
                "note": note,
            },
            {
                "target": f"global recall at 1/4 width ({_target_words(q)})",
                "value": global_r,
                "goal": "< 0.5",
                "met": global_r < 0.5,
                "note": note,
            },
        ]
    return [
        *rows,
        {
            "target": "region cost vs global (per frame)",
            "value": cost["ratio"],
            "goal": "≤ 2.5×",
            "met": cost["ratio"] is not None and cost["ratio"] <= 2.5,
            "note": f"{cost['model']}, {cost['precision']}",
        },
    ]


def markdown(section: dict) -> list[str]:
    """Region mode's part of the benchmark report."""
    q, cost = section["quality"], section["cost"]
    lines = [
        f"## Regions (pictures in part of the frame; {q['frames']} frames, {q['collection_images']} images)",
        "",
    ]
    for key in QUALITY_KEYS:
        if key in section:
            lines += _quality_table(section[key])
    lines += [
        f"Cost ({cost['model']} architecture, {cost['precision']}, every frame; per frame = the wall time "
        f"difference between {cost['frames'][1]} and {cost['frames'][0]} frames): global "
        f"{cost['s_per_frame']['global']:.2f} s, regions {cost['s_per_frame']['regions']:.2f} s: "
        f"**{cost['ratio'] if cost['ratio'] is not None else 'not measurable (noise)'}×** "
        f"({cost['ratio_with_setup']}× for {cost['frames'][0]} frames with the "
        "one-off templates).",
        "",
    ]
    return lines


QUALITY_KEYS = ("quality", "quality_proxy", "quality_proxy_anew")
"""The section's quality measurements: the small random model's, the trained proxy's, and the
trained proxy's on the video placed anew (:data:`PLACED_ANEW`)."""
PLACED_ANEW = 77
"""The seed of a second region video: the same pictures and backgrounds, shots in another order,
at other places, with other drifts and noise. Region mode's settings were never chosen on it."""


def _model_words(q: dict) -> str:
    """A quality measurement's model in the report (``small`` or ``small-trained``, bench.settings),
    and its video where that is not the benchmark's own."""
    model = q["model"]
    words = (
        f"trained proxy ({model}, bench.proxy)" if model.endswith("-trained") else f"{model} random Dinov2"
    )
    seed = _other_seed(q)
    return words if seed is None else f"{words}, on the video placed anew (seed {seed})"


def _target_words(q: dict) -> str:
    seed = _other_seed(q)
    return q["model"] if seed is None else f"{q['model']}, seed {seed}"


def _other_seed(q: dict) -> int | None:
    """The seed of a quality measurement's video where it is not the benchmark's own (older
    results have none: theirs)."""
    seed = q.get("plan_seed", InsetPlan().seed)
    return None if seed == InsetPlan().seed else seed


def _quality_table(q: dict) -> list[str]:
    """One model's quality runs as Markdown: recall per width and precision at each FP rate."""
    lines = [
        f"Quality with the {_model_words(q)}:",
        "",
        "| mode | FP rate | threshold | precision | "
        + " | ".join(f"recall 1/{round(1 / w)}" for w in WIDTHS)
        + " | micro AP |",
        "|---|---:|---:|---:|" + "---:|" * len(WIDTHS) + "---:|",
    ]
    for mode in ("global", "regions"):
        for rate, r in q[mode]["at_fp"].items():
            recalls = " | ".join("–" if v is None else f"{v:.2f}" for v in r["recall"].values())
            lines.append(
                f"| {mode} | {float(rate):.0%} (measured {r['fp_rate']:.1%}) | {r['threshold']:.3f} | "
                f"{r['precision']:.2f} | {recalls} | {q[mode]['micro_ap']:.3f} |"
            )
    iou = q["regions"].get("median_iou_when_right")
    lines += [
        "",
        f"Median IoU of the region box with the picture's box when the region is right: "
        f"{'–' if iou is None else f'{iou:.2f}'}.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.regions``: the quality measurement alone, on the region video as the
    benchmark makes it or placed anew (``--seed``), with more images never shown
    (``--distractors``); prints the table the benchmark report shows."""
    import argparse
    import sys

    from bench.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.regions", description=main.__doc__.split(";")[0])
    parser.add_argument("--model", choices=("proxy", "random"), default="proxy")
    parser.add_argument(
        "--seed", type=int, default=None, help=f"place the shots anew (the benchmark's: {InsetPlan().seed})"
    )
    parser.add_argument("--distractors", type=int, default=None, help="collection images never shown")
    parser.add_argument("--smoke", action="store_true", help="the smoke run's tiny model and video")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the measurement here")
    args = parser.parse_args(argv)
    for name in PLAN_OVERRIDES:
        if (getattr(args, name) or 0) < 0:
            parser.error(f"--{name} must be 0 or more, got {getattr(args, name)}")
    settings = Settings.for_mode("smoke" if args.smoke else "full")
    if args.cache:
        settings = replace(settings, cache=str(args.cache))
    arg = {"model": "proxy" if args.model == "proxy" else "small"}
    arg |= {k: getattr(args, k) for k in PLAN_OVERRIDES if getattr(args, k) is not None}
    q = m_regions_quality(settings, arg)
    if args.json:
        args.json.write_text(json.dumps(q, indent=1))
    sys.stdout.write(
        f"Region video seed {q['plan_seed']}, {q['frames']} frames, {q['collection_images']} images.\n\n"
        + "\n".join(_quality_table(q))
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
