"""dashboard/timeline.py: the timeline component's window value and its script."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import timeline

JS = Path(timeline.__file__).with_name("timeline.js")


def test_the_script_reads_every_field_the_spec_sends():
    """timeline.js and TimelineSpec.to_data() agree on names: a renamed field would draw nothing."""
    import numpy as np

    from dashboard import timeline_data

    t = np.arange(10) / 10
    score = np.linspace(0.5, 1.0, 10)
    spec = timeline_data.timeline_spec(
        timeline_data.decimate(t, np.arange(10), score, np.arange(10), score > 0.7), {}, 0.7
    )
    script = JS.read_text()
    for field in spec.to_data():
        assert f"data.{field}" in script, field
    for name in ("threshold", "selected", "band_fill", "band_line"):
        assert f"data.style.{name}" in script, name


@pytest.mark.parametrize(
    ("state", "window"),
    [
        (None, None),
        ({"window": None}, None),
        ({"window": [10.5, 70.25]}, (10.5, 70.25)),
        ({"window": [70, 10]}, (10.0, 70.0)),  # dragged right to left
        ({"window": [5, 5]}, None),  # no width
        ({"window": [1, "x"]}, None),
        ({"window": [1, float("nan")]}, None),
        ({"window": [1, 2, 3]}, None),
        ({"frame": 3}, None),
    ],
)
def test_chosen_window(state, window):
    assert timeline.chosen_window(state) == window


@pytest.mark.browser
def test_in_a_browser_a_drag_zooms_and_a_click_inspects(tmp_path, tiny_model_dir):
    """timeline.js itself, on a 10-minute run written through the db API: a drag across the
    canvas sets the time window, a click the inspected frame, and the canvas stays the same node."""
    from bench.dashboard import CHROMIUM, CHROMIUM_ARGS, arm, serve, settle, watch_loads

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium")
    from playwright.sync_api import expect, sync_playwright

    from conftest import synthetic_run
    from db import Index

    db_path = tmp_path / "t.sqlite"
    n = 15_000  # 25 fps: 10 minutes
    with Index(db_path) as index:
        synthetic_run(
            index, [(i // 3000) % 2 for i in range(n)], [0.9 if (i // 1500) % 2 else 0.3 for i in range(n)]
        )
    errors: list[str] = []
    with serve(db_path, tmp_path / "data", str(tiny_model_dir), tmp_path, tmp_path / "log") as (url, _pid):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1400})
                page.on("pageerror", lambda err: errors.append(str(err)))
                watch_loads(page)
                page.goto(f"{url}/match")
                settle(page, armed=True)
                chart = page.locator(".webssl-timeline canvas")
                expect(chart).to_be_visible()
                chart.evaluate("c => { c.__mark = 1; }")
                box = chart.bounding_box()
                assert box is not None
                # drag across the middle fifth of the plot: about 2 of the 10 minutes
                y = box["y"] + box["height"] / 2
                left, right = box["x"] + box["width"] * 0.4, box["x"] + box["width"] * 0.6
                arm(page)
                page.mouse.move(left, y)
                page.mouse.down()
                page.mouse.move((left + right) / 2, y, steps=4)
                expect(page.locator(".webssl-timeline .brush")).to_be_visible()
                page.mouse.move(right, y, steps=4)
                page.mouse.up()
                settle(page, armed=True)
                window = page.locator('input[type="range"][aria-label^="Time window (s)"]')  # start, end
                lo, hi = (float(v) for v in window.evaluate_all("els => els.map(e => e.value)"))
                assert 150 < lo < hi < 450 and 60 < hi - lo < 180, (lo, hi)
                assert chart.evaluate("c => c.__mark") == 1  # redrawn, not replaced
                times = chart.evaluate("c => c.__points.map(p => p.frame / 25)")
                assert lo <= min(times) and max(times) <= hi
                # a click (no drag) inspects the frame of the point under it
                point = chart.evaluate("c => c.__points[Math.floor(c.__points.length / 2)]")
                box = chart.bounding_box()  # where the chart is now
                assert box is not None
                arm(page)
                x = round(box["x"] + point["x"])  # the browser's mouse events are in whole pixels
                page.mouse.click(x, box["y"] + point["y"])
                settle(page, armed=True)
                frame = page.locator('input[type="range"][aria-label="Frame"]')
                # the point nearest the click: points can lie less than a pixel apart
                near = chart.evaluate(
                    "(c, x) => c.__points.filter(p => Math.abs(p.x - x) <= 1).map(p => p.frame)", x - box["x"]
                )
                assert point["frame"] in near and int(float(frame.evaluate("e => e.value"))) in near, near
            finally:
                browser.close()
    assert not errors, errors
