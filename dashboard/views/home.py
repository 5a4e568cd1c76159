"""Home: what the tool does, the database and model in use, and where to go next."""

from __future__ import annotations

import streamlit as st

from core.errors import USER_ERRORS
from dashboard.jobs import format_duration
from dashboard.media import human_size
from dashboard.pages import HOME, PAGES
from dashboard.state import get_index, get_jobs, model_status, settings
from dashboard.widgets import code_span, count_metric, md_escape, page_header

CARD_HEIGHT = 116  # px: a link and a two-line blurb
CARDS_PER_ROW = 3

s = settings()
page_header(
    "WebSSL Lens",
    "Index image collections with Meta's Web-SSL DINO vision transformer, find where those images "
    "appear in videos, and look at what the model's features see.",
)

st.markdown(
    """
1. **Collections**: make a collection and add images (upload or a folder on this server); each image is
   embedded once and stored in the database with a thumbnail.
2. **Match a video**: analyse a video against a collection; see when each image is on screen, tune the
   threshold live, inspect frames and where they matched, evaluate against ground truth, export
   (CSV, JSON, EDL, OpenTimelineIO, WebVTT), render a side-by-side video.
3. **Video library**: index videos without a collection, then find where any image appears in them.
4. **Explore** and **Render**: PCA and similarity maps of the model's patch features, layer by layer,
   as images or videos.
"""
)

left, right = st.columns(2, gap="large")
with left, st.container(border=True):
    st.subheader("Database")
    try:
        stats = get_index().stats()
    except USER_ERRORS as err:
        st.error(f"Cannot open the database {code_span(s.db_path)}: {md_escape(err)}")
        stats = None
    if stats is not None:
        st.markdown(f"{code_span(stats.path)} · {human_size(stats.size_bytes)}")
        c1, c2, c3, c4 = st.columns(4)
        count_metric(c1, "Collections", stats.collections)
        count_metric(c2, "Images", stats.images)
        count_metric(c3, "Videos", stats.videos)
        count_metric(c4, "Runs", stats.runs)
        st.caption(
            f"{stats.cached_frames:,} cached frame embeddings · data folder {code_span(s.data_dir)} · "
            "set `WEBSSL_DB` / `WEBSSL_DATA_DIR` to use others."
        )

with right, st.container(border=True):
    st.subheader("Model")
    status = model_status(s.model_id)
    st.markdown(
        f"{code_span(s.model_id)} · device {code_span(s.device)} · precision {code_span(s.precision)}"
    )
    if status.available:
        st.success(f"Weights available: {md_escape(status.detail)}.", icon=":material/check_circle:")
    else:
        st.warning(
            f"Weights not found: {md_escape(status.detail)}.\n\n{md_escape(status.fix)}",
            icon=":material/warning:",
        )
    st.caption(
        "The model loads once per server process, on first use. Set `WEBSSL_MODEL` to use another one."
    )

st.subheader("Pages")
others = [p for p in PAGES if p is not HOME]
per_row = CARDS_PER_ROW  # wide enough for every title on one line (six in a row cut them at 1400 px)
for start in range(0, len(others), per_row):
    row = others[start : start + per_row]
    for col, page in zip(st.columns(per_row), row, strict=False):
        with col, st.container(border=True, height=CARD_HEIGHT):  # one height: the cards line up
            st.page_link(page.path, label=page.title, icon=page.icon)
            st.caption(page.blurb)

jobs = get_jobs().jobs()[:10]
if jobs:
    st.subheader("Background jobs")
    rows = []
    for job in jobs:
        snap = job.snapshot()
        rows.append(
            {
                "job": snap.id,
                "what": snap.title,
                "status": snap.status,
                "progress": snap.fraction or 0.0,
                "time": format_duration(snap.elapsed_s),
                "message": snap.error or snap.message,
            }
        )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )
