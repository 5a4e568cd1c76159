"""Sampling by certainty, measured: generated videos, their every-frame results, and replays.

For each generated video (:func:`bench.synthetic.random_plan`) a small Dinov2 (the trained proxy
of :mod:`bench.proxy`, or the small random one) analyses every frame once, in fp32, through the
product's pipeline; the result (best image, best and runner-up scores per frame) and the change
thumbnails are cached. A sampling setting is then
*replayed*: the product's own :class:`~core.matching.sampling.FramePlanner` decides every
frame and is told the every-frame result of each frame it analyses, exactly as the pipeline
tells it. The planner only uses a result ``feedback_lag`` frames after its frame, so the replay
makes the pipeline's decisions; inherited frames take their source frame's result.

Measures, against every-frame analysis: top-1 agreement on the frames that show a collection
picture, agreement of the matched / unmatched decision on all frames (threshold calibrated on
the ground truth, as the user would pick it), and analyses per video second.

``python -m bench.agreement --tune`` sweeps the certainty settings on the tuning videos
(:data:`bench.synthetic.TUNING_SEEDS`) and prints the best; ``python -m bench --sections
agreement`` reports the defaults on the held-out ones (:data:`bench.synthetic.HELD_OUT_SEEDS`).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import synthetic as syn

logger = logging.getLogger("bench.agreement")

BUDGET_PER_VIDEO_S = 0.6
"""The issue's budget: analyses per video second on the held-out videos."""


@dataclass(frozen=True)
class Reference:
    """Every-frame fp32 analysis of one generated video, with what a replay needs."""

    name: str
    fps: float
    times: np.ndarray  # per frame, presentation time (s)
    thumbs: np.ndarray  # per frame, the change thumbnail (N×48×48×3 float32)
    best_id: np.ndarray  # per frame, the best image's id
    best: np.ndarray  # per frame, best score
    runner_up: np.ndarray  # per frame, second-best score
    shows_member: np.ndarray  # per frame, shows a picture of the collection (ground truth)
    threshold: float  # calibrated on the ground truth: what separates those frames from the rest
    fp32_accuracy: float  # share of shows_member frames whose best image is the right picture

    @property
    def duration_s(self) -> float:
        return len(self.times) / self.fps


def calibrated_threshold(best_score: np.ndarray, shows_member: np.ndarray) -> float:
    """The score that best separates frames showing a collection picture from the others."""
    scores = np.nan_to_num(best_score.astype(np.float64), nan=-1.0)
    candidates = np.unique(np.round(scores, 3))
    errors = [np.sum(shows_member & (scores < c)) + np.sum(~shows_member & (scores >= c)) for c in candidates]
    return float(candidates[int(np.argmin(errors))])


def reference_path(plan: syn.VideoPlan, model_folder: Path, cache: Path) -> Path:
    """Where ``plan``'s every-frame reference by the model in ``model_folder`` is cached: per
    plan and per model build (its stamp, ``bench-config.json``), so that a model rebuilt from
    another recipe in the same folder is never paired with the old model's results."""
    import hashlib

    stamp = model_folder / "bench-config.json"
    build = hashlib.sha256(stamp.read_bytes() if stamp.exists() else b"").hexdigest()[:8]
    return cache / "references" / f"ref-{plan.key()}-{model_folder.name}-{build}.npz"


def reference(plan: syn.VideoPlan, model_folder: Path, cache: Path, extractor=None) -> Reference:
    """The every-frame reference of ``plan`` (rendered and analysed once, then cached)."""
    path = reference_path(plan, model_folder, cache)
    video = syn.render_video(plan, cache / "videos")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **_analyse(plan, video, model_folder, cache, extractor))
    data = np.load(path)
    member = np.array(plan.in_collection)
    truth = video.truth
    shows_member = (truth >= 0) & member[np.maximum(truth, 0)]
    owner = data["owner"]
    return Reference(
        name=f"seed {plan.seed}" if plan.seed != syn.benchmark_plan().seed else "benchmark",
        fps=plan.fps,
        times=data["times"],
        thumbs=data["thumbs"],
        best_id=data["best_id"],
        best=data["best"],
        runner_up=data["runner_up"],
        shows_member=shows_member,
        threshold=calibrated_threshold(data["best"], shows_member),
        fp32_accuracy=float(np.mean(owner[shows_member] == truth[shows_member])),
    )


