"""The measurements of the core sections (speed, numerics, agreement, indexing, memory, search),
each a function ``(settings, arg) -> dict`` that :func:`bench.harness.measure` runs in its own
process; :data:`MEASUREMENTS` names them."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from bench import synthetic as syn
from bench.harness import load_extractor, resolved_auto, timed, warm
from bench.limits import bracketed
from bench.settings import Settings, bench_video, cache_dir, model_folder


def _random_collection(index, fx, name: str, n: int, seed: int = 5) -> None:
    """A collection bound to ``fx``'s model holding ``n`` random embeddings (for speed runs,
    where what is matched does not matter, only what it costs)."""
    from db import NewImage

    coll = index.get_or_create_collection(name, fx.model_id, fx.preprocessing.to_json(), fx.hidden_size)
    rng = np.random.default_rng(seed)
    for start in range(0, n, 10_000):
        m = min(10_000, n - start)
        vecs = rng.standard_normal((m, fx.hidden_size), dtype=np.float32)
        items = [
            NewImage(f"/synthetic/{start + i}.jpg", f"{seed:04d}{start + i:060d}", 640, 360, b"", vecs[i])
            for i in range(m)
        ]
        index.add_images(coll.id, items)


def m_baseline(settings: Settings, _arg: dict) -> dict:
    """The plain loop of the original examples: OpenCV decode, PIL, image processor, batch 1, fp32."""
    import cv2
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    video = bench_video(settings)
    folder = model_folder(settings, "big")
    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    rng = np.random.default_rng(3)
    collection = rng.standard_normal((48, model.config.hidden_size)).astype(np.float32)
    collection /= np.linalg.norm(collection, axis=1, keepdims=True)
    n = settings.baseline_frames
    best = []
    with torch.no_grad():  # warm-up outside the timing, as for every measured path
        model(
            **processor(images=Image.new("RGB", (video.plan.width, video.plan.height)), return_tensors="pt")
        )
    with timed() as t:
        cap = cv2.VideoCapture(str(video.path))
        for _ in range(n):
            ok, bgr = cap.read()
            if not ok:
                break
            image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            inputs = processor(images=image, return_tensors="pt")
            with torch.no_grad():
                out = model(**inputs)
            cls = out.last_hidden_state[0, 0].numpy()
            cls = cls / np.linalg.norm(cls)
            scores = collection @ cls
            best.append(int(np.argmax(scores)))
        cap.release()
    return {
        "frames_analysed": len(best),
        "frames_covered": len(best),
        "timing": t.as_dict(),
        "precision": "fp32",
        "fps": video.plan.fps,
    }


def m_match(settings: Settings, arg: dict) -> dict:
    """The product pipeline (``core.runs.match_video``) with a sampling and a precision."""
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from db import Index

    which = arg.get("model", "big")
    video = bench_video(settings, arg.get("repeat", 1))
    folder = model_folder(settings, which)
    with timed() as t_load:
        fx = load_extractor(folder, arg["precision"])
    sampling = Sampling.every() if arg["sampling"] == "every" else Sampling.auto()
    warm(fx, video.plan.height, video.plan.width)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "bench.sqlite")
        _random_collection(index, fx, "bench", arg.get("collection_size", 48))
        ceiling_before = _ceiling_now(settings, fx.precision)
        with timed() as t:
            summary = match_video(
                index, video.path, "bench", fx, sampling=sampling, max_frames=arg.get("max_frames")
            )
        ceiling_after = _ceiling_now(settings, fx.precision)
        run = index.get_run(summary.run_id)
        index.close()
    covered = summary.frames_recorded
    return {
        "frames_analysed": summary.frames_computed,
        "frames_covered": covered,
        "frames_inherited": summary.frames_inherited,
        "decisions": run.stats.get("decisions", {}),
        "timing": t.as_dict(),
        "precision": fx.precision,
        "sampling": sampling.describe(),
        "fps": video.plan.fps,
        "video_s": covered / video.plan.fps,
        "load_s": round(t_load.wall_s, 2),
        "int8_validation": _int8_validation(fx),
        "gflop_per_frame": _gflop(folder, fx) / 1e9,
        "ceiling_around": bracketed(ceiling_before, ceiling_after),
    }


def _ceiling_now(settings: Settings, precision: str) -> dict[str, float]:
    """The GEMM ceiling of ``precision`` at this moment (:func:`bench.limits.gemm_ceiling`)."""
    from bench.limits import gemm_ceiling

    return gemm_ceiling(*_ceiling_shape(settings), precisions=(precision,))


def _int8_validation(fx) -> dict | None:
    """The int8 model's validation against fp32 (min CLS cosine, build time), if int8."""
    validation = getattr(fx.model, "validation", None)
    return asdict(validation) if validation is not None else None


