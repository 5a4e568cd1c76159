"""dashboard.warmup: the pages' modules, imported in the background once per server."""

from __future__ import annotations

import sys

from dashboard.warmup import VIEWS, view_modules, warm_up


def test_every_module_a_page_imports_is_listed(tmp_path):
    names = view_modules()
    # submodules imported by name (``from dashboard import run_explorer``) count, attributes don't
    assert {"dashboard.run_explorer", "dashboard.match_launcher", "core.visual.pca_video"} <= set(names)
    assert "dashboard.keys" in names and "dashboard.page_header" not in names
    assert "__future__" not in names
    assert len(list(VIEWS.glob("*.py"))) >= 7
    (tmp_path / "a.py").write_text("from __future__ import annotations\nimport json\nfrom os import path\n")
    assert view_modules(tmp_path) == ["json", "os", "os.path"]


def test_the_warm_up_imports_them_and_survives_a_missing_one(caplog):
    sys.modules.pop("colorsys", None)
    thread = warm_up(["colorsys", "no_such_module_here"])
    thread.join(timeout=30)
    assert not thread.is_alive() and "colorsys" in sys.modules
    assert "no_such_module_here" in caplog.text


def last_line_of(code: str) -> str:
    """The last line ``code`` prints, run in a fresh Python (nothing imported before)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_the_pages_import_without_pytorch_or_scikit_learn():
    """The dashboard serves collections and runs without PyTorch in memory (about 180 MB of a
    server's 660 MB with a 2-hour run open): it is imported when a model or an exact search
    first needs it (core.lazy)."""
    code = (
        "import importlib, logging, sys; logging.disable(logging.CRITICAL)\n"
        "from dashboard.warmup import view_modules\n"
        "[importlib.import_module(m) for m in view_modules()]\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))\n"
    )
    assert last_line_of(code) == "[]"


def test_the_home_page_imports_only_what_it_shows(tmp_path):
    """Home is the server's first page: a new browser waits for its imports (0.2-0.3 s on 2 cores
    for the video decoder, the run views, search and the model's code, which Home does not use).
    The warm-up imports them right after it."""
    import shutil

    shutil.copy(VIEWS / "home.py", tmp_path)
    heavy = (
        "av",
        "cv2",
        "torch",
        "core.matching.runs",
        "core.matching.search",
        "core.model.features",
        "dashboard.charts",
    )
    code = (
        "import importlib, logging, sys; logging.disable(logging.CRITICAL)\n"
        "from pathlib import Path\n"
        "from dashboard.warmup import view_modules\n"
        f"[importlib.import_module(m) for m in view_modules(Path({str(tmp_path)!r}))]\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    assert last_line_of(code) == "[]"
    assert "dashboard.state" in view_modules(tmp_path)  # what Home reads through is still there


def test_the_warm_up_also_imports_the_video_decoder_the_pages_use():
    """PyAV is imported on first use (core.lazy), so Home does without it; the warm-up imports it,
    so the Match page's first frame does not wait for it."""
    code = (
        "import logging, sys; logging.disable(logging.CRITICAL)\n"
        "from dashboard.warmup import warm_up\n"
        "warm_up().join(timeout=120)\n"
        "print('av' in sys.modules, 'torch' in sys.modules)\n"
    )
    assert last_line_of(code) == "True False"


def test_a_lazy_module_imports_on_first_use():
    from core.lazy import LazyModule

    sys.modules.pop("colorsys", None)
    colorsys = LazyModule("colorsys")
    assert "colorsys" not in sys.modules and "not imported yet" in repr(colorsys)
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules and "(imported)" in repr(colorsys)


def test_the_warm_up_calls_its_follow_up_after_the_imports():
    seen = []
    thread = warm_up(["colorsys"], then=lambda: seen.append("colorsys" in sys.modules))
    thread.join(timeout=30)
    assert seen == [True]


def test_the_router_warms_up_after_the_first_page_has_run(tmp_path, monkeypatch):
    """Started before the page, the warm-up's imports competed with the server's first page for
    the GIL (Home at 1M images, median of 5: 2.11 s before the page, 1.78 s after it)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import dashboard.prefetch
    import dashboard.warmup

    calls: list[str] = []
    monkeypatch.setattr(dashboard.prefetch, "prefetch", lambda: calls.append("page done"))
    monkeypatch.setattr(dashboard.warmup, "warm_up", lambda then=None: calls.append("warm-up"))
    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "w.sqlite"))
    monkeypatch.setenv("WEBSSL_DATA_DIR", str(tmp_path / "data"))
    st.cache_resource.clear()
    at = AppTest.from_file("../dashboard/Home.py", default_timeout=60).run()
    assert not at.exception
    assert calls == ["page done", "warm-up"]
    st.cache_resource.clear()  # the next test's server starts its own
