"""bench/reliability.py in CI: kills, concurrency, bad inputs and extreme images (issue 9).

One run of ``python -m bench.reliability --quick`` (about two minutes on 2 cores); the full run
(20 and 10 kills) gives README's Reliability section.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reliability") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.reliability", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("scenario", ["kills_during_index", "kills_during_match"])
def test_kills_never_corrupt_lose_or_change_results(results, scenario):
    report = results[scenario]
    assert report["kills"] >= 4
    assert report["integrity_ok"] == report["kills"]
    assert report["rows_lost"] == 0
    assert report["resumed_exact"], report["detail"]


def test_writers_and_readers_at_once_are_never_locked_out(results):
    report = results["concurrency"]
    assert report["writes_ok"] == report["writers"] == 4
    assert report["reads"] > 0 and report["locked_errors"] == 0
    assert report["other_errors"] == []


def test_every_bad_input_is_handled_cleanly(results):
    cases = results["bad_inputs"]
    assert len(cases) >= 40
    assert [c["name"] for c in cases if not c["clean"]] == []
    assert {c["kind"] for c in cases} == {"image", "video", "database"}


def test_extreme_aspect_memory_is_bounded(results):
    report = results["extreme_aspect"]
    assert report["added"] + report["failed"] == report["images"] == 2
    assert report["growth_mb"] < 300  # 1×40000 used to need 31 GB
