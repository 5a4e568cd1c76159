"""The benchmark: how fast the pipeline covers a video, how much it agrees with fp32 every-frame
analysis, and what indexing, memory and search cost.

Run it from the repository root::

    python -m bench            # the full run (≈ 10 min on 2 CPU cores)
    python -m bench --quick    # smaller counts (≈ 4 min)
    python -m bench --smoke    # tiny model, tiny video, seconds (what CI runs)

Results go to ``bench/results/latest.json`` and ``bench/results/latest.md`` (``--out`` to
change the folder). Every measurement of the full and quick runs happens in its own Python
process, so that its peak RSS is its own and no cache or allocator state carries over; the
smoke run stays in one process (peak RSS is then sampled, not exact).

Sections (``--sections`` picks some):

- ``speed``: the machine's GEMM ceiling per precision (:mod:`bench.limits`), then the plain
  loop of the original examples (PIL + image processor per frame, batch 1, fp32) against the
  pipeline analysing every frame and with its default sampling, in fp32 and in the other
  precisions, on the same video and the same architecture as the default model (random
  weights); each path as a share of its precision's ceiling, model load apart, and the fp32
  default projected to the other CPU kinds of FACTS.md;
- ``numerics``: CLS cosine of each reduced precision against fp32 on the same frames, on a
  ViT-L with injected outlier activations (the int8 bar) and on the small model;
- ``agreement``: share of frames whose best match equals fp32 every-frame analysis (a small
  random Dinov2, whose features do rank near-duplicate pictures): pipeline runs on the
  benchmark video, and the default sampling replayed on held-out generated videos
  (:mod:`bench.agreement`);
- ``indexing``: images per second, product path against the plain loop;
- ``memory``: peak RSS matching the video and its 4× longer version;
- ``search``: SQLite load time and top-5 latency per frame at growing collection sizes;
- ``regions``: region mode (``match --regions``, :mod:`bench.regions`) against the global
  mode on pictures filling part of the frame: recall and precision at equal false-positive
  rates (small model), and the cost per frame as a ratio (the big model).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bench import regions as region_bench
from bench import scale
from bench import synthetic as syn
from bench.limits import bracketed

logger = logging.getLogger("bench")

SECTIONS = ("speed", "numerics", "agreement", "indexing", "memory", "search", "regions", "scale")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Counts and models of one benchmark mode."""

    mode: str = "full"
    baseline_frames: int = 8
    every_frames: int = 16
    index_images: int = 8
    numerics_frames: int = 8
    search_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    search_sqlite_max: int = 1_000_000  # larger sizes are searched in memory only
    search_batches: tuple[int, ...] = (1, 8, 64)
    memory_repeat: int = 4
    scale_sizes: tuple[int, ...] = (100_000, 1_000_000)  # collections for the scale section
    scale_compare_size: int = 20_000  # vectors for the comparison of libraries
    scale_crossover_sizes: tuple[int, ...] = (10_000, 30_000, 100_000, 300_000, 1_000_000)
    scale_writer_frames: int = 108_000  # one hour at 30 fps
    inline: bool = False  # run measurements in this process (smoke)
    big_model: str = "vitl"  # "vitl" or "tiny"
    small_model: str = "small"  # "small" or "tiny"
    plan: str = "benchmark"  # "benchmark" or "smoke"
    int8: bool = True
    cache: str = ""

    @classmethod
    def for_mode(cls, mode: str) -> Settings:
        if mode == "full":
            return cls()
        if mode == "quick":
            return cls(
                mode="quick",
                baseline_frames=6,
                every_frames=12,
                index_images=4,
                numerics_frames=4,
                search_sizes=(10_000, 100_000, 1_000_000),
                search_sqlite_max=100_000,
                scale_sizes=(100_000,),
                scale_compare_size=20_000,
                scale_crossover_sizes=(10_000, 100_000, 300_000),
            )
        if mode == "smoke":
            return cls(
                mode="smoke",
                baseline_frames=3,
                every_frames=6,
                index_images=3,
                numerics_frames=2,
                search_sizes=(1_000, 5_000),
                search_sqlite_max=5_000,
                search_batches=(1, 8),
                memory_repeat=2,
                scale_sizes=(3_000,),
                scale_compare_size=1_000,
                scale_crossover_sizes=(1_000, 3_000),
                scale_writer_frames=3_000,
                inline=True,
                big_model="tiny",
                small_model="tiny",
                plan="smoke",
            )
        raise ValueError(f"unknown mode {mode!r}")


def _plan(settings: Settings) -> syn.VideoPlan:
    return syn.benchmark_plan() if settings.plan == "benchmark" else syn.smoke_plan()


def _cache(settings: Settings) -> Path:
    return Path(settings.cache) if settings.cache else syn.cache_dir()


