"""End to end in a real browser: `streamlit run dashboard/Home.py`, driven by Playwright with
Debian's Chromium. Opens every page, runs a small match, sees the timeline and segments table.

Screenshots go to ``$WEBSSL_E2E_SCREENSHOTS`` (default: the test's temp folder).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from bench.dashboard import CHROMIUM, CHROMIUM_ARGS
from bench.dashboard import serve as serve_dashboard

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (bash .ci/install_browser.sh)",
    ),
]


@contextlib.contextmanager
def serve(tmp_path: Path, db_path: Path, model_dir: Path):
    """The dashboard (:func:`bench.dashboard.serve`) reading only ``tmp_path``; yields its URL and log."""
    log = tmp_path / "streamlit.log"
    with serve_dashboard(db_path, tmp_path / "data", str(model_dir), tmp_path, log) as (url, _pid):
        yield url, log


@pytest.fixture
def server(tmp_path, tiny_model_dir, image_folder, shots_video, extractor):
    """A running dashboard on a free localhost port, with a collection of the test images."""
    from core.matching.indexing import index_images
    from db import Index

    db_path = tmp_path / "e2e.sqlite"
    with Index(db_path) as index:
        index_images(index, "posters", [image_folder.folder], extractor)
    with serve(tmp_path, db_path, tiny_model_dir) as (url, log):
        yield url, shots_video.path, log


def test_dashboard_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, video, log = server
    shots = Path(os.environ.get("WEBSSL_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)

    def settle(page) -> None:
        """Wait until the page's script run has finished."""
        page.wait_for_load_state("networkidle")
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
        page.wait_for_timeout(300)

    def no_exception(page) -> None:
        assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id(
            "stException"
        ).first.inner_text()

    expect.set_options(timeout=60_000)  # the first script run imports torch: slow on a busy machine
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)

            page.goto(url)
            expect(page.get_by_role("heading", name="WebSSL Lens")).to_be_visible()
            settle(page)
            expect(page.get_by_text("Weights available")).to_be_visible()
            no_exception(page)
            page.screenshot(path=str(shots / "home.png"), full_page=True)

            for path, heading in [
                ("collections", "Collections"),
                ("browse", "Browse & search"),
                ("library", "Video library"),
                ("explore", "Explore an image"),
                ("render", "Render videos"),
            ]:
                page.goto(f"{url}/{path}")
                expect(page.get_by_role("heading", name=heading).first).to_be_visible()
                settle(page)
                no_exception(page)
                page.screenshot(path=str(shots / f"{path}.png"), full_page=True)

            # the collection made by the fixture is there, with its thumbnails
            page.goto(f"{url}/browse")
            settle(page)
            open_buttons = page.get_by_role("button").filter(has_text=re.compile(r"^Open$"))
            expect(open_buttons).to_have_count(4)

            # a small match, from a path on the server
            page.goto(f"{url}/match")
            expect(page.get_by_role("heading", name="Match a video")).to_be_visible()
            settle(page)
            page.get_by_text("Path on the server").click()
            settle(page)
            box = page.get_by_label("Video or folder path on the server")
            box.fill(str(video))
            box.press("Enter")
            settle(page)
            page.get_by_role("button", name="Run match").click()
            expect(page.get_by_text("Run #1 finished")).to_be_visible(timeout=90_000)
            settle(page)
            no_exception(page)
            chart = page.locator(".webssl-timeline canvas")
            expect(chart).to_be_visible()
            rows = page.locator(".webssl-segments .body .row")
            expect(rows.first).to_be_visible()
            # a click on a point of the timeline opens that frame in the inspector, and moves
            # the timeline's frame line there (the canvas is redrawn, not replaced)
            chart.scroll_into_view_if_needed()
            point = chart.evaluate("c => c.__points[c.__points.length - 2]")
            assert point is not None and chart.evaluate("c => c.__points.length") > 10
            chart.evaluate("c => { c.__mark = 1; }")
            box = chart.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
            expect(page.get_by_text(re.compile(rf"^Frame {point['frame']} at "))).to_be_visible()
            assert chart.evaluate("c => c.__mark") == 1
            # hovering a point names its image
            page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
            expect(page.locator(".webssl-timeline .tip")).to_contain_text(f"frame {point['frame']}")
            settle(page)
            no_exception(page)
            # the segments list: a header sorts it (again: the other way), a row inspects its first frame
            segments = page.locator(".webssl-segments").first
            in_time = segments.evaluate("r => r.__order")
            assert in_time == sorted(in_time) and len(in_time) == rows.count() >= 2
            peak = segments.locator(".head span", has_text="peak")
            peak.click()
            by_peak = segments.evaluate("r => r.__order")
            shown_peaks = [float(t) for t in rows.locator("span:nth-child(6)").all_inner_texts()]
            assert shown_peaks == sorted(shown_peaks, reverse=True) and sorted(by_peak) == in_time
            peak.click()
            shown_peaks = [float(t) for t in rows.locator("span:nth-child(6)").all_inner_texts()]
            assert shown_peaks == sorted(shown_peaks) and segments.evaluate("r => r.__order") != by_peak
            segments.evaluate("r => { r.__mark = 1; }")
            pick = rows.nth(1)
            first_frame = int(pick.get_attribute("data-frame"))
            pick.click()
            expect(page.get_by_text(re.compile(rf"^Frame {first_frame} at "))).to_be_visible()
            settle(page)
            expect(rows.nth(1)).to_have_class(re.compile("current"))
            assert segments.evaluate("r => r.__mark") == 1, "the list is redrawn, not replaced"
            no_exception(page)
            # the form closed when the run finished, and is not drawn; opened, it has its values
            expect(page.get_by_label("Video or folder path on the server")).to_have_count(0)
            page.get_by_text("New match run").click()
            settle(page)
            expect(page.get_by_label("Video or folder path on the server")).to_have_value(str(video))
            page.get_by_text("New match run").click()
            settle(page)
            expect(page.get_by_label("Video or folder path on the server")).to_have_count(0)
            no_exception(page)
            # Streamlit scrolls inside its own container: a tall viewport shows the whole page
            page.set_viewport_size({"width": 1400, "height": 3000})
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "match.png"))
        finally:
            browser.close()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_hostile_names_show_as_text_and_fetch_nothing(tmp_path, tiny_model_dir, shots_video, extractor):
    """A collection named like Markdown (an image pointing at a local server, bold, a colour
    directive) and an image file named likewise show literally, and the browser fetches nothing."""
    import http.server
    import threading

    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from conftest import pattern_image
    from core.matching.indexing import index_images
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling
    from dashboard.media import short_name
    from db import Index

    requests: list[str] = []

    class Counter(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    trap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    port = trap.server_address[1]
    hostile = f"![x](http://127.0.0.1:{port}/t.png) **bold** :red[x]"
    folder = tmp_path / "hostile"
    folder.mkdir()
    image_name = "**img** :blue[y] [z](x.html).png"
    Image.fromarray(pattern_image(100)).save(folder / image_name)
    db_path = tmp_path / "hostile.sqlite"
    with Index(db_path) as index:
        index_images(index, hostile, [folder], extractor)
        match_video(index, shots_video.path, hostile, extractor, sampling=Sampling.every_nth(5))
    try:
        with serve(tmp_path, db_path, tiny_model_dir) as (url, log), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                expect.set_options(timeout=60_000)
                for path in ("", "collections", "browse", "match"):
                    page.goto(f"{url}/{path}")
                    page.wait_for_load_state("networkidle")
                    page.wait_for_selector(
                        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
                    )
                    page.wait_for_timeout(500)
                    assert page.get_by_test_id("stException").count() == 0

                    def shown() -> str:
                        values = page.eval_on_selector_all("input", "els => els.map(e => e.value)")
                        return "\n".join([page.locator("body").inner_text(), *values])

                    text = shown()
                    for _ in range(60):  # a loaded machine may draw the page's last widgets later
                        if hostile in text or path not in ("collections", "browse", "match"):
                            break
                        page.wait_for_timeout(500)
                        text = shown()
                    if path in ("collections", "browse", "match"):
                        assert hostile in text, f"{path}: the name is not shown literally: " + repr(
                            [t for t in text.splitlines() if "bold" in t]
                        )
                    assert page.locator("img[src*='t.png']").count() == 0
                    assert page.locator("strong", has_text=re.compile(r"^bold$")).count() == 0  # not rendered
                page.goto(f"{url}/browse")
                page.wait_for_load_state("networkidle")
                # the grid shows a name cut to one line, literally; the opened image shows it whole
                expect(page.get_by_text(short_name(image_name), exact=False).first).to_be_visible()
                page.get_by_test_id("stTooltipHoverTarget").last.hover()  # the full name, as text
                expect(page.get_by_test_id("stTooltipContent").first).to_contain_text(image_name)
                page.get_by_role("button", name="Open").last.click()
                expect(page.get_by_role("heading", name=image_name)).to_be_visible()
                assert page.locator("strong", has_text=re.compile(r"^img$")).count() == 0
            finally:
                browser.close()
    finally:
        trap.shutdown()
    assert requests == [], f"the browser fetched {requests}"
