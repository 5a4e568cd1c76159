"""bench.scale_data and bench.dashboard: the large-data journey, run small (no timing asserted)."""

from __future__ import annotations

import json
import math

import pytest

from bench.dashboard import CHROMIUM
from bench.scale_data import build
from db import Index


def test_scale_data_is_a_run_the_dashboard_can_open_and_is_reused(tmp_path):
    data = build(tmp_path / "s", images=300, frames=450, shown=7)
    with Index(data.db_path) as index:
        (coll,) = index.list_collections()
        assert coll.name == data.collection and coll.image_count == 300
        results = index.load_frame_results(data.run_id)
        assert len(results) == 450 and results.k == 5
        assert index.get_run(data.run_id).status == "done"
        seen = {int(i) for i in results.image_ids[:, 0] if i >= 0}
        assert 1 <= len(seen) <= 300
    mtime = data.db_path.stat().st_mtime_ns
    assert build(tmp_path / "s", images=300, frames=450, shown=7) == data  # the same sizes: reused
    assert data.db_path.stat().st_mtime_ns == mtime


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_the_dashboard_journey_times_every_step(tmp_path):
    from bench.dashboard import main

    out = tmp_path / "d.json"
    assert main(["--images", "300", "--frames", "900", "--out", str(tmp_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    steps = [
        "home (cold)",
        "home",
        "collections (first visit)",
        "browse (first visit)",
        "collections",
        "browse",
        "image and its neighbours (first)",
        "image and its neighbours",
        "open a run",
        "threshold (first move)",
        "threshold",
        "threshold (slowest)",
        "timeline click",
        "frame slider",
        "browse (from the sidebar)",
        "open a run (again)",
        "open a run (page reload)",
    ]
    for step in steps:
        assert math.isfinite(result[step]) and result[step] > 0, step
    assert result["server_mb_with_run"] > 0 and result["images"] == 300 and result["frames"] == 900
    assert (tmp_path / "screenshots" / "browse-large.png").is_file()