def _analyse(plan: syn.VideoPlan, video: syn.BenchVideo, model_folder: Path, cache: Path, fx) -> dict:
    from core.matching.indexing import index_images
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling, change_thumbnail
    from core.media.video import iter_frames
    from core.model.features import FeatureExtractor
    from db import Index

    fx = fx or FeatureExtractor.load(model_folder, device="cpu", precision="fp32")
    paths, owners = syn.write_collection(plan, cache / f"collection-{plan.key()}")
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "reference.sqlite")
        index_images(index, "ref", paths, fx)
        summary = match_video(index, video.path, "ref", fx, sampling=Sampling.every())
        res = index.load_frame_results(summary.run_id)
        by_path = {str(Path(p).resolve()): o for p, o in zip(paths, owners, strict=True)}
        images = index.get_images(np.unique(res.image_ids[:, 0]).tolist())
        owner_of = {i: by_path.get(str(Path(r.path).resolve()), -1) for i, r in images.items()}
        index.close()
    planner = Sampling.auto().planner(fx.preprocessing)
    thumbs, times, box = [], [], None
    for f in iter_frames(video.path):
        box = box or planner.view_box(*f.rgb.shape[:2])
        thumbs.append(change_thumbnail(f.rgb, box))
        times.append(f.time_s)
    order = np.argsort(res.frame_index)
    best_id = res.image_ids[order, 0]
    return {
        "times": np.asarray(times, np.float64),
        "thumbs": np.stack(thumbs).astype(np.float32),
        "best_id": best_id,
        "best": res.scores[order, 0].astype(np.float32),
        "runner_up": res.scores[order, 1].astype(np.float32),
        "owner": np.array([owner_of.get(int(i), -1) for i in best_id]),
    }


def replay(
    sampling, ref: Reference, threshold: float | None = None, *, certainty: bool = True
) -> tuple[np.ndarray, dict]:
    """The source frame of every frame under ``sampling`` (at the reference's calibrated
    threshold unless given; without ``certainty``, the change-driven rule alone), and the
    planner's reason counts."""
    if threshold is None:
        threshold = ref.threshold
    planner = sampling.planner(threshold=threshold if certainty else None)
    src = np.empty(len(ref.times), np.int64)
    for i, (t, thumb) in enumerate(zip(ref.times, _frames(ref), strict=True)):
        d = planner.decide_thumbnail(i, float(t), thumb)
        src[i] = d.source
        if d.analyse:
            planner.observe(i, float(ref.best[i]), float(ref.runner_up[i]))
    return src, dict(planner.reasons)


_FRAMES: dict[int, list[np.ndarray]] = {}


def _frames(ref: Reference) -> list[np.ndarray]:
    """The reference's thumbnails as lasting array objects (the change cache keys on them)."""
    return _FRAMES.setdefault(id(ref.thumbs), list(ref.thumbs))


def _cache_changes() -> None:
    """Remember the change measure between two thumbnails: a sweep replays the same pairs of
    frames many times (pure speed-up, same values)."""
    from core.matching import sampling

    if getattr(sampling._compensated, "cached", False):
        return
    plain = sampling._compensated
    memo: dict[tuple[int, int], float] = {}

    def cached(a, b) -> float:
        key = (id(a.colour), id(b.colour))
        if key not in memo:
            memo[key] = plain(a, b)
        return memo[key]

    cached.cached = True  # type: ignore[attr-defined]
    sampling._compensated = cached


def agreement(ref: Reference, src: np.ndarray) -> dict:
    """Agreement of results taken from ``src`` frames with every-frame analysis."""
    from core.matching.params import matched_mask

    matched = matched_mask(ref.best, ref.threshold)
    label = np.where(matched, ref.best_id, -1)
    analysed = int(len(np.unique(src)))
    return {
        "analysed": analysed,
        "analysed_per_video_s": analysed / ref.duration_s,
        "agreement_top1": float(np.mean(ref.best_id[src][ref.shows_member] == ref.best_id[ref.shows_member])),
        "agreement_top1_all": float(np.mean(ref.best_id[src] == ref.best_id)),
        "agreement_matched": float(np.mean(label[src] == label)),
    }