def _gflop(folder: Path, fx) -> float:
    """FLOPs of one frame as this extractor computes it (the [CLS]-only last block where used)."""
    from bench.limits import forward_flops

    config = json.loads((Path(folder) / "config.json").read_text())
    h, w = fx.preprocessing.crop_hw or (224, 224)
    return forward_flops(config, h, w, cls_only_last=fx._cls_path)


def m_ceiling(settings: Settings, _arg: dict) -> dict:
    """This machine's GEMM ceiling per precision (:mod:`bench.limits`)."""
    from bench.limits import gemm_ceiling

    shape = _ceiling_shape(settings)
    return {"gflops": gemm_ceiling(*shape), "shape": list(shape)}


def _ceiling_shape(settings: Settings) -> tuple[int, int, int]:
    return (1024, 4096, 4096) if settings.mode != "smoke" else (256, 1024, 1024)


def m_numerics(settings: Settings, arg: dict) -> dict:
    """CLS cosine of each precision against fp32 on the same preprocessed frames."""
    import torch

    from core.media.video import iter_frames
    from core.model.features import l2_normalize

    folder = model_folder(settings, arg["model"])
    video = bench_video(settings)
    step = max(1, video.frame_count // max(1, arg["frames"]))
    frames = [f.rgb for f in iter_frames(video.path) if f.index % step == 0][: arg["frames"]]
    ref_fx = load_extractor(folder, "fp32")
    pixels = ref_fx.preprocess(frames)
    ref = l2_normalize(ref_fx.forward(pixels).cls)
    del ref_fx
    out = {"frames": len(frames), "precisions": {}}
    for precision in arg["precisions"]:
        fx = load_extractor(folder, precision)
        with timed() as t:
            emb = l2_normalize(fx.forward(pixels).cls)
        cos = np.sum(emb * ref, axis=1)
        out["precisions"][precision] = {
            "cos_min": float(cos.min()),
            "cos_mean": float(cos.mean()),
            "img_per_s": len(frames) / t.wall_s if t.wall_s else None,
            "ran_as": fx.precision,
            "int8_validation": _int8_validation(fx),
        }
        del fx
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out


def m_index(settings: Settings, arg: dict) -> dict:
    """Indexing images: the product (``core.indexing.index_images``) or the plain loop."""
    import torch
    from PIL import Image

    video = bench_video(settings)
    folder = model_folder(settings, "big")
    paths, _ = syn.write_collection(video.plan, cache_dir(settings) / f"collection-{settings.plan}")
    paths = paths[: settings.index_images]
    if arg["how"] == "plain":
        from transformers import AutoImageProcessor, AutoModel

        processor = AutoImageProcessor.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        vectors = []
        with torch.no_grad():  # warm-up outside the timing
            model(**processor(images=Image.new("RGB", (640, 360)), return_tensors="pt"))
        with timed() as t:
            for p in paths:
                image = Image.open(p).convert("RGB")
                inputs = processor(images=image, return_tensors="pt")
                with torch.no_grad():
                    vectors.append(model(**inputs).last_hidden_state[0, 0].numpy())
        return {"images": len(vectors), "timing": t.as_dict(), "precision": "fp32"}
    from core.matching.indexing import index_images
    from db import Index

    fx = load_extractor(folder, arg["precision"])
    warm(fx, 360, 640)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "bench.sqlite")
        with timed() as t:
            report = index_images(index, "bench", paths, fx)
        index.close()
    return {"images": len(report.added), "timing": t.as_dict(), "precision": fx.precision}


