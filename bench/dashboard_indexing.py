"""Indexing from the dashboard against the CLI, on the same pictures and model.

``python -m bench.dashboard_indexing [--images 300] [--rounds 2] [--json PATH]``: indexes the
same folder with ``python -m core index`` and with the dashboard's "Index folder" button
(``streamlit run dashboard/Home.py`` driven by Chromium), once with the page open until the
job ends and once with the page closed right after the click. Rounds alternate the three, so
that a busy machine slows them alike. Each time is the indexing's own (``IndexReport.elapsed_s``,
model loading excluded), as the CLI prints it and the dashboard's notice shows it; the ratio
to the CLI of the same round is what counts.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.dashboard import CHROMIUM, CHROMIUM_ARGS, ROOT, serve, settle

ELAPSED = re.compile(r"\(([\d.]+) s,")
NOTICE = re.compile(r"Indexing finished: .* in ([\d.]+) s\.")


def pictures(folder: Path, count: int) -> Path:
    """``count`` generated 640×480 JPEG pictures in ``folder`` (made once)."""
    from PIL import Image

    from bench.synthetic import make_picture

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = folder / f"picture-{i:04d}.jpg"
        if not path.exists():
            Image.fromarray(make_picture(i, (480, 640))).save(path, quality=90)
    return folder


def cli_seconds(folder: Path, model: Path, db_path: Path) -> float:
    """``python -m core index``: the indexing time it prints."""
    cmd = [sys.executable, "-m", "core", "index", "-q", str(folder), "--collection", "bench",
           "--db", str(db_path), "--model", str(model), "--device", "cpu"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = ELAPSED.search(out)
    if found is None:
        raise RuntimeError(f"no time in the CLI's output: {out!r}")
    return float(found.group(1))


def _collection(db_path: Path, model: Path) -> None:
    """An empty collection bound to ``model``, as the dashboard's "Create" makes it."""
    from core.matching.indexing import ensure_collection
    from core.model.features import FeatureExtractor
    from db import Index

    with Index(db_path) as index:
        ensure_collection(index, "bench", FeatureExtractor.load(model, device="cpu"))


def dashboard_seconds(folder: Path, model: Path, work: Path, *, page_open: bool) -> float:
    """The dashboard's "Index folder": the indexing time of the job (page open or closed)."""
    from playwright.sync_api import sync_playwright

    from db import Index

    db_path = work / "dashboard.sqlite"
    db_path.unlink(missing_ok=True)
    _collection(db_path, model)
    with serve(db_path, work / "data", str(model), folder.parent, work / "streamlit.log") as (url, _pid):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(600_000)
            page.goto(f"{url}/collections")
            settle(page)
            page.get_by_label("Folder or file path").fill(str(folder))
            page.get_by_label("Folder or file path").press("Enter")
            settle(page)
            page.get_by_role("button", name="Index folder").click()
            settle(page)
            if page_open:
                notice = page.get_by_text("Indexing finished:", exact=False).first
                notice.wait_for(timeout=600_000)
                found = NOTICE.search(notice.inner_text())
            else:
                page.close()  # the job goes on in the server; look at the database meanwhile
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    with Index(db_path, readonly=True) as index:
                        if index.get_collection("bench").image_count >= len(list(folder.glob("*.jpg"))):
                            break
                    time.sleep(0.5)
                time.sleep(1.0)  # the job's last bookkeeping
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/collections")
                settle(page)
                found = None
                with Index(db_path, readonly=True) as index:
                    stats = index.get_collection("bench")
                seconds = _job_seconds(work / "streamlit.log")
                browser.close()
                if stats.image_count == 0 or seconds is None:
                    raise RuntimeError("the dashboard's job did not finish")
                return seconds
            browser.close()
    if found is None:
        raise RuntimeError("no time in the dashboard's notice")
    return float(found.group(1))


def _job_seconds(log: Path) -> float | None:
    """The indexing time the job logged (``index_images`` logs its report)."""
    times = re.findall(r"indexed .* in ([\d.]+) s", log.read_text())
    return float(times[-1]) if times else None


def main(argv: list[str] | None = None) -> int:
    from bench import synthetic as syn

    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_indexing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=syn.cache_dir() / "dashboard-indexing")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = pictures(args.out / f"pictures-{args.images}", args.images)
    model = syn.build_small()
    rows = []
    for round_ in range(args.rounds):
        cli_db = args.out / f"cli-{round_}.sqlite"
        cli_db.unlink(missing_ok=True)
        row = {"cli_s": cli_seconds(folder, model, cli_db)}
        row["dashboard_open_s"] = dashboard_seconds(folder, model, args.out, page_open=True)
        row["dashboard_closed_s"] = dashboard_seconds(folder, model, args.out, page_open=False)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "images": args.images,
        "model": "bench.synthetic.SMALL (random weights)",
        "rounds": rows,
        "open_vs_cli": round(statistics.median(r["dashboard_open_s"] / r["cli_s"] for r in rows), 2),
        "closed_vs_cli": round(statistics.median(r["dashboard_closed_s"] / r["cli_s"] for r in rows), 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