def evaluate(sampling, refs: list[Reference], *, certainty: bool = True) -> dict:
    """Per-video and pooled agreement of ``sampling`` (pooled: every frame of every video)."""
    per_video = []
    for ref in refs:
        src, reasons = replay(sampling, ref, certainty=certainty)
        per_video.append(
            {"video": ref.name, "threshold": ref.threshold, **agreement(ref, src), "decisions": reasons}
        )
    return {
        "sampling": sampling.describe() if certainty else _plain(sampling),
        "videos": per_video,
        "pooled": _pooled(per_video, refs),
    }


def _pooled(per_video: list[dict], refs: list[Reference]) -> dict:
    frames = np.array([len(r.times) for r in refs], np.float64)
    member = np.array([r.shows_member.sum() for r in refs], np.float64)
    seconds = sum(r.duration_s for r in refs)
    return {
        "analysed_per_video_s": sum(v["analysed"] for v in per_video) / seconds,
        "agreement_top1": float(np.dot([v["agreement_top1"] for v in per_video], member) / member.sum()),
        "agreement_matched": float(
            np.dot([v["agreement_matched"] for v in per_video], frames) / frames.sum()
        ),
        "worst_top1": min(v["agreement_top1"] for v in per_video),
        "worst_matched": min(v["agreement_matched"] for v in per_video),
    }


# -- baselines: plain uniform sampling, and a sampler that knew every frame's answer -------------
UNIFORM_STEPS = (3, 10)
"""Uniform sampling reported beside the default: every 3rd frame (the first step whose top-1
agreement reaches 98 % on the held-out videos) and every 10th (about the default's agreement)."""


