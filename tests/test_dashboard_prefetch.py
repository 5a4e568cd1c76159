"""dashboard.prefetch: every page has the browser load the run page's code when idle."""

from __future__ import annotations

import json

import pytest

from bench.dashboard import CHROMIUM, CHROMIUM_ARGS
from dashboard import prefetch


def test_every_element_module_is_found_in_the_installed_streamlit():
    """A Streamlit release that renames a module fails here, not silently in users' browsers."""
    names = prefetch.chunk_names()
    assert [n.split(".")[0] for n in names] == list(prefetch.ELEMENTS)
    assert all((prefetch.STATIC_JS / n).is_file() and n.endswith(".js") for n in names)


def test_a_missing_or_ambiguous_module_is_left_out(tmp_path, caplog):
    for name in ("PlotlyChart.aaa.js", "Slider.bbb.js", "Slider.ccc.js", "PlotlyChart.css"):
        (tmp_path / name).write_text("")
    with caplog.at_level("INFO", logger="dashboard.prefetch"):
        names = prefetch.chunk_names(tmp_path, ("PlotlyChart", "Slider", "Metric"))
    assert names == ("PlotlyChart.aaa.js",)
    assert "not prefetching Slider: 2 matching" in caplog.text and "Metric: 0" in caplog.text


def test_the_script_imports_the_modules_once_per_tab():
    html = prefetch.script(("PlotlyChart.aaa.js", "DataFrame.b-c.js"))
    assert html.startswith("<script>") and html.rstrip().endswith("</script>")
    assert json.dumps(["PlotlyChart.aaa.js", "DataFrame.b-c.js"]) in html
    assert "if (window.__weblensPrefetch) return;" in html and "requestIdleCallback" in html
    assert "PlotlyChart" not in prefetch.ELEMENTS  # 0.6 s of compiling; a run opens without Plotly


def test_every_page_ends_with_the_script(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "p.sqlite"))
    monkeypatch.setenv("WEBSSL_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file("../dashboard/Home.py", default_timeout=60).run()
    assert not at.exception
    last = list(at.main.children.values())[-1]
    assert last.type == "html" and last.proto.body == prefetch.script(prefetch.chunk_names())
    assert len(at.get("html")) == 1  # nowhere else (in the sidebar it drew a divider)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_the_home_page_loads_the_run_pages_code_one_module_at_a_time(tmp_path, tiny_model_dir):
    from playwright.sync_api import sync_playwright

    from bench.dashboard import serve, settle

    errors: list[str] = []
    with serve(tmp_path / "p.sqlite", tmp_path / "data", str(tiny_model_dir), tmp_path, tmp_path / "log") as (
        url,
        _pid,
    ):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(url)
                settle(page)
                page.wait_for_function(
                    """(names) => names.every(n => performance.getEntriesByType('resource')
                                                      .some(r => r.name.endsWith('/' + n)))""",
                    arg=list(prefetch.chunk_names()),
                    timeout=30_000,
                )
                assert page.evaluate("() => window.__weblensPrefetch") is True
                # one at a time: a click between two modules does not wait for all of them (a
                # module the page itself loaded, such as Home's metrics, may come earlier)
                spans = page.evaluate(
                    """(names) => names.map(n => performance.getEntriesByType('resource')
                                                  .find(r => r.name.endsWith('/' + n)))
                                       .map(r => [r.startTime, r.responseEnd])""",
                    list(prefetch.chunk_names()),
                )
                ours = sorted(span for span in spans if span[0] >= spans[0][0])
                assert len(ours) >= len(spans) - 3
                assert all(later[0] >= earlier[1] for earlier, later in zip(ours, ours[1:], strict=False))
            finally:
                browser.close()
    assert not errors