def m_agreement(settings: Settings, arg: dict) -> dict:
    """Best match per frame under each setting against fp32 every-frame analysis (small model):
    pipeline runs on the benchmark video, and the sampling replayed on held-out generated videos
    (:mod:`bench.agreement`)."""
    from bench import agreement as ag
    from core.matching.indexing import index_images
    from core.matching.params import MatchParams, matched_mask
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from db import Index

    video = bench_video(settings)
    plan = video.plan
    folder = model_folder(settings, "small")
    paths, owners = syn.write_collection(plan, cache_dir(settings) / f"collection-{settings.plan}")
    auto = resolved_auto()
    precisions = ["fp32"] + ([auto] if auto != "fp32" else [])
    precisions += ["int8"] if settings.int8 and auto != "int8" else []
    extractors = {p: load_extractor(folder, p) for p in precisions}
    runs: dict[str, dict] = {}
    member = np.array(plan.in_collection)
    shows_member = (video.truth >= 0) & member[np.maximum(video.truth, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "agreement.sqlite")
        index_images(index, "bench", paths, extractors["fp32"])  # collections are indexed in fp32
        matrix_ids = index.load_embeddings(index.get_collection("bench").id).image_ids
        images = index.get_images(matrix_ids.tolist())
        by_path = {str(Path(p).resolve()): o for p, o in zip(paths, owners, strict=True)}
        owner_of = {i: by_path.get(str(Path(rec.path).resolve()), -1) for i, rec in images.items()}

        def run(name: str, precision: str, sampling: Sampling, params: MatchParams) -> None:
            index.clear_frame_cache()  # every run computes its own embeddings
            with timed() as t:
                summary = match_video(
                    index, video.path, "bench", extractors[precision], sampling=sampling, params=params
                )
            res = index.load_frame_results(summary.run_id)
            best = np.full(video.frame_count, -1, np.int64)
            score = np.full(video.frame_count, np.nan, np.float32)
            best[res.frame_index] = res.image_ids[:, 0]
            score[res.frame_index] = res.scores[:, 0]
            runs[name] = {
                "precision": extractors[precision].precision,
                "sampling": sampling.describe(),
                "best": best,
                "score": score,
                "analysed": summary.frames_computed,
                "decisions": index.get_run(summary.run_id).stats.get("decisions", {}),
                "wall_s": t.wall_s,
            }

        run("every-fp32", "fp32", Sampling.every(), MatchParams())
        # the user's threshold: the score that separates frames showing a collection picture
        threshold = ag.calibrated_threshold(runs["every-fp32"]["score"], shows_member)
        params = MatchParams(threshold=threshold)
        for p in precisions[1:]:
            run(f"every-{p}", p, Sampling.every(), params)
        for p in precisions:
            run(f"default-{p}", p, Sampling.auto(), params)
        index.close()

    ref = runs["every-fp32"]
    ref_label = np.where(matched_mask(ref["score"], threshold), ref["best"], -1)
    fp32_owner = np.array([owner_of.get(int(i), -1) for i in ref["best"]])
    out_runs = {}
    for name, r in runs.items():
        label = np.where(matched_mask(r["score"], threshold), r["best"], -1)
        out_runs[name] = {
            "precision": r["precision"],
            "sampling": r["sampling"],
            "analysed": int(r["analysed"]),
            "analysed_per_video_s": r["analysed"] / video.duration_s,
            "agreement_top1": float(np.mean(r["best"][shows_member] == ref["best"][shows_member])),
            "agreement_top1_all": float(np.mean(r["best"] == ref["best"])),
            "agreement_matched": float(np.mean(label == ref_label)),
            "decisions": r["decisions"],
            "wall_s": round(r["wall_s"], 2),
        }
    # the same sampling replayed on generated videos never used for tuning it, with the plain
    # change-driven rule (no certainty) beside it
    if settings.plan == "benchmark":
        held_plans = [syn.random_plan(seed) for seed in syn.HELD_OUT_SEEDS]
    else:
        held_plans = [_smoke_held_out(syn.HELD_OUT_SEEDS[0])]
    held = [ag.reference(p, folder, cache_dir(settings), extractors["fp32"]) for p in held_plans]
    # the same videos analysed by the trained stand-in for the real model (bench.proxy), whose
    # best match stays put through a shot as DINO's does
    proxy_folder = model_folder(settings, "proxy")
    held_proxy = [ag.reference(p, proxy_folder, cache_dir(settings)) for p in held_plans]
    bench_ref = ag.reference(plan, folder, cache_dir(settings), extractors["fp32"])
    replayed, _ = ag.replay(Sampling.auto(), bench_ref, threshold)
    return {
        "model": settings.small_model,
        "frames": video.frame_count,
        "collection_images": len(paths),
        "threshold": threshold,
        "fp32_top1_accuracy_vs_truth": float(np.mean(fp32_owner[shows_member] == video.truth[shows_member])),
        "runs": out_runs,
        # the replay makes the pipeline's decisions: the same number of frames analysed
        "replay_check": {
            "pipeline": out_runs["default-fp32"]["analysed"],
            "replay": int(len(np.unique(replayed))),
        },
        "held_out": _held_out(held),
        "held_out_proxy": {"model": settings.proxy_model, **_held_out(held_proxy)},
    }


def _held_out(refs: list) -> dict:
    """The default sampling replayed on held-out videos, with what to read it against."""
    from bench import agreement as ag
    from core.matching.sampling import Sampling

    return {
        "certainty": ag.evaluate(Sampling.auto(), refs),
        # main's change-driven sampling before certainty: 0.05 / 3 s
        "plain": ag.evaluate(Sampling.auto(change_threshold=0.05, max_interval_s=3.0), refs, certainty=False),
        "fp32_accuracy": [r.fp32_accuracy for r in refs],
        # what no sampler can beat at the budget: one that knew every frame's answer
        "bound": ag.bound(refs, ag.BUDGET_PER_VIDEO_S),
        # plain uniform sampling: how often it must look to agree as much
        "uniform": {str(step): ag.uniform(refs, step) for step in ag.UNIFORM_STEPS},
    }


def _smoke_held_out(seed: int) -> syn.VideoPlan:
    """A held-out video at the smoke plan's size (seconds to render and analyse)."""
    plan = syn.random_plan(seed, duration_s=6.0)
    smoke = syn.smoke_plan()
    return replace(plan, fps=smoke.fps, width=smoke.width, height=smoke.height, distractors=smoke.distractors)


def m_search_build(settings: Settings, arg: dict) -> dict:
    """Write ``size`` random 1024-d embeddings to a collection in a new SQLite index, through
    ``Index.add_images`` in chunks of 20k (the product's write path)."""
    from db import Index, NewImage

    n, d = arg["size"], 1024
    rng = np.random.default_rng(1)
    index = Index(arg["path"])
    coll = index.create_collection("bench", "synthetic", "{}", d)
    with timed() as t:
        for start in range(0, n, 20_000):
            m = min(20_000, n - start)
            vecs = rng.standard_normal((m, d), dtype=np.float32)
            index.add_images(
                coll.id,
                [NewImage(f"/s/{start + i}", f"{start + i:064d}", 1, 1, b"", vecs[i]) for i in range(m)],
            )
            del vecs
    index.close()
    # flush the new file to disk before the load is timed: a collection is normally loaded long
    # after it was written, not while the kernel is still writing it back
    with open(arg["path"], "rb") as fh:
        os.fsync(fh.fileno())
    os.sync()
    return {"build_s": round(t.wall_s, 2), "file_mb": round(Path(arg["path"]).stat().st_size / 2**20, 1)}


def m_search(settings: Settings, arg: dict) -> dict:
    """Collection load time from SQLite (in a fresh process, file in the OS cache) and top-5
    latency per frame at one collection size; without a path, the matrix is made in memory."""
    from core.matching.search import top_k
    from db import Index

    n, d, k = arg["size"], 1024, 5
    rng = np.random.default_rng(2)
    out: dict = {"size": n, "dim": d}
    if arg.get("path"):
        loads = []
        repeats = 2 if n < 1_000_000 else 1  # a second load shows the variance; skipped at 1M
        for attempt in range(repeats):
            index = Index(arg["path"])
            coll = index.get_collection("bench")
            with timed() as t_load:
                matrix = index.load_embeddings(coll.id)
            loads.append(t_load.wall_s)
            index.close()
            if attempt < repeats - 1:
                del matrix
        out["load_s"] = round(loads[0], 3)
        out["load_s_again"] = round(loads[-1], 3) if len(loads) > 1 else None
        vectors = matrix.vectors
    else:
        vectors = np.empty((n, d), np.float32)
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            x = rng.standard_normal((m, d), dtype=np.float32)
            vectors[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    # queries: half near-duplicates of collection rows (frames showing a known image), half unrelated
    noise = rng.standard_normal((64, d), dtype=np.float32)
    q = np.concatenate([vectors[:32] + 0.02 * noise[:32], noise[32:]])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    lat = {}
    for b in settings.search_batches:
        top_k(q[:b], vectors, k)  # warm
        reps = max(1, min(8, 64 // b))
        with timed() as t:
            for r in range(reps):
                top_k(q[(r * b) % 64 : (r * b) % 64 + b], vectors, k)
        lat[str(b)] = round(1000 * t.wall_s / (reps * b), 3)
    pos, _ = top_k(q[:32], vectors, k)
    out["near_duplicate_found"] = float(np.mean(pos[:, 0] == np.arange(32)))
    out["ms_per_frame"] = lat
    return out


MEASUREMENTS: dict[str, Callable[[Settings, dict], dict]] = {
    "ceiling": m_ceiling,
    "baseline": m_baseline,
    "match": m_match,
    "numerics": m_numerics,
    "index": m_index,
    "agreement": m_agreement,
    "search_build": m_search_build,
    "search": m_search,
}
