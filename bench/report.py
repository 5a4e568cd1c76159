"""The benchmark's report: each issue's targets with the measured value and whether it is met
(:func:`targets`), and the Markdown of ``bench/results/latest.md`` (:func:`markdown`)."""

from __future__ import annotations

from bench import regions as region_bench
from bench import scale


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
    for key, model in HELD_OUT_MODELS:
        held = s.get("agreement", {}).get(key, {}).get("certainty")
        if not held:
            continue
        p = held["pooled"]
        n = len(held["videos"])
        for k, label in (("top1", "top-1"), ("matched", "matched")):
            add(
                f"held-out {label} agreement, {model} ({n} videos, all frames pooled)",
                round(p[f"agreement_{k}"], 4),
                "≥ 0.98",
                p[f"agreement_{k}"] >= 0.98,
                f"worst video {p[f'worst_{k}']:.4f}",
            )
        add(
            f"held-out analyses per video s, {model} ({n} videos)",
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
        ]
        for key, model in HELD_OUT_MODELS:
            if key in a:  # the proxy is absent from results made before it was measured
                lines += _held_out_table(a[key], model)
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


HELD_OUT_MODELS = (("held_out", "small random Dinov2"), ("held_out_proxy", "trained proxy"))
"""The agreement section's held-out replays: its result key and the model that analysed them."""


def _held_out_table(held: dict, model: str) -> list[str]:
    """The held-out replays of one model as Markdown: each sampling's per-video and pooled rows."""
    lines = [
        f"Held-out generated videos (never used for tuning; cuts, dissolves, fades, pans, zooms, shake, "
        f"partial occlusion, pictures not in the collection) analysed by the {model}, the default "
        "sampling replayed. fp32 every-frame top-1 is the right picture on "
        + ", ".join(f"{x:.1%}" for x in held["fp32_accuracy"])
        + " of the frames that show one:",
        "",
        "| sampling | video | threshold | analysed | per video s | top-1 agreement | matched agreement |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("default (certainty)", held["certainty"]),
        ("change-driven only (main's defaults)", held["plain"]),
    ]
    if "bound" in held:  # absent from results made before it was measured
        rows.append(("best possible (knows every frame's answer)", held["bound"]))
    rows += [(ev["sampling"], ev) for ev in held.get("uniform", {}).values()]
    for label, ev in rows:
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
    lines += ["", f"Default sampling: {held['certainty']['sampling']}."]
    if "bound" in held:
        lines.append(
            ("Uniform: one analysis every n frames, replayed like the others. " if "uniform" in held else "")
            + "Best possible: the most any sampler could agree with that many analyses if it knew "
            "every frame's answer (each frame keeps the last analysed frame's answer; top-1 and "
            "matched each with their own best placement): a bound, not a sampler."
        )
    lines.append("")
    return lines
