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


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_settle_takes_a_run_the_page_never_showed_running():
    """A run whose start and end reach the page together never sets the state to "running":
    the step settles once the server has been quiet, and says so, instead of waiting 120 s."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from bench.dashboard import CHROMIUM_ARGS, QUIET_MS, arm, settle

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_content('<div data-testid="stApp" data-test-script-state="notRunning"></div>')
            arm(page)
            with pytest.raises(PlaywrightError):  # nothing ran and nothing came: not settled
                settle(page, timeout_ms=QUIET_MS * 3, armed=True)
            arm(page)
            page.evaluate("() => { window.__benchMsgs = 3; window.__benchLastMsg = performance.now(); }")
            settle(page, timeout_ms=QUIET_MS * 10, armed=True)  # messages, then quiet
            assert page.evaluate("() => window.__benchQuiet") is True
            arm(page)  # a run seen running settles as soon as it is over, without the quiet
            page.evaluate(
                """() => { const app = document.querySelector('[data-testid="stApp"]');
                           app.setAttribute('data-test-script-state', 'running');
                           setTimeout(() => app.setAttribute('data-test-script-state', 'notRunning'), 50); }"""
            )
            settle(page, timeout_ms=QUIET_MS * 10, armed=True)
            assert page.evaluate("() => window.__benchQuiet") is False
        finally:
            browser.close()
