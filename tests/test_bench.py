"""The benchmark keeps working: a seconds-long smoke run (tiny model, tiny video).

Checks that every section is reported with sane values; never asserts timings.
"""

from __future__ import annotations

import json
import math

import pytest

from bench.regions import PLACED_ANEW
from bench.run import SECTIONS, run
from bench.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from dataclasses import replace

    cache = tmp_path_factory.mktemp("bench-cache")
    out = tmp_path_factory.mktemp("bench-results")
    settings = replace(Settings.for_mode("smoke"), cache=str(cache))
    results = run(settings, SECTIONS, out, log=lambda msg: None)
    return results, out, cache


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_section_is_reported_and_written(smoke):
    results, out, _ = smoke
    assert set(results["sections"]) == set(SECTIONS)
    assert json.loads((out / "latest.json").read_text())["settings"]["mode"] == "smoke"
    md = (out / "latest.md").read_text()
    for heading in (
        "## Speed",
        "## Agreement",
        "## Numerics",
        "## Indexing",
        "## Memory",
        "## Search",
        "## Regions",
        "## Scale",
        "## Targets",
    ):
        assert heading in md
    machine = results["machine"]
    assert machine["cores"] >= 1 and isinstance(machine["native_bf16"], bool)


def test_speed_rows(smoke):
    speed = smoke[0]["sections"]["speed"]
    rows = {r["key"]: r for r in speed["rows"]}
    assert {"baseline", "baseline_end", "every_fp32", "default_fp32"} <= set(rows)
    for r in rows.values():
        assert _finite_positive(r["analysed_per_s"]) and _finite_positive(r["video_s_per_s"])
        assert _finite_positive(r["ratio_vs_baseline"]) and _finite_positive(r["peak_rss_mb"])
        assert 0 < r["frames_analysed"] <= r["frames_covered"]
    # ratios are taken against the mean of the two baseline runs that bracket the others
    assert (
        rows["baseline"]["ratio_vs_baseline"] + rows["baseline_end"]["ratio_vs_baseline"]
    ) / 2 == pytest.approx(1.0)
    assert rows["every_fp32"]["frames_analysed"] == rows["every_fp32"]["frames_covered"]
    # the machine's limit: GEMM ceilings, and each model path as a share of its precision's
    assert _finite_positive(speed["ceiling_gflops"]["fp32"])
    assert _finite_positive(rows["every_fp32"]["ceiling_fraction"]) and _finite_positive(
        rows["every_fp32"]["load_s"]
    )
    # fp32's ceiling is the faster of the CPU's GEMMs, and each run's share is of the ceiling
    # measured around it (the host's speed drifts)
    ceiling = speed["ceiling_gflops"]
    assert ceiling["fp32"] == max(g for k, g in ceiling.items() if k.startswith("fp32:"))
    every = rows["every_fp32"]
    assert every["ceiling_fraction"] == pytest.approx(every["gflops"] / every["ceiling_around"]["fp32"])
    assert every["ceiling_fraction_best"] == pytest.approx(every["gflops"] / ceiling["fp32"])
    assert all(_finite_positive(p["video_s_per_s"]) for p in speed["projections"])
    default = rows["default_fp32"]
    assert default["frames_analysed"] < default["frames_covered"]  # change-driven: most frames inherit
    assert (
        default["decisions"]["first"] == 1 and sum(default["decisions"].values()) == default["frames_covered"]
    )


def test_agreement_and_held_out_videos(smoke):
    a = smoke[0]["sections"]["agreement"]
    assert a["runs"]["every-fp32"]["agreement_top1"] == 1.0
    for r in a["runs"].values():
        assert 0.0 <= r["agreement_top1"] <= 1.0 and 0.0 <= r["agreement_matched"] <= 1.0
        assert 0 < r["analysed"] <= a["frames"]
    assert 0.0 <= a["fp32_top1_accuracy_vs_truth"] <= 1.0
    # the replay makes the pipeline's decisions (scores may differ in the last bits)
    assert abs(a["replay_check"]["pipeline"] - a["replay_check"]["replay"]) <= 1
    # the held-out replays, on the videos as the small random model and the trained proxy see them
    assert a["held_out_proxy"]["model"] == "tiny-trained"
    for held in (a["held_out"], a["held_out_proxy"]):
        _check_held_out(held)


def _check_held_out(held: dict) -> None:
    for key in ("certainty", "plain"):
        pooled = held[key]["pooled"]
        assert 0.0 <= pooled["agreement_top1"] <= 1.0 and 0.0 <= pooled["agreement_matched"] <= 1.0
        assert pooled["analysed_per_video_s"] > 0
        for v in held[key]["videos"]:
            assert sum(v["decisions"].values()) > v["analysed"] > 0
    # uniform sampling beside it: one analysis every ``step`` frames
    assert set(held["uniform"]) == {"3", "10"}
    for ev in held["uniform"].values():
        assert (
            0.0 <= ev["pooled"]["agreement_top1"] <= 1.0 and 0.0 <= ev["pooled"]["agreement_matched"] <= 1.0
        )
    # the bound at the budget: what a sampler that knew every answer would reach
    bound = held["bound"]
    assert bound["pooled"]["analysed_per_video_s"] == pytest.approx(0.6, abs=0.2)  # whole analyses
    for b, v in zip(bound["videos"], held["certainty"]["videos"], strict=True):
        assert (
            b["video"] == v["video"]
            and 0.0 < b["agreement_top1"] <= 1.0
            and 0.0 < b["agreement_matched"] <= 1.0
        )
        if b["analysed"] >= v["analysed"]:  # as many analyses or more: no sampler beats it
            assert (
                b["agreement_top1"] >= v["agreement_top1"]
                and b["agreement_matched"] >= v["agreement_matched"]
            )


