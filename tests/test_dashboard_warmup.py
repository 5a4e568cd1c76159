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
