"""The Match page's segments: a list in the browser (a Streamlit v2 component).

Why not ``st.dataframe``: its grid is a large script of its own that the browser loads, compiles
and lays out on every page load; on a 2-hour run it finished drawing ~0.3 s after the rest of
the page (stop 21's probe: a page load took 0.18 s longer with it than without it). This list
is plain HTML drawn by ``segment_list.js``: only the rows in view are in the page, so a run with
thousands of segments costs no more than one with ten. A click on a header sorts by that column
(again: the other way); a click on a row, or Enter on it, inspects the segment's first frame.
What it shows is decided in :func:`dashboard.results.segment_list_spec`, which tests read.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.results import SegmentListSpec

ROW_PX = 34
"""Height of a row (and of the header), in CSS pixels: the list scrolls its rows in place."""
VISIBLE_ROWS = 10
"""Rows in view at once; more scroll."""

_HTML = (
    '<div class="webssl-segments" role="table" aria-label="Segments"><div class="head" role="row"></div>'
    '<div class="body" role="rowgroup"><div class="spacer"></div></div></div>'
)
_CSS = f"""
.webssl-segments {{ font-size: 14px; border: 1px solid rgba(128,128,128,0.25); border-radius: 6px; }}
.webssl-segments .row {{ display: grid; align-items: center; height: {ROW_PX}px; padding: 0 8px;
  grid-template-columns: 40px minmax(120px, 3fr) repeat(2, minmax(64px, 1fr)) repeat(4, minmax(56px, 1fr));
  column-gap: 8px; white-space: nowrap; }}
.webssl-segments .head {{ font-weight: 600; border-bottom: 1px solid rgba(128,128,128,0.25); }}
.webssl-segments .head span {{ cursor: pointer; user-select: none; }}
.webssl-segments .head span.sorted::after {{ content: " ▲"; font-size: 10px; }}
.webssl-segments .head span.sorted.down::after {{ content: " ▼"; }}
.webssl-segments .body {{ position: relative; overflow-y: auto; }}
.webssl-segments .body .row {{ position: absolute; left: 0; right: 0; cursor: pointer; }}
.webssl-segments .body .row:hover {{ background: rgba(128,128,128,0.12); }}
.webssl-segments .body .row.current {{ background: rgba(31,119,180,0.16); }}
.webssl-segments .body .row:focus {{ outline: 2px solid rgba(31,119,180,0.6); outline-offset: -2px; }}
.webssl-segments img {{ width: 28px; height: 28px; object-fit: cover; border-radius: 3px; display: block; }}
.webssl-segments .name {{ overflow: hidden; text-overflow: ellipsis; }}
.webssl-segments .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
"""
_JS = Path(__file__).with_name("segment_list.js").read_text(encoding="utf-8")

_component = st.components.v2.component("webssl_lens.segments", html=_HTML, css=_CSS, js=_JS)


def segment_list(spec: SegmentListSpec, *, key: str) -> None:
    """Draw the segments. The frame a click chose arrives with the rerun it starts, in
    ``st.session_state[key]``: read it with :func:`dashboard.clicks.chosen_frame`."""
    _component(
        key=key,
        data={**spec.to_data(), "row_px": ROW_PX, "visible_rows": VISIBLE_ROWS},
        on_frame_change=lambda: None,
        height="content",
    )