def uniform(refs: list[Reference], step: int) -> dict:
    """Every ``step``-th frame analysed, each other frame keeping the last analysed one's answer,
    in :func:`evaluate`'s form."""
    per_video = []
    for ref in refs:
        src = (np.arange(len(ref.times)) // step) * step
        per_video.append({"video": ref.name, "threshold": ref.threshold, **agreement(ref, src)})
    return {
        "sampling": f"uniform, 1 frame in {step}",
        "videos": per_video,
        "pooled": _pooled(per_video, refs),
    }


def best_possible(labels: np.ndarray, weight: np.ndarray, analyses: int) -> float:
    """The most weight of frames whose held answer equals their own ``labels``, over every
    choice of ``analyses`` analysed frames (the first frame among them), when each frame keeps
    the answer of the last analysed frame before it, as inherited frames do.

    No causal sampler can do better with that many analyses; it would have to know where the
    answers change. Dynamic programming over runs of equal labels: an analysis is best placed at
    the start of a run (moving it there only adds frames of its own run), so with ``R`` runs
    this is ``O(analyses · R²)``.
    """
    labels = np.asarray(labels)
    weight = np.asarray(weight, np.float64)
    n = len(labels)
    if n == 0 or analyses < 1:
        return 0.0
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    runs = len(starts)
    values, run_value = np.unique(labels[starts], return_inverse=True)
    frame_value = np.searchsorted(values, labels)
    # kept[v, i]: weight of frames before frame i whose label is the v-th value
    kept = np.zeros((len(values), n + 1))
    for v in range(len(values)):
        kept[v, 1:] = np.cumsum(weight * (frame_value == v))
    bounds = np.r_[starts, n]
    # gain[a, b]: run a's answer held from the start of run a to the start of run b (b > a)
    gain = kept[run_value][:, bounds] - kept[run_value, starts][:, None]
    gain[np.arange(runs + 1)[None, :] <= np.arange(runs)[:, None]] = -np.inf
    best_before = np.full(runs, -np.inf)  # the most before run b, the next analysis at run b
    best_before[0] = 0.0
    best = -np.inf
    for _ in range(min(analyses, runs)):
        total = best_before[:, None] + gain
        best = max(best, float(total[:, runs].max()))
        best_before = total[:, :runs].max(axis=0)
    return best


def bound(refs: list[Reference], per_video_s: float) -> dict:
    """:func:`best_possible` on each video at ``per_video_s`` analyses per second, in
    :func:`evaluate`'s form. Top-1 and matched agreement are each the most that any placement
    of the analyses reaches (two placements, so each is a bound on its own)."""
    from core.matching.params import matched_mask

    per_video = []
    for ref in refs:
        analyses = max(1, int(per_video_s * ref.duration_s))
        label = np.where(matched_mask(ref.best, ref.threshold), ref.best_id, -1)
        member = ref.shows_member.astype(np.float64)
        per_video.append(
            {
                "video": ref.name,
                "threshold": ref.threshold,
                "analysed": analyses,
                "analysed_per_video_s": analyses / ref.duration_s,
                "agreement_top1": best_possible(ref.best_id, member, analyses) / member.sum(),
                "agreement_matched": best_possible(label, np.ones(len(label)), analyses) / len(label),
                "runs_top1": int(1 + np.count_nonzero(np.diff(ref.best_id))),
            }
        )
    return {
        "sampling": f"best possible at {per_video_s:g} analyses per video s (knows every frame's answer)",
        "videos": per_video,
        "pooled": _pooled(per_video, refs),
    }


def _plain(sampling) -> str:
    return (
        f"change-driven only (change ≥ {sampling.change_threshold:g}, cut ≥ {sampling.cut_threshold:g}, "
        f"refresh every {sampling.max_interval_s:g} s)"
    )


def references(seeds: tuple[int, ...], model_folder: Path, cache: Path) -> list[Reference]:
    return [reference(syn.random_plan(seed), model_folder, cache) for seed in seeds]


# -- tuning ---------------------------------------------------------------------------------
GRID = {
    "change_threshold": (0.05, 0.07),
    "max_interval_s": (3.0, 5.0),
    "sure_change_threshold": (0.08, 0.12),
    "sure_max_interval_s": (6.0, 12.0),
    "unsure_change_threshold": (0.02, 0.03, 0.04),
    "unsure_max_interval_s": (0.5, 1.0),
    "sure_margin": (0.03, 0.06),
    "sure_lead": (0.05, 0.08),
    "unsure_margin": (0.01, 0.03),
    "unsure_lead": (0.02, 0.04, 0.06),
}


def tune(
    refs: list[Reference], grid: dict = GRID, log=print, samples: int = 300, seed: int = 0
) -> list[dict]:
    """``samples`` combinations of ``grid`` drawn at random (all of them if fewer) on ``refs``;
    rows sorted cheapest first among those that meet the agreement targets (≥ 98 % pooled
    top-1 and matched), then by agreement."""
    from core.errors import InvalidArgumentError
    from core.matching.sampling import Sampling

    _cache_changes()
    rows = []
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys)))
    if len(combos) > samples:
        pick = np.random.default_rng(seed).choice(len(combos), samples, replace=False)
        combos = [combos[i] for i in sorted(pick)]
    for n, values in enumerate(combos):
        if n % 50 == 0:
            log(f"  {n}/{len(combos)} settings")
        options = dict(zip(keys, values, strict=True))
        try:
            sampling = Sampling.auto(**options)
        except InvalidArgumentError:
            continue
        pooled = evaluate(sampling, refs)["pooled"]
        rows.append({**options, **pooled})
    ok = [r for r in rows if min(r["agreement_top1"], r["agreement_matched"]) >= 0.98]
    rest = [r for r in rows if r not in ok]
    ok.sort(key=lambda r: r["analysed_per_video_s"])
    rest.sort(
        key=lambda r: -min(r["agreement_top1"], r["agreement_matched"]) + 0.05 * r["analysed_per_video_s"]
    )
    for r in (ok + rest)[:15]:
        log(
            "  ".join(f"{k}={r[k]:g}" for k in keys)
            + f"  | {r['analysed_per_video_s']:.3f}/s top1 {r['agreement_top1']:.4f} (worst {r['worst_top1']:.4f})"
            f" matched {r['agreement_matched']:.4f} (worst {r['worst_matched']:.4f})"
        )
    return ok + rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tune", action="store_true", help="sweep the certainty settings on the tuning videos"
    )
    parser.add_argument(
        "--held-out", action="store_true", help="evaluate the defaults on the held-out videos"
    )
    parser.add_argument(
        "--model",
        choices=("trained", "random"),
        default="trained",
        help="the videos as the trained proxy (bench.proxy) or the small random Dinov2 sees them",
    )
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from bench.settings import Settings, model_folder
    from core.matching.sampling import Sampling

    cache = args.cache or syn.cache_dir()
    model = model_folder(Settings(cache=str(cache)), "small-trained" if args.model == "trained" else "small")
    if args.tune:
        tune(references(syn.TUNING_SEEDS, model, cache))
    if args.held_out or not args.tune:
        result = evaluate(Sampling.auto(), references(syn.HELD_OUT_SEEDS, model, cache))
        for v in result["videos"]:
            print(v)
        print(result["pooled"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
