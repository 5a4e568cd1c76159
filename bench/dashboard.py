"""The dashboard at real sizes, timed in a real browser.

``python -m bench.dashboard [--images 100000] [--frames 108000] [--out DIR]``: builds a large
collection and a long run through the db API (:mod:`bench.scale_data`), starts
``streamlit run dashboard/Home.py``, drives Debian's Chromium with Playwright and times what a
user waits for: pages opening, a run opening, the threshold moving, a click on the timeline,
the frame slider, Browse, and the server's memory. tests/test_bench_dashboard.py runs the same journey
(:func:`journey`) on a smaller set.

A step's time runs from the user's action until the page's script has finished and the browser
has drawn two frames after it. The pages are first opened by address (a full page load each),
then a run is opened as a user does: from the sidebar, after a moment on the Browse page; then
once more from the sidebar, and by reloading the run's page.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
QUIET_MS = 300
"""How long the page has heard nothing from the server before an armed step whose run was never
seen running counts as settled (see :func:`settle`)."""
THRESHOLD_MOVES = 8  # threshold moves whose median is reported (after the first, reported alone)
READING_S = 2.0
"""Seconds the journey spends on the Browse page before opening a run from the sidebar, as a
user reads a page; the dashboard loads the run page's browser code in such idle time
(:mod:`dashboard.prefetch`)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(db_path: Path, data_dir: Path, model: str, allowed: Path, log: Path) -> Iterator[tuple[str, int]]:
    """``streamlit run dashboard/Home.py`` on a free localhost port; yields (URL, server pid)."""
    env = {
        **os.environ,
        "WEBSSL_DB": str(db_path),
        "WEBSSL_ALLOWED_DIRS": str(allowed),
        "WEBSSL_DATA_DIR": str(data_dir),
        "WEBSSL_MODEL": model,
        "WEBSSL_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    port = _free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "dashboard/Home.py",
        "--server.port", str(port), "--server.headless", "true",
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


_OBSERVE = """
function __benchObserve(app) {
  // a run that starts and ends before the callback fires shows up in the records' old values only
  const seen = (records) => app.getAttribute('data-test-script-state') === 'running'
      || records.some((r) => r.oldValue === 'running');
  if (window.__benchRuns) window.__benchRuns.disconnect();
  window.__benchRuns = new MutationObserver((records) => { if (seen(records)) window.__benchRan = true; });
  window.__benchRuns.observe(
    app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true});
}"""
_ARM = (
    "() => {"
    + _OBSERVE
    + """
  window.__benchRan = false;
  window.__benchMsgs = 0;
  window.__benchQuiet = false;
  __benchObserve(document.querySelector('[data-testid="stApp"]'));
}"""
)
_WATCH_LOADS = (
    "(() => {"
    + _OBSERVE
    + """
  window.__benchRan = false;
  window.__benchMsgs = 0;
  // count the server's messages: a run whose start and end reach the page together (the server
  // held its messages while the script ran) is drawn at once, and the state never reads "running"
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => {
        window.__benchMsgs = (window.__benchMsgs || 0) + 1;
        window.__benchLastMsg = performance.now();
      });
    }
  };
  const attach = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) return false;
    if (app.getAttribute('data-test-script-state') === 'running') window.__benchRan = true;
    __benchObserve(app);
    return true;
  };
  if (!attach()) {
    const found = new MutationObserver(() => { if (attach()) found.disconnect(); });
    found.observe(document, {childList: true, subtree: true});
  }
})();"""
)


def arm(page) -> None:
    """Watch for the next script run, before an action on the open page (see :func:`settle`)."""
    page.evaluate(_ARM)


def watch_loads(page) -> None:
    """Arm every page the browser loads from its first moment (:func:`settle` with ``armed``
    then times a page load like an action: without it, a fast first run could be over before
    the bench looked, and a load counted 1.5 s of looking)."""
    page.add_init_script(_WATCH_LOADS)


def settle(page, timeout_ms: int = 120_000, *, armed: bool = False) -> None:
    """Wait until the script run that an action started has finished and the browser has drawn.

    With ``armed`` (:func:`arm` was called before the action, or :func:`watch_loads` before a
    page load), waits for the run that started after it, however fast. A run that the page drew
    without ever showing it running (its start and end arrived together) is over once the page
    is idle and the server has said nothing for ``QUIET_MS`` after its messages: the step then
    counts that wait too (:func:`journey` lists such steps). Otherwise it looks for a
    run for up to 1.5 s and then for idle, which counts 1.5 s for a run that ended before it
    looked.
    """
    if armed:
        page.wait_for_function(
            f"""() => {{
              if (document.querySelector({IDLE!r}) === null) return false;
              if (window.__benchRan) return true;
              const quiet = window.__benchMsgs > 0 && performance.now() - window.__benchLastMsg > {QUIET_MS};
              if (quiet) window.__benchQuiet = true;
              return quiet;
            }}""",
            timeout=timeout_ms,
        )
    else:
        with contextlib.suppress(Exception):  # a fast rerun may be over before we look
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=1500)
        page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def journey(page, url: str, server_pid: int, run_id: int, shots: Path | None = None) -> dict:
    """Time the pages and interactions of a large run; returns seconds per step (and MB)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    timings: dict = {}

    def timed(name: str, action, *, rerun: bool = False, until=None) -> float:
        """Time ``action``; with ``rerun``, until the script run it starts on the open page has
        finished (:func:`arm` before the clock starts, :func:`settle` after the action); then
        until ``until()`` returns. Records and returns the seconds."""
        if rerun:
            arm(page)
        start = time.perf_counter()
        try:
            action()
            if rerun:
                settle(page, armed=True)
            if until is not None:
                until()
        except (PlaywrightError, AssertionError):  # keep what the page showed, then fail as before
            shot(f"failed-{name.replace(' ', '-')}")
            raise
        timings[name] = round(time.perf_counter() - start, 3)
        if rerun and page.evaluate("() => window.__benchQuiet === true"):
            timings.setdefault("settled by quiet (includes the wait)", []).append(name)
        return timings[name]

    def shot(name: str) -> None:
        if shots is not None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    def goto(path: str) -> None:
        page.goto(f"{url}/{path}")
        settle(page, armed=True)  # watch_loads armed the new page

    watch_loads(page)

    timed("home (cold)", lambda: goto(""))
    timed("home", lambda: goto(""))
    # a page's first visit in a server process also imports what it needs (once per process)
    timed("collections (first visit)", lambda: goto("collections"))
    timed("browse (first visit)", lambda: goto("browse"))
    timed("collections", lambda: goto("collections"))
    timed("browse", lambda: goto("browse"))
    shot("browse-large")

    def open_image(grid: str):
        """Press the first Open button of a grid of the Browse page (``grid``: thumbnails, ``nn``:
        neighbours)."""
        button = page.locator(f'[class*="st-key-{grid}-"] button').first
        button.scroll_into_view_if_needed()
        # aim once the thumbnails have landed (images still loading can move the buttons)
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=60_000)
        return button.click

    def neighbours_shown() -> None:
        expect(page.get_by_text("Nearest neighbours in the collection")).to_be_visible()
        expect(page.get_by_text("Opening the collection for search")).to_have_count(0)

    # the first search opens the collection's search index (memory-mapped) once per server
    timed("image and its neighbours (first)", open_image("grid"), rerun=True, until=neighbours_shown)
    timed("image and its neighbours", open_image("nn"), rerun=True, until=neighbours_shown)
    timings["server_mb_before_run"] = round(_rss_mb(server_pid), 1)

    def visible_run() -> None:
        expect(page.locator(".webssl-timeline canvas")).to_be_visible()

    def open_from_sidebar(title: str):
        return lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()

    time.sleep(READING_S)  # the user looks at Browse; the browser loads the run page's code meanwhile
    timed("open a run", open_from_sidebar("Match a video"), rerun=True, until=visible_run)
    shot("match-large")
    timings["server_mb_with_run"] = round(_rss_mb(server_pid), 1)

    def nudge(slider: str, key: str = "ArrowRight"):
        """One step on the slider labelled ``slider``, as a keyboard user moves it (focused now,
        before the clock starts; the returned action presses the key)."""
        thumb = page.locator(f'input[type="range"][aria-label="{slider}"]').last
        thumb.focus()
        return lambda: thumb.press(key)

    timed("threshold (first move)", nudge("Threshold"), rerun=True)
    moves = [  # back and forth: the median of many, the first ones run slower
        timed("threshold", nudge("Threshold", "ArrowLeft" if i % 2 else "ArrowRight"), rerun=True)
        for i in range(THRESHOLD_MOVES)
    ]
    timings["threshold"] = round(statistics.median(moves), 3)
    timings["threshold (slowest)"] = max(moves)

    chart = page.locator(".webssl-timeline canvas")
    chart.scroll_into_view_if_needed()
    point = chart.evaluate("c => c.__points[3]")  # where the timeline drew a point (CSS pixels)
    box = chart.bounding_box()
    timed(
        "timeline click",
        lambda: page.mouse.click(box["x"] + point["x"], box["y"] + point["y"]),
        rerun=True,
        until=lambda: expect(page.get_by_text("Frame ", exact=False).first).to_be_visible(),
    )
    timed("frame slider", nudge("Frame"), rerun=True)
    timed("browse (from the sidebar)", open_from_sidebar("Browse & search"), rerun=True)
    timed("open a run (again)", open_from_sidebar("Match a video"), rerun=True, until=visible_run)
    timed("open a run (page reload)", lambda: goto("match"), until=visible_run)
    timings["server_mb_after"] = round(_rss_mb(server_pid), 1)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id(
        "stException"
    ).first.inner_text()
    return timings


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    from bench import synthetic as syn
    from bench.scale_data import build

    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=108_000)
    parser.add_argument("--out", type=Path, default=syn.cache_dir() / "dashboard")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = build(args.out / f"{args.images}-{args.frames}", images=args.images, frames=args.frames)
    built = time.perf_counter() - start
    model = syn.build_tiny(args.out / "model")
    shots = args.out / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with serve(data.db_path, args.out / "data", str(model), args.out, args.out / "streamlit.log") as (
        url,
        pid,
    ):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            timings = journey(page, url, pid, data.run_id, shots)
            browser.close()
    result = {"images": args.images, "frames": args.frames, "build_s": round(built, 1), **timings}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
