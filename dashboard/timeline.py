"""The Match page's timeline: a canvas in the browser (a Streamlit v2 component).

Why not ``st.plotly_chart``: a Plotly chart's identity in the page follows its figure, so every
new threshold gave a new chart, which the browser built from scratch (~140 ms of a 330 ms
threshold move on a 2-hour run). A keyed component keeps its identity: its script
(``timeline.js``) redraws the same canvas from the new :class:`~dashboard.timeline_data.TimelineSpec`.
A click on it chooses a frame; on a long run, a drag across it chooses a time window.
What it draws is decided in :func:`dashboard.timeline_data.timeline_spec`, which tests read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.clicks import trigger_value
from dashboard.timeline_data import TimelineSpec

_HTML = (
    '<div class="webssl-timeline"><canvas role="img"></canvas><div class="brush"></div>'
    '<div class="tip"></div><div class="legend"></div></div>'
)
_CSS = """
.webssl-timeline { position: relative; font: 12px sans-serif; }
.webssl-timeline canvas { display: block; width: 100%; cursor: crosshair; }
.webssl-timeline .tip { display: none; position: absolute; pointer-events: none; padding: 4px 8px;
  background: rgba(17, 24, 39, 0.9); color: #fff; border-radius: 4px; white-space: nowrap; }
.webssl-timeline .brush { display: none; position: absolute; pointer-events: none;
  background: rgba(31, 119, 180, 0.15); border: 1px solid rgba(31, 119, 180, 0.6); }
.webssl-timeline .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 4px 0 0 52px; }
.webssl-timeline .item { display: inline-flex; align-items: center; gap: 5px; }
.webssl-timeline .mark { display: inline-block; width: 9px; height: 9px; border-radius: 50%; }
.webssl-timeline .mark.diamond { border-radius: 0; transform: rotate(45deg) scale(0.85); }
"""
_JS = Path(__file__).with_name("timeline.js").read_text(encoding="utf-8")

_component = st.components.v2.component("webssl_lens.timeline", html=_HTML, css=_CSS, js=_JS)


def chosen_window(state: Any) -> tuple[float, float] | None:
    """The time window (seconds, from < to) a drag across the timeline chose, if any."""
    value = trigger_value(state, "window")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        return None
    return (min(lo, hi), max(lo, hi))


def timeline(spec: TimelineSpec, *, key: str) -> None:
    """Draw the timeline. What a click or a drag on it chose arrives with the rerun it starts, in
    ``st.session_state[key]``: read it with :func:`dashboard.clicks.chosen_frame` and
    :func:`chosen_window`."""
    _component(
        key=key,
        data=spec.to_data(),
        on_frame_change=lambda: None,
        on_window_change=lambda: None,
        height="content",
    )