def test_numerics(smoke):
    n = smoke[0]["sections"]["numerics"]
    for label in ("big", "small"):
        precisions = n[label]["precisions"]
        assert {"bf16", "fp16"} <= set(precisions)
        for r in precisions.values():
            assert -1.0 <= r["cos_min"] <= r["cos_mean"] <= 1.0 + 1e-6
        assert precisions["bf16"]["cos_min"] > 0.99


def test_indexing_memory_and_search(smoke):
    s = smoke[0]["sections"]
    assert s["indexing"]["plain"]["images"] == s["indexing"]["product"]["images"] > 0
    assert _finite_positive(s["indexing"]["ratio"])
    runs = s["memory"]["runs"]
    assert runs[1]["frames"] == runs[0]["frames"] * runs[1]["repeat"]
    assert math.isfinite(s["memory"]["growth"])
    for r in s["search"]["rows"]:
        assert r["sqlite"] and r["load_s"] >= 0 and r["near_duplicate_found"] == 1.0
        assert all(_finite_positive(v) for v in r["ms_per_frame"].values())


def test_regions_quality_and_cost(smoke):
    r = smoke[0]["sections"]["regions"]
    # quality as the small random model and as the trained proxy see the video, and the proxy on
    # the video placed anew
    models = [r[key]["model"] for key in ("quality", "quality_proxy", "quality_proxy_anew")]
    assert models == ["tiny", "tiny-trained", "tiny-trained"]
    assert r["quality_proxy"]["plan_seed"] != r["quality_proxy_anew"]["plan_seed"] == PLACED_ANEW
    for q in (r["quality"], r["quality_proxy"], r["quality_proxy_anew"]):
        for mode in ("global", "regions"):
            for rate, at in q[mode]["at_fp"].items():
                assert float(rate) in (0.05, 0.01) and 0.0 <= at["precision"] <= 1.0
                assert set(at["recall"]) == {"1/2", "1/3", "1/4", "1/6"}
                assert at["fp_rate"] <= float(rate) + 1e-9  # the thresholds hold the false-positive rate
    assert r["quality"]["regions"]["micro_ap"] >= r["quality"]["global"]["micro_ap"]
    cost = r["cost"]
    assert cost["ratio"] is None or _finite_positive(cost["ratio"])  # None: timing noise (never asserted)
    assert _finite_positive(cost["ratio_with_setup"])
    assert cost["frames"][1] == 2 * cost["frames"][0] <= r["quality"]["frames"]  # within the video


def test_region_quality_alone_on_a_video_placed_anew_with_more_distractors(smoke, tmp_path, capsys):
    from bench.inset_video import smoke_inset_plan
    from bench.regions import main as regions_main

    plan = smoke_inset_plan()
    out = tmp_path / "q.json"
    args = ["--smoke", "--model", "random", "--seed", "5", "--distractors", "6", "--cache", str(smoke[2])]
    assert regions_main([*args, "--json", str(out)]) == 0

    q = json.loads(out.read_text())
    assert q["plan_seed"] == 5 != plan.seed
    assert q["collection_images"] == plan.pictures + 6 != plan.pictures + plan.distractors
    assert q["model"] == "tiny"
    printed = capsys.readouterr().out
    assert printed.startswith(f"Region video seed 5, {q['frames']} frames, {plan.pictures + 6} images.")
    assert "| regions | 5% (measured" in printed and "Quality with the tiny random Dinov2" in printed


@pytest.mark.parametrize("option", ["--seed", "--distractors"])
def test_region_quality_alone_refuses_a_negative_count(option, capsys):
    from bench.regions import main as regions_main

    with pytest.raises(SystemExit) as exit_info:
        regions_main(["--smoke", option, "-3"])
    assert exit_info.value.code == 2
    assert f"{option} must be 0 or more, got -3" in capsys.readouterr().err


def test_targets_are_listed_with_verdicts(smoke):
    targets = smoke[0]["targets"]
    names = " ".join(t["target"] for t in targets)
    for key in (
        "every-frame speed",
        "video s per wall s",
        "agreement",
        "CLS cosine",
        "peak RSS",
        "held-out",
        "ceiling",
        "region recall",
    ):
        assert key in names
    assert all(t["met"] in (True, False) for t in targets)
    assert f"region recall at 1/4 width (tiny-trained, seed {PLACED_ANEW})" in names


def test_scale(smoke):
    scale = smoke[0]["sections"]["scale"]
    (row,) = scale["collections"]
    assert row["build"]["ann_build_s"] >= 0 and row["build"]["ann_mb"] > 0
    assert 0.0 <= row["approx"]["recall_at_5"] <= 1.0 and row["approx"]["near_duplicate_first"] >= 0.9
    assert all(_finite_positive(v) for v in row["approx"]["ms_per_frame"].values())
    assert row["changes"]["merge_action"] == "merged"
    assert {r["library"] for r in scale["libraries"]["rows"]} >= {"usearch-i8", "hnswlib", "faiss-hnsw"}
    assert _finite_positive(scale["writer"]["result_rows_per_s"])
