"""The benchmark's sections: each runs its measurements (:func:`bench.harness.measure`) and
derives what the report shows from them (ratios against the baseline, shares of the GEMM
ceiling, projections to other CPUs)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import regions as region_bench
from bench import scale
from bench import synthetic as syn
from bench.harness import measure, resolved_auto
from bench.settings import Settings, bench_video


def section_speed(settings: Settings, log: Callable[[str], None]) -> dict:
    from core.model.precision import cpu_has_native_bf16

    auto = resolved_auto()
    video = bench_video(settings)
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
    auto = resolved_auto()
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
    "scale": scale.section_scale,
}
"""The sections by name, in the order a full run runs them."""