def _model_folder(settings: Settings, which: str) -> Path:
    """The model folder for ``big`` / ``small`` (this mode's models) or a model kind."""
    kind = {"big": settings.big_model, "small": settings.small_model}.get(which, which)
    cache = _cache(settings)
    if kind == "vitl":
        return syn.build_vitl(cache / "vitl14-random")
    if kind == "vitl-outliers":  # the int8 bar: every block contributes, outlier activations
        return syn.build_vitl_outliers(cache / "vitl14-ls1-outliers")
    if kind == "tiny-outliers":  # its smoke-test counterpart (SwiGLU like the default model)
        return syn.build_model(cache / "tiny-outliers", {**syn.TINY, "use_swiglu_ffn": True}, outliers=True)
    if kind == "small":
        return syn.build_small(cache / "small-random")
    return syn.build_tiny(cache / "tiny-random")


# -- measuring ------------------------------------------------------------------------------
def _cpu_busy_s() -> float:
    """System-wide busy CPU seconds so far (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:9]]
    except OSError:
        return float("nan")
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _RssSampler:
    """Largest RSS of this process while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


@dataclass
class Timing:
    """Wall time of a block, with the CPU that other processes used meanwhile."""

    wall_s: float = 0.0
    own_cpu_s: float = 0.0
    foreign_cores: float = 0.0  # average number of cores busy with other processes

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    t = Timing()
    busy0, own0, w0 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    yield t
    t.wall_s = time.perf_counter() - w0
    t.own_cpu_s = _own_cpu_s() - own0
    if t.wall_s > 0:
        t.foreign_cores = max(0.0, (_cpu_busy_s() - busy0 - t.own_cpu_s) / t.wall_s)


def _peak_rss_mb(sampler: _RssSampler | None) -> float:
    if sampler is not None:
        return sampler.peak / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine_info() -> dict:
    import torch
    import transformers

    from core.model.precision import cpu_has_native_bf16

    flags = ""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    mem_gb = None
    with contextlib.suppress(ImportError):
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx2": " avx2" in flags,
        "avx512f": " avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "native_bf16": cpu_has_native_bf16(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "os": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
    }


# -- shared helpers -------------------------------------------------------------------------
def _quiet_libraries() -> None:
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # quantised models of the benchmark's random weights: kept with its other models
    os.environ.setdefault("WEBSSL_INT8_CACHE", str(syn.cache_dir() / "int8"))
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _load(folder: Path, precision: str):
    from core.model.features import FeatureExtractor

    return FeatureExtractor.load(folder, device="cpu", precision=precision)


def _resolved_auto() -> str:
    import torch

    from core.model.precision import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))


def _warm(fx, height: int, width: int) -> None:
    """One forward pass before timing (allocations, kernel selection), like a model that has
    served before; every measured path gets one."""
    fx.forward(fx.preprocess([np.zeros((height, width, 3), np.uint8)]))


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


def _video(settings: Settings, repeat: int = 1) -> syn.BenchVideo:
    plan = _plan(settings)
    return syn.render_video(plan.repeated(repeat) if repeat > 1 else plan, _cache(settings) / "videos")


# -- measurements (each runs in its own process unless inline) ------------------------------
def m_baseline(settings: Settings, _arg: dict) -> dict:
    """The plain loop of the original examples: OpenCV decode, PIL, image processor, batch 1, fp32."""
    import cv2
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    video = _video(settings)
    folder = _model_folder(settings, "big")
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
    video = _video(settings, arg.get("repeat", 1))
    folder = _model_folder(settings, which)
    with timed() as t_load:
        fx = _load(folder, arg["precision"])
    sampling = Sampling.every() if arg["sampling"] == "every" else Sampling.auto()
    _warm(fx, video.plan.height, video.plan.width)
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

    folder = _model_folder(settings, arg["model"])
    video = _video(settings)
    step = max(1, video.frame_count // max(1, arg["frames"]))
    frames = [f.rgb for f in iter_frames(video.path) if f.index % step == 0][: arg["frames"]]
    ref_fx = _load(folder, "fp32")
    pixels = ref_fx.preprocess(frames)
    ref = l2_normalize(ref_fx.forward(pixels).cls)
    del ref_fx
    out = {"frames": len(frames), "precisions": {}}
    for precision in arg["precisions"]:
        fx = _load(folder, precision)
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

    video = _video(settings)
    folder = _model_folder(settings, "big")
    paths, _ = syn.write_collection(video.plan, _cache(settings) / f"collection-{settings.plan}")
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

    fx = _load(folder, arg["precision"])
    _warm(fx, 360, 640)
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

    video = _video(settings)
    plan = video.plan
    folder = _model_folder(settings, "small")
    paths, owners = syn.write_collection(plan, _cache(settings) / f"collection-{settings.plan}")
    auto = _resolved_auto()
    precisions = ["fp32"] + ([auto] if auto != "fp32" else [])
    precisions += ["int8"] if settings.int8 and auto != "int8" else []
    extractors = {p: _load(folder, p) for p in precisions}
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
    held = [ag.reference(p, folder, _cache(settings), extractors["fp32"]) for p in held_plans]
    bench_ref = ag.reference(plan, folder, _cache(settings), extractors["fp32"])
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
        "held_out": {
            "certainty": ag.evaluate(Sampling.auto(), held),
            # main's change-driven sampling before certainty: 0.05 / 3 s
            "plain": ag.evaluate(
                Sampling.auto(change_threshold=0.05, max_interval_s=3.0), held, certainty=False
            ),
            "fp32_accuracy": [r.fp32_accuracy for r in held],
        },
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
    "regions_quality": region_bench.m_regions_quality,
    "regions_cost": region_bench.m_regions_cost,
}


def _measurement(name: str) -> Callable[[Settings, dict], dict]:
    return MEASUREMENTS.get(name) or scale.MEASUREMENTS[name]


def measure(settings: Settings, name: str, arg: dict | None = None) -> dict:
    """Run one measurement, in a child process unless the settings say inline."""
    arg = arg or {}
    if settings.inline:
        with _RssSampler() as rss:
            result = _measurement(name)(settings, arg)
        result["peak_rss_mb"] = round(_peak_rss_mb(rss), 1)
        result["inline"] = True
        return result
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"settings": asdict(settings), "name": name, "arg": arg}))
        proc = subprocess.run(
            [sys.executable, "-m", "bench.run", "--child", str(spec), str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
            raise RuntimeError(f"measurement {name} {arg} failed (exit {proc.returncode}):\n{tail}")
        return json.loads(out.read_text())


def _child(spec_path: str, out_path: str) -> int:
    _quiet_libraries()
    spec = json.loads(Path(spec_path).read_text())
    raw = spec["settings"]
    for key in ("search_sizes", "search_batches", "scale_sizes", "scale_crossover_sizes"):
        raw[key] = tuple(raw[key])
    settings = Settings(**raw)
    result = _measurement(spec["name"])(settings, spec["arg"])
    result["peak_rss_mb"] = round(_peak_rss_mb(None), 1)
    Path(out_path).write_text(json.dumps(result))
    return 0


# -- sections -------------------------------------------------------------------------------
def section_speed(settings: Settings, log: Callable[[str], None]) -> dict:
    from core.model.precision import cpu_has_native_bf16

    auto = _resolved_auto()
    video = _video(settings)
    rows = []
    log("speed: GEMM ceiling")
    ceilings = [measure(settings, "ceiling")["gflops"]]

    def row(key: str, label: str, r: dict) -> None:
        wall = r["timing"]["wall_s"]
        fps = r["fps"]
        rows.append(
            {
                "key": key,
                "label": label,
                "precision": r["precision"],
                "sampling": r.get("sampling", "every frame"),
                "frames_analysed": r["frames_analysed"],
                "frames_covered": r["frames_covered"],
                "wall_s": round(wall, 2),
                "analysed_per_s": r["frames_analysed"] / wall,
                "video_s_per_s": r["frames_covered"] / fps / wall,
                "peak_rss_mb": r["peak_rss_mb"],
                "foreign_cores": r["timing"]["foreign_cores"],
                "decisions": r.get("decisions"),
                "load_s": r.get("load_s"),
                "gflop_per_frame": r.get("gflop_per_frame"),
                "int8_validation": r.get("int8_validation"),
                "ceiling_around": r.get("ceiling_around", {}),
            }
        )
        log(
            f"  {label}: {rows[-1]['analysed_per_s']:.2f} analysed/s, "
            f"{rows[-1]['video_s_per_s']:.3f} video s/s, {r['peak_rss_mb']:.0f} MB"
        )

    def every(precision: str) -> dict:
        return measure(
            settings,
            "match",
            {"precision": precision, "sampling": "every", "max_frames": settings.every_frames},
        )

    log("speed: baseline (plain loop)")
    row("baseline", "baseline: plain loop (PIL + processor, batch 1, fp32)", measure(settings, "baseline"))
    log("speed: every frame")
    row("every_fp32", "every frame, pipeline, fp32", every("fp32"))
    if cpu_has_native_bf16() and auto != "bf16":
        row("every_bf16", "every frame, pipeline, bf16", every("bf16"))
    if auto != "fp32":
        row("every", f"every frame, pipeline, auto precision ({auto})", every(auto))
    if settings.int8 and auto != "int8":
        row("every_int8", "every frame, pipeline, int8 (asked for)", every("int8"))
    log("speed: default settings")
    row(
        "default_fp32",
        "default sampling, fp32",
        measure(settings, "match", {"precision": "fp32", "sampling": "auto"}),
    )
    if auto != "fp32":
        row(
            "default",
            f"default settings (default sampling, auto precision: {auto})",
            measure(settings, "match", {"precision": auto, "sampling": "auto"}),
        )
    if settings.int8 and auto != "int8":
        row(
            "default_int8",
            "default sampling + int8 (asked for)",
            measure(settings, "match", {"precision": "int8", "sampling": "auto"}),
        )
    # the baseline (and the ceiling) again at the end: machine speed drifts on shared hosts, so
    # ratios use the mean of the two baseline runs that bracket the others, and the best ceiling
    log("speed: baseline again")
    row("baseline_end", "baseline again, after the others", measure(settings, "baseline"))
    ceilings.append(measure(settings, "ceiling")["gflops"])
    ceiling = {p: max(c.get(p, 0.0) for c in ceilings) for p in ceilings[0]}
    base = (rows[0]["analysed_per_s"] + rows[-1]["analysed_per_s"]) / 2
    for r in rows:
        r["ratio_vs_baseline"] = r["video_s_per_s"] * video.plan.fps / base if base else None
        if r["gflop_per_frame"] and ceiling.get(r["precision"]):
            r["gflops"] = r["analysed_per_s"] * r["gflop_per_frame"]
            # the share of the ceiling measured just before and after the run (the host's speed
            # drifts by 20-30 % over minutes), and, stricter, of the section's best ceiling
            around = r["ceiling_around"].get(r["precision"])
            r["ceiling_fraction"] = r["gflops"] / (around or ceiling[r["precision"]])
            r["ceiling_fraction_best"] = r["gflops"] / ceiling[r["precision"]]
    return {
        "video": _video_info(video),
        "model": settings.big_model,
        "rows": rows,
        "baseline_per_s": base,
        "ceiling_gflops": ceiling,
        "ceiling_runs": ceilings,
        "projections": _projections(rows, ceiling),
    }


def _projections(rows: list[dict], ceiling: dict) -> list[dict]:
    """Default sampling at fp32 on the other CPU kinds of FACTS.md, projected from their fp32
    GEMM ceilings. Carried over from this run: the every-frame share of the ceiling, the
    analyses per video second, and the time per video second spent outside the model
    (decoding, sampling decisions, search, writes). Projections, not measurements."""
    from bench.limits import OTHER_CPUS

    by = {r["key"]: r for r in rows}
    every, default = by.get("every_fp32"), by.get("default_fp32")
    if not every or not default or not every.get("ceiling_fraction"):
        return []
    analysed_per_video_s = default["analysed_per_s"] / default["video_s_per_s"]
    wall_per_video_s = 1 / default["video_s_per_s"]
    other_per_video_s = max(0.0, wall_per_video_s - analysed_per_video_s / every["analysed_per_s"])
    out = []
    for name, ceil in OTHER_CPUS.items():
        frames_per_s = ceil["fp32"] * every["ceiling_fraction"] / every["gflop_per_frame"]
        out.append(
            {
                "cpu": name,
                "fp32_ceiling_gflops": ceil["fp32"],
                "every_frame_per_s": frames_per_s,
                "analysed_per_video_s": analysed_per_video_s,
                "video_s_per_s": 1 / (analysed_per_video_s / frames_per_s + other_per_video_s),
            }
        )
    return out


def _video_info(video: syn.BenchVideo) -> dict:
    p = video.plan
    return {
        "path": str(video.path),
        "frames": video.frame_count,
        "duration_s": video.duration_s,
        "fps": p.fps,
        "size": f"{p.width}x{p.height}",
        "shots": len(p.shots),
        "motions": sorted({s.motion for s in p.shots}),
        "transitions": sorted({s.transition for s in p.shots}),
    }


def section_numerics(settings: Settings, log: Callable[[str], None]) -> dict:
    from core.model.precision import cpu_has_native_bf16

    precisions = ["bf16", "fp16"] + (["int8"] if settings.int8 else [])
    out = {"native_bf16": cpu_has_native_bf16()}
    big = "vitl-outliers" if settings.big_model == "vitl" else "tiny-outliers"
    for label, model, frames in (
        ("big", big, settings.numerics_frames),
        ("small", settings.small_model, 16),
    ):
        log(f"numerics: {model}")
        out[label] = {
            "model": model,
            **measure(settings, "numerics", {"model": model, "precisions": precisions, "frames": frames}),
        }
    if settings.big_model == "vitl":
        log("numerics: vitl (layerscale 1e-5 as built)")
        out["big_as_built"] = {
            "model": "vitl",
            **measure(
                settings,
                "numerics",
                {
                    "model": "vitl",
                    "precisions": ["int8"] if settings.int8 else [],
                    "frames": settings.numerics_frames,
                },
            ),
        }
    return out


def section_agreement(settings: Settings, log: Callable[[str], None]) -> dict:
    log("agreement: small model, fp32 every frame vs the others")
    return measure(settings, "agreement")


def section_indexing(settings: Settings, log: Callable[[str], None]) -> dict:
    log("indexing: plain loop")
    plain = measure(settings, "index", {"how": "plain"})
    log("indexing: product (fp32, the default for collections)")
    prod = measure(settings, "index", {"how": "product", "precision": "fp32"})
    out = {"images": prod["images"], "plain": plain, "product": prod}
    if settings.int8:
        log("indexing: product, int8")
        out["product_int8"] = measure(settings, "index", {"how": "product", "precision": "int8"})
    for r in (out["plain"], out["product"], out.get("product_int8")):
        if r is not None:
            r["img_per_s"] = r["images"] / r["timing"]["wall_s"]
            r["ratio"] = r["img_per_s"] / plain["images"] * plain["timing"]["wall_s"]
    out["ratio"] = prod["ratio"]
    return out


def section_memory(settings: Settings, log: Callable[[str], None]) -> dict:
    auto = _resolved_auto()
    out = {"model": settings.small_model, "precision": auto, "runs": []}
    for repeat in (1, settings.memory_repeat):
        log(f"memory: default settings on the {repeat}× video")
        r = measure(
            settings, "match", {"precision": auto, "sampling": "auto", "repeat": repeat, "model": "small"}
        )
        out["runs"].append(
            {
                "repeat": repeat,
                "video_s": r["video_s"],
                "frames": r["frames_covered"],
                "analysed": r["frames_analysed"],
                "peak_rss_mb": r["peak_rss_mb"],
                "wall_s": r["timing"]["wall_s"],
            }
        )
    a, b = out["runs"][0]["peak_rss_mb"], out["runs"][-1]["peak_rss_mb"]
    out["growth"] = (b - a) / a if a else None
    return out


def section_search(settings: Settings, log: Callable[[str], None]) -> dict:
    rows = []
    for n in settings.search_sizes:
        sqlite = n <= settings.search_sqlite_max
        log(f"search: {n:,} embeddings ({'SQLite' if sqlite else 'in memory'})")
        with tempfile.TemporaryDirectory(prefix="webssl-bench-") as tmp:
            path = str(Path(tmp) / "search.sqlite")
            build = measure(settings, "search_build", {"size": n, "path": path}) if sqlite else {}
            found = measure(settings, "search", {"size": n, "path": path if sqlite else None})
        rows.append(
            {
                "sqlite": sqlite,
                **found,
                "build_s": build.get("build_s"),
                "file_mb": build.get("file_mb"),
                "build_peak_rss_mb": build.get("peak_rss_mb"),
            }
        )
    return {"rows": rows}


SECTION_FUNCS = {
    "speed": section_speed,
    "numerics": section_numerics,
    "agreement": section_agreement,
    "indexing": section_indexing,
    "memory": section_memory,
    "search": section_search,
    "regions": region_bench.section_regions,
    "scale": lambda settings, log: scale.section_scale(settings, log),
}


# -- report ---------------------------------------------------------------------------------
def targets(results: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    out: list[dict] = []
    s = results["sections"]

    def add(name: str, value, goal: str, met: bool | None, note: str = "") -> None:
        out.append({"target": name, "value": value, "goal": goal, "met": met, "note": note})

    speed = {r["key"]: r for r in s.get("speed", {}).get("rows", [])}
    for key, r in speed.items():
        if key.startswith("every"):
            add(
                f"every-frame speed vs baseline ({r['precision']})",
                round(r["ratio_vs_baseline"], 2),
                "≥ 2.5×",
                r["ratio_vs_baseline"] >= 2.5,
                r["label"],
            )
        if key.startswith("default"):
            add(
                f"video s per wall s ({r['precision']})",
                round(r["video_s_per_s"], 3),
                "≥ 1.0",
                r["video_s_per_s"] >= 1.0,
                r["label"] + (" (the issue's target is fp32)" if key == "default_fp32" else ""),
            )
    every = speed.get("every_fp32")
    if every and every.get("ceiling_fraction"):
        add(
            "every-frame fp32, share of the fp32 GEMM ceiling",
            round(every["ceiling_fraction"], 3),
            "≥ 0.85",
            every["ceiling_fraction"] >= 0.85,
            f"{every['gflops']:.0f} of {every['ceiling_around']['fp32']:.0f} GFLOP/s (the ceiling around the run; "
            f"{every['ceiling_fraction_best']:.0%} of the section's best, "
            f"{s['speed']['ceiling_gflops']['fp32']:.0f})"
            if every.get("ceiling_around", {}).get("fp32")
            else f"{every['gflops']:.0f} of {s['speed']['ceiling_gflops']['fp32']:.0f} GFLOP/s",
        )
    for p in s.get("speed", {}).get("projections", []):
        add(
            f"video s per wall s, fp32, {p['cpu']} (projected)",
            round(p["video_s_per_s"], 2),
            "≥ 1.0",
            p["video_s_per_s"] >= 1.0,
            "projection from FACTS.md's GEMM ceiling, not a measurement",
        )
    held = s.get("agreement", {}).get("held_out", {}).get("certainty")
    if held:
        p = held["pooled"]
        n = len(held["videos"])
        for key, label in (("top1", "top-1"), ("matched", "matched")):
            add(
                f"held-out {label} agreement ({n} videos, all frames pooled)",
                round(p[f"agreement_{key}"], 4),
                "≥ 0.98",
                p[f"agreement_{key}"] >= 0.98,
                f"worst video {p[f'worst_{key}']:.4f}",
            )
        add(
            f"held-out analyses per video s ({n} videos)",
            round(p["analysed_per_video_s"], 3),
            "≤ 0.6",
            p["analysed_per_video_s"] <= 0.6,
        )
    agr = s.get("agreement", {}).get("runs", {})
    for name, r in agr.items():
        if name.startswith("default") or (name.startswith("every") and name != "every-fp32"):
            add(
                f"agreement {name} (top-1)",
                round(r["agreement_top1"], 4),
                "≥ 0.98",
                r["agreement_top1"] >= 0.98,
            )
    num = s.get("numerics", {})
    for label in ("big", "small"):
        for p, r in num.get(label, {}).get("precisions", {}).items():
            bar = p == "int8" and label == "big"
            add(
                f"CLS cosine {p} vs fp32 ({num[label]['model']})",
                round(r["cos_min"], 5),
                "≥ 0.999" if bar else "≥ 0.999 (reported)",
                r["cos_min"] >= 0.999,
                "the int8 bar" if bar else "",
            )
    out += scale.targets(s.get("scale", {}))
    mem = s.get("memory")
    if mem and mem.get("growth") is not None:
        add(
            f"peak RSS {mem['runs'][-1]['repeat']}× vs 1× video",
            round(mem["growth"], 4),
            "≤ +10 %",
            mem["growth"] <= 0.10,
        )
    for r in s.get("search", {}).get("rows", []):
        if r["size"] >= 1_000_000:
            best = min(r["ms_per_frame"].values())
            add(
                "top-5 over 1M, ms per frame (amortised)",
                best,
                "≤ 50 ms",
                best <= 50,
                "batch " + min(r["ms_per_frame"], key=r["ms_per_frame"].get),
            )
        if r["size"] == 100_000 and r.get("sqlite"):
            add("load 100k from SQLite, s", r["load_s"], "≤ 1 s", r["load_s"] <= 1.0)
    return out + region_bench.targets(s.get("regions"))


def markdown(results: dict) -> str:
    m = results["machine"]
    s = results["sections"]
    lines = [
        f"# Benchmark ({results['settings']['mode']} run, {results['finished']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gb')} GB RAM; AVX2 {m['avx2']}, "
        f"AVX-512 {m['avx512f']}, AVX512-BF16 {m['avx512_bf16']}, AMX {m['amx_bf16']} "
        f"(torch CPU capability {m['torch_cpu_capability']}, {m['torch_threads']} threads); "
        f"torch {m['torch']}, transformers {m['transformers']}, Python {m['python']}. "
        f"Load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.",
        "",
    ]
    if "speed" in s:
        sp = s["speed"]
        v = sp["video"]
        ceil = sp["ceiling_gflops"]
        lines += [
            f"## Speed ({sp['model']} architecture, random weights; video {v['size']}, {v['fps']:g} fps, "
            f"{v['duration_s']:.0f} s, {v['shots']} shots)",
            "",
            "GEMM ceiling of this machine (best of the runs at the start and the end of the section): "
            + ", ".join(f"{p} {g:.0f} G{'OP' if p == 'int8' else 'FLOP'}/s" for p, g in ceil.items())
            + ".",
            "",
            f"× baseline: frames covered per second over the mean of the two baseline runs "
            f"({sp['baseline_per_s']:.2f} frames/s) that bracket the others. Share of ceiling: "
            "analysed frames/s × FLOPs per frame (from the config) over the ceiling of the run's precision "
            "measured just before and just after the run (their mean; the host's speed drifts), and "
            "over the section's best ceiling (stricter).",
            "",
            "| run | precision | frames analysed | frames covered | wall s | analysed/s | "
            "share of ceiling (around the run / best) | "
            "video s per s | × baseline | model load s | peak RSS MB | other load (cores) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sp["rows"]:
            share = (
                f"{r['ceiling_fraction']:.0%} / {r['ceiling_fraction_best']:.0%}"
                if r.get("ceiling_fraction")
                else "–"
            )
            load = f"{r['load_s']:.1f}" if r.get("load_s") is not None else "–"
            lines.append(
                f"| {r['label']} | {r['precision']} | {r['frames_analysed']} | {r['frames_covered']} | {r['wall_s']:.1f} | "
                f"{r['analysed_per_s']:.2f} | {share} | {r['video_s_per_s']:.3f} | {r['ratio_vs_baseline']:.1f} | "
                f"{load} | {r['peak_rss_mb']:.0f} | {r['foreign_cores']:.2f} |"
            )
        builds = {r["precision"]: r["int8_validation"] for r in sp["rows"] if r.get("int8_validation")}
        if builds:
            val = next(iter(builds.values()))
            lines += [
                "",
                f"int8 model: built once in {val['build_s']:.0f} s (conversion, calibration, validation; "
                "cached afterwards, so the load times above are of the cached model); "
                f"min CLS cosine to fp32 on its validation pictures {val['min_cosine']:.5f}.",
            ]
        if sp.get("projections"):
            lines += [
                "",
                "Projection (not a measurement) of the default sampling at fp32 on the other CPU kinds of "
                "FACTS.md: their fp32 GEMM ceiling × this run's every-frame share of the ceiling, this run's "
                "analyses per video second and its time outside the model:",
                "",
                "| CPU | fp32 ceiling GFLOP/s | every frame, frames/s | analysed per video s | video s per s |",
                "|---|---:|---:|---:|---:|",
            ]
            for p in sp["projections"]:
                lines.append(
                    f"| {p['cpu']} | {p['fp32_ceiling_gflops']:.0f} | {p['every_frame_per_s']:.2f} | "
                    f"{p['analysed_per_video_s']:.2f} | {p['video_s_per_s']:.2f} |"
                )
        lines.append("")
    if "agreement" in s:
        a = s["agreement"]
        lines += [
            f"## Agreement with fp32 every-frame analysis ({a['model']} random Dinov2)",
            "",
            f"Benchmark video: {a['frames']} frames, {a['collection_images']} collection images; matched = best "
            f"score ≥ {a['threshold']:.3f} (calibrated on the ground truth, and the runs' threshold). fp32 "
            f"every-frame top-1 is the right picture on {a['fp32_top1_accuracy_vs_truth']:.1%} of the frames "
            "that show one. Top-1 agreement: on the frames that show a collection picture.",
            "",
            "| run | precision | sampling | analysed | per video s | top-1 agreement | matched agreement |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for name, r in a["runs"].items():
            lines.append(
                f"| {name} | {r['precision']} | {r['sampling']} | {r['analysed']} | {r['analysed_per_video_s']:.2f} | "
                f"{r['agreement_top1']:.2%} | {r['agreement_matched']:.2%} |"
            )
        rc = a["replay_check"]
        lines += [
            "",
            f"Replay check: the pipeline (default-fp32) analysed {rc['pipeline']} frames, the replay of its "
            f"planner {rc['replay']}.",
            "",
            "Held-out generated videos (never used for tuning; cuts, dissolves, fades, pans, zooms, shake, "
            "partial occlusion, pictures not in the collection), the default sampling replayed:",
            "",
            "| sampling | video | threshold | analysed | per video s | top-1 agreement | matched agreement |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key in ("certainty", "plain"):
            ev = a["held_out"][key]
            label = "default (certainty)" if key == "certainty" else "change-driven only (main's defaults)"
            for v in ev["videos"]:
                lines.append(
                    f"| {label} | {v['video']} | {v['threshold']:.3f} | {v['analysed']} | "
                    f"{v['analysed_per_video_s']:.2f} | {v['agreement_top1']:.2%} | {v['agreement_matched']:.2%} |"
                )
            p = ev["pooled"]
            lines.append(
                f"| {label} | **all** | | | **{p['analysed_per_video_s']:.2f}** | **{p['agreement_top1']:.2%}** | "
                f"**{p['agreement_matched']:.2%}** |"
            )
        lines += ["", f"Default sampling: {a['held_out']['certainty']['sampling']}.", ""]
    if "numerics" in s:
        n = s["numerics"]
        lines += [
            "## Numerics: CLS cosine vs fp32 (min over frames)",
            "",
            "Frames of the benchmark video. vitl-outliers: ViT-L whose blocks all contribute (layerscale 1) "
            "with outlier activation channels ~100× the rest injected (bench.synthetic.inject_outliers), "
            "the int8 bar; vitl: the speed model as built (layerscale 1e-5: every precision scores ≈ 1).",
            "",
            "| model | precision | frames | cos min | cos mean | img/s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for label in ("big", "big_as_built", "small"):
            if label not in n:
                continue
            for p, r in n[label]["precisions"].items():
                lines.append(
                    f"| {n[label]['model']} | {p} | {n[label]['frames']} | {r['cos_min']:.6f} | "
                    f"{r['cos_mean']:.6f} | {r['img_per_s']:.2f} |"
                )
        lines.append("")
    if "indexing" in s:
        i = s["indexing"]
        lines += [
            "## Indexing",
            "",
            "| path | precision | images | img/s | peak RSS MB |",
            "|---|---|---:|---:|---:|",
            f"| plain loop (PIL + processor, batch 1) | fp32 | {i['plain']['images']} | {i['plain']['img_per_s']:.2f} | {i['plain']['peak_rss_mb']:.0f} |",
            f"| index_images (batched, fast preprocessing) | {i['product']['precision']} | {i['product']['images']} | {i['product']['img_per_s']:.2f} | {i['product']['peak_rss_mb']:.0f} |",
        ]
        if "product_int8" in i:
            r = i["product_int8"]
            lines.append(
                f"| index_images, int8 | int8 | {r['images']} | {r['img_per_s']:.2f} | {r['peak_rss_mb']:.0f} |"
            )
        lines += [
            "",
            "Ratio to the plain loop: "
            + ", ".join(
                f"{i[k]['precision']} {i[k]['ratio']:.2f}×" for k in ("product", "product_int8") if k in i
            ),
            "",
        ]
    if "memory" in s:
        mm = s["memory"]
        lines += [
            f"## Memory (default settings, {mm['model']} model, {mm['precision']})",
            "",
            "| video | frames | analysed | peak RSS MB | wall s |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in mm["runs"]:
            lines.append(
                f"| {r['repeat']}× ({r['video_s']:.0f} s) | {r['frames']} | {r['analysed']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} |"
            )
        lines += ["", f"Growth: {mm['growth']:+.1%}", ""]
    if "search" in s:
        rows = s["search"]["rows"]
        batches = list(rows[0]["ms_per_frame"]) if rows else []
        lines += [
            "## Search (exact top-5, d = 1024)",
            "",
            "| embeddings | stored | SQLite build s | file MB | load s (fresh process) | load s (again) | "
            + " | ".join(f"ms/frame, batch {b}" for b in batches)
            + " | peak RSS MB |",
            "|---:|---|---:|---:|---:|---:|" + "---:|" * len(batches) + "---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['size']:,} | {'SQLite' if r['sqlite'] else 'in memory'} | {r.get('build_s') or '–'} | {r.get('file_mb') or '–'} | "
                f"{r.get('load_s', '–')} | {r.get('load_s_again') or '–'} | "
                + " | ".join(f"{r['ms_per_frame'][b]:.2f}" for b in batches)
                + f" | {r['peak_rss_mb']:.0f} |"
            )
        lines.append("")
    if "regions" in s:
        lines += region_bench.markdown(s["regions"])
    if "scale" in s:
        lines += scale.markdown_lines(s["scale"])
    if results.get("targets"):
        lines += ["## Targets", "", "| target | measured | goal | met | note |", "|---|---:|---|---|---|"]
        for t in results["targets"]:
            met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
            lines.append(f"| {t['target']} | {t['value']} | {t['goal']} | {met} | {t['note']} |")
        lines.append("")
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------
def run(
    settings: Settings, sections: tuple[str, ...], out_dir: Path, log: Callable[[str], None] = print
) -> dict:
    """Run the sections, write ``latest.json`` and ``latest.md`` to ``out_dir``, return the results."""
    _quiet_libraries()
    t0 = time.perf_counter()
    log("preparing models and videos (cached after the first run)")
    _model_folder(settings, "big")
    _model_folder(settings, "small")
    _video(settings)
    if "memory" in sections:
        _video(settings, settings.memory_repeat)
    results: dict = {
        "settings": asdict(settings),
        "machine": machine_info(),
        "sections": {},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for name in sections:
        t = time.perf_counter()
        results["sections"][name] = SECTION_FUNCS[name](settings, log)
        results["sections"][name]["section_wall_s"] = round(time.perf_counter() - t, 1)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results["total_wall_s"] = round(time.perf_counter() - t0, 1)
    results["loadavg_at_end"] = list(os.getloadavg())
    results["targets"] = targets(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=1, default=_json_default))
    (out_dir / "latest.md").write_text(markdown(results))
    return results


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1], argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller counts (≈ 4 min)")
    mode.add_argument("--smoke", action="store_true", help="tiny model and video, seconds (CI)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="results folder (default: bench/results)"
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 rows (where auto is not int8)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="models and videos cache (default ~/.cache/webssl-lens-bench)",
    )
    args = parser.parse_args(argv)
    settings = Settings.for_mode("smoke" if args.smoke else "quick" if args.quick else "full")
    if args.no_int8:
        settings = replace(settings, int8=False)
    if args.cache:
        settings = replace(settings, cache=str(args.cache))
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = run(settings, sections, args.out, log)
    print(markdown(results))
    print(
        f"\nwritten: {args.out / 'latest.json'}, {args.out / 'latest.md'} ({results['total_wall_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
