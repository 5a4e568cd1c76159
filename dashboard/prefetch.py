"""Load the run page's heaviest browser code while the user is on another page.

Streamlit loads each kind of element's code the first time a page shows one. The Match page is
the first to show custom components (the timeline, the segments), sliders and metrics (and, when
the timeline was a Plotly chart, a 4.6 MB script, and the segments a data grid), so a run's first opening in a browser tab paid
for fetching, compiling and running all of it: about 1.7 s of the 2.3 s it took on 2 cores
(``python -m bench.dashboard``). Every page therefore asks the browser, when it is idle, to
import those same modules, one at a time; a later visit to the Match page finds them loaded.

The modules are Streamlit's own, found by name in the installed package (their file names carry
a content hash that changes with each Streamlit release). Where one is missing (a release that
renamed it), nothing is prefetched for it and the page loads it as before: slower, never broken.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import streamlit as st

logger = logging.getLogger(__name__)

STATIC_JS = Path(st.__file__).resolve().parent / "static" / "static" / "js"
ELEMENTS = (
    "BidiComponent", "Slider", "NumberInput", "Metric", "ImageList",
    "Selectbox", "Checkbox", "Button", "Radio", "FileUploader",
)  # fmt: skip
"""The element modules a run shows when it opens (the Match page) and the Home page does not.
Not Plotly's (4.6 MB): a run opens without a Plotly chart (the timeline is a component), and
compiling it blocked the page for about 0.6 s: a click in that time waited for it. Not the data
grid's: a run's segments are a component too."""

_SCRIPT = """<script>
(() => {
  if (window.__weblensPrefetch) return;  // once per tab: modules stay loaded across pages
  window.__weblensPrefetch = true;
  const entry = document.querySelector('script[type="module"][src*="static/js/index."]');
  const base = entry ? entry.src : new URL("static/js/", document.baseURI).href;
  // one module per idle moment, so that a click soon after the page loads does not wait
  // for all of them to compile
  const idle = (fn) => ("requestIdleCallback" in window ? requestIdleCallback(fn, {timeout: 4000}) : setTimeout(fn, 200));
  const next = (names) => {
    if (!names.length) return;
    idle(() => import(new URL(names[0], base).href).catch(() => {}).finally(() => next(names.slice(1))));
  };
  next(NAMES);
})();
</script>"""


@functools.cache
def chunk_names(js_dir: Path = STATIC_JS, elements: tuple[str, ...] = ELEMENTS) -> tuple[str, ...]:
    """The installed Streamlit's file name of each element's module (``PlotlyChart.<hash>.js``)."""
    names = []
    for element in elements:
        found = sorted(p.name for p in js_dir.glob(f"{element}.*.js"))
        if len(found) == 1:
            names.append(found[0])
        else:
            logger.info("not prefetching %s: %d matching modules in %s", element, len(found), js_dir)
    return tuple(names)


def script(names: tuple[str, ...]) -> str:
    """The ``<script>`` that imports ``names`` (relative to Streamlit's own modules) when idle."""
    return _SCRIPT.replace("NAMES", json.dumps(list(names)))


def prefetch() -> None:
    """Add the prefetching script to the page: after everything else, where its empty element
    takes no visible room (in the sidebar it drew a divider)."""
    names = chunk_names()
    if names:
        st.html(script(names), unsafe_allow_javascript=True, width="content")
