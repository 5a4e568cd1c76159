"""Video library: index videos from a server folder (in the background), see what is indexed, and
find where query images appear across all of it (``python -m core index-videos`` / ``find``)."""

from __future__ import annotations

import streamlit as st

from core.errors import USER_ERRORS, ImageLoadError
from core.matching.library import LibraryReport, find_images, index_videos, library_keys
from core.matching.params import DEFAULTS, MatchParams
from core.media.images import decode_image_bytes
from core.media.video import format_time
from dashboard import keys
from dashboard.jobs import with_index
from dashboard.server_paths import ForbiddenPathError, resolve_allowed
from dashboard.state import get_index, load_extractor, settings
from dashboard.widgets import (
    IMAGE_TYPES,
    code_span,
    count_metric,
    follow_job,
    md_escape,
    outcome_notice,
    page_header,
    show_error,
    show_notice,
    start_job,
)

index = get_index()
page_header(
    "Video library",
    "Videos indexed without a collection (and every matched video): find where any image appears in them.",
)

snap = follow_job(keys.LIBRARY_JOB)
if snap is not None:
    report: LibraryReport | None = snap.result if snap.status == "done" else None
    outcome_notice(
        keys.LIBRARY_JOB, snap, f"Indexing finished: {md_escape(report.summary())}." if report else ""
    )
    st.session_state.pop(keys.LIBRARY_FOUND, None)
show_notice(keys.LIBRARY_JOB)

entries = index.list_library_videos()
hours = sum(e.video.duration_s for e in entries) / 3600
left, mid, right = st.columns(3)
count_metric(left, "Indexed videos", len({e.video.sha256 for e in entries}))
mid.metric("Hours of video", f"{hours:,.1f}")
count_metric(right, "Cached frames (all videos)", index.stats().cached_frames)
if entries:
    with st.expander("Indexed videos"):
        st.dataframe(
            [
                {
                    "video": e.video.path,
                    "duration": format_time(e.video.duration_s),
                    "frames analysed": e.frames,
                    "complete": e.complete,
                }
                for e in entries
            ],
            hide_index=True,
            width="stretch",
        )

with st.expander("Index videos from a folder on the server", expanded=not entries):
    folder = st.text_input(
        "Folder or video path", key=keys.LIBRARY_FOLDER, placeholder="/data/videos"
    ).strip()
    running = keys.LIBRARY_JOB in st.session_state
    if st.button("Index videos", disabled=running, key=keys.LIBRARY_INDEX_BUTTON):
        try:
            path = resolve_allowed(folder) if folder else None
            if path is None or not path.exists():
                st.warning(
                    f"Type the path of a folder or video on the server{' that exists' if folder else ''}."
                )
            else:
                fx = load_extractor()
                start_job(
                    keys.LIBRARY_JOB,
                    "index-videos",
                    f"Indexing videos of {path.name or path}",
                    with_index(str(settings().db_path), index_videos),
                    [str(path)],
                    fx,
                )
                st.rerun()
        except ForbiddenPathError as err:
            show_error(err)
        except USER_ERRORS as err:
            show_error(err)
    st.caption(
        f"Model: {code_span(settings().model_id)} · frames are sampled as in a match run (change-driven); "
        "videos already indexed are skipped; cancelling keeps finished batches."
    )

st.subheader("Find images in the videos")
uploads = st.file_uploader(
    "Query images", type=IMAGE_TYPES, accept_multiple_files=True, key=keys.LIBRARY_QUERIES
)
threshold = st.slider("Threshold (cosine)", 0.0, 1.0, DEFAULTS.threshold, 0.01, key=keys.LIBRARY_THRESHOLD)
if not uploads:
    st.stop()
try:
    queries = [decode_image_bytes(f.getvalue(), f.name) for f in uploads]
    fx = load_extractor()
    if not library_keys(index, fx):
        st.info("No video frames are indexed for this model yet: index a folder of videos above.")
        st.stop()
    wanted = (tuple(f.file_id for f in uploads), threshold)
    cached = st.session_state.get(keys.LIBRARY_FOUND)
    if cached is None or cached[0] != wanted:
        with st.spinner("Searching the library…"):
            found = find_images(
                index,
                fx,
                [q.rgb for q in queries],
                [f.name for f in uploads],
                params=MatchParams(threshold=threshold),
            )
        st.session_state[keys.LIBRARY_FOUND] = (wanted, found)
    found = st.session_state[keys.LIBRARY_FOUND][1]
except ImageLoadError as err:
    st.error(f"Cannot read this image: {md_escape(err.reason)}. Upload a JPEG, PNG, WebP, … file.")
    st.stop()
except USER_ERRORS as err:
    show_error(err)
    st.stop()

for query, result in zip(queries, found, strict=True):
    pic, table = st.columns([1, 5], gap="medium")
    pic.image(query.rgb, caption=result.query, width="stretch")
    with table:
        if not result.appearances:
            st.markdown(f"**{md_escape(result.query)}**: in no indexed video at ≥ {threshold:.2f}.")
            continue
        st.markdown(f"**{md_escape(result.query)}**: in {len(result.appearances)} video(s)")
        st.dataframe(
            [
                {
                    "video": a.video.path,
                    "segments": ", ".join(
                        f"{format_time(s.start_s)}–{format_time(s.end_s)}" for s in a.segments
                    ),
                    "seen": format_time(a.seconds),
                    "peak": round(a.peak_score, 3),
                }
                for a in result.appearances
            ],
            hide_index=True,
            width="stretch",
        )
