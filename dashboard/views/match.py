"""Match a video: run a match in the background, then explore the run — timeline, threshold,
frame inspector, segments, heat map, histogram, exports and a rendered side-by-side video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from core import config
from core.errors import ModelLoadError, VideoOpenError, WebSSLError
from core.export import csv_text, run_to_dict
from core.matching import MatchParams
from core.runs import match_video
from core.video import format_time, probe_video
from dashboard import charts
from dashboard.results import (
    SAMPLING_MODES,
    frame_matches,
    image_labels,
    make_sampling,
    row_of_frame,
    run_label,
    run_summary,
    segment_rows,
)
from dashboard.state import get_index, get_run_view, get_thumbnails, load_extractor, settings, video_frame
from dashboard.widgets import (
    follow_job,
    md_escape,
    outcome_notice,
    page_header,
    pick_collection,
    set_notice,
    show_notice,
    start_job,
    video_source,
)
from db import Index, NotFoundError

MATCH_JOB = "match-job"
RENDER_JOB = "match-render-job"
RUN_KEY = "match-run"

s = settings()
index = get_index()
page_header("Match a video", "Find where the images of a collection appear in a video, frame by frame.")

# -- jobs that just finished ----------------------------------------------------------------------
snap = follow_job(MATCH_JOB)
if snap is not None:
    if snap.status == "done":
        summary = snap.result
        st.session_state[RUN_KEY] = summary.run_id
        outcome_notice(
            MATCH_JOB,
            snap,
            f"Run #{summary.run_id} finished: {summary.frames_recorded:,} frames, {summary.matched_frames:,} "
            f"matched, {len(summary.segments)} segments in {summary.elapsed_s:.1f} s.",
        )
    else:
        outcome_notice(MATCH_JOB, snap, "")
show_notice(MATCH_JOB)
show_notice("match-admin", once=True)
match_running = MATCH_JOB in st.session_state

runs = index.list_runs(limit=300)

# -- a new run -------------------------------------------------------------------------------------
with st.expander("New match run", expanded=not runs or match_running, icon=":material/play_circle:"):
    src_col, opt_col = st.columns([1, 1], gap="large")
    with src_col:
        st.markdown("**Video**")
        video_path = video_source("match-video")
        st.markdown("**Collection**")
        coll = pick_collection(index, key="match-collection", require_images=True)
    with opt_col:
        st.markdown("**Options**")
        mode = st.selectbox(
            "Frames to analyse", list(SAMPLING_MODES), format_func=SAMPLING_MODES.get, key="match-sampling"
        )
        stride, fps, max_interval = 5, 2.0, 1.0
        if mode == "stride":
            stride = st.number_input("Analyse every N-th frame", 1, 1000, 5, key="match-stride")
        elif mode == "fps":
            fps = st.number_input("Frames per second", 0.1, 120.0, 2.0, step=0.5, key="match-fps")
        elif mode == "auto":
            max_interval = st.number_input(
                "Re-check at least every (s)",
                0.1,
                60.0,
                1.0,
                step=0.5,
                key="match-max-interval",
                help="Frames that barely change inherit the last result; this forces a fresh look this often.",
            )
        a, b = st.columns(2)
        top_k_value = a.number_input("Top-k images per frame", 1, 50, config.DEFAULT_TOP_K, key="match-topk")
        threshold0 = b.slider(
            "Threshold",
            0.0,
            1.0,
            float(config.DEFAULT_THRESHOLD),
            0.01,
            key="match-threshold0",
            help="A frame matches when its best score reaches this. You can move it after the run, instantly.",
        )
        c, d = st.columns(2)
        gap0 = c.number_input("Join gaps up to (s)", 0.0, 60.0, 0.5, step=0.25, key="match-gap0")
        min_dur0 = d.number_input(
            "Drop segments shorter than (s)", 0.0, 600.0, 0.0, step=0.5, key="match-min0"
        )
        max_frames = st.number_input(
            "Stop after N frames (0 = whole video)", 0, 10_000_000, 0, step=100, key="match-max-frames"
        )
    go_clicked = st.button(
        "Run match", type="primary", disabled=coll is None or match_running, key="match-go"
    )
    if go_clicked and video_path is None:
        st.warning("Choose a video first: upload one or type its path on the server.")
    if go_clicked and video_path is not None and coll is not None:
        try:
            info = probe_video(video_path, compute_hash=False)
            if info.frame_count == 0 and info.duration_s == 0:
                raise VideoOpenError(str(video_path), "the video has no frames")
            sampling = make_sampling(mode, stride=stride, fps=fps, max_interval_s=max_interval)
            params = MatchParams(
                threshold=threshold0, top_k=int(top_k_value), gap_tolerance_s=gap0, min_duration_s=min_dur0
            )
            fx = load_extractor(coll.model_id)
        except VideoOpenError as err:
            st.error(f"{err} — upload another file or check the path.")
        except ModelLoadError as err:
            st.error(str(err))
        except WebSSLError as err:
            st.error(str(err))
        else:
            db_path, name, limit = str(s.db_path), coll.name, int(max_frames) or None

            def work(job):
                with Index(db_path) as idx:
                    return match_video(
                        idx,
                        video_path,
                        name,
                        fx,
                        sampling=sampling,
                        params=params,
                        max_frames=limit,
                        progress=job.progress,
                        cancel=job.cancel_event,
                    )

            start_job(MATCH_JOB, "match", f"Matching {Path(video_path).name} against {name}", work)
            st.rerun()

if not runs:
    st.info("No runs yet: pick a video and a collection above and press **Run match**.")
    st.stop()

# -- pick a run --------------------------------------------------------------------------------------
by_id = {r.id: r for r in runs}
if st.session_state.get(RUN_KEY) not in by_id:
    st.session_state[RUN_KEY] = runs[0].id
run_id = st.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i]), key=RUN_KEY)
try:
    base = get_run_view(run_id)
except NotFoundError as err:
    st.error(f"{err}. It may have been deleted; pick another run.")
    st.stop()
run, video, res = base.run, base.video, base.results

st.caption(
    f"Video `{video.path}` ({video.width}×{video.height}, {video.fps:.3g} fps, {format_time(video.duration_s)}) · "
    f"collection **{run.collection_name or '(deleted)'}** · model `{run.model_id}` · {run_summary(base)}"
)
if run.status == "running":
    st.info("This run is still in progress; what is shown is what has been stored so far.")
elif run.status in ("cancelled", "failed"):
    st.warning(f"This run was {run.status}: it holds results for the frames analysed before that.")
if len(res) == 0 or res.k == 0:
    st.warning(
        "This run has no frame results to show (it stopped before the first batch). Run the match again."
    )
    st.stop()

# -- threshold and segment options: relabel from stored scores, no model ----------------------------
p = base.params
c1, c2, c3 = st.columns([3, 1, 1])
threshold = c1.slider(
    "Threshold",
    0.0,
    1.0,
    float(min(max(p.threshold, 0.0), 1.0)),
    0.005,
    key=f"thr-{run_id}",
    help="Frames whose best score reaches this count as matched. Segments are recomputed instantly.",
)
gap = c2.number_input(
    "Join gaps up to (s)", 0.0, 60.0, float(p.gap_tolerance_s), step=0.25, key=f"gap-{run_id}"
)
min_dur = c3.number_input(
    "Min. segment (s)", 0.0, 600.0, float(p.min_duration_s), step=0.5, key=f"min-{run_id}"
)
view = base.relabel(threshold, gap, min_dur)
labels = image_labels(view)
matched = view.matched()
best = view.best_score

m1, m2, m3, m4 = st.columns(4)
m1.metric("Matched frames", f"{int(matched.sum()):,} / {len(res):,}")
m2.metric("Segments", f"{len(view.segments):,}")
m3.metric("Images seen", f"{len({s_.image_id for s_ in view.segments}):,}")
m4.metric("Best score", f"{np.nanmax(best):.3f}" if np.isfinite(best).any() else "–")

# -- which frame is inspected: slider, a click on the timeline, or a segment row ---------------------
frame_key, chart_key, table_key = f"frame-{run_id}", f"timeline-{run_id}", f"segments-{run_id}"
fi, ts = res.frame_index, res.time_s
if frame_key not in st.session_state:
    st.session_state[frame_key] = int(fi[int(np.nanargmax(np.where(np.isfinite(best), best, -np.inf)))])


def _jump(source_key: str, frame: int | None) -> None:
    """Apply a click once: a selection stays in the widget state across reruns."""
    if frame is None:
        return
    seen_key = f"{source_key}:applied"
    if st.session_state.get(seen_key) != frame:
        st.session_state[seen_key] = frame
        st.session_state[frame_key] = int(fi[row_of_frame(fi, frame)])


_jump(chart_key, charts.selected_frame(st.session_state.get(chart_key)))
table_state = st.session_state.get(table_key)
if table_state is not None:
    rows_sel = (table_state.get("selection") or {}).get("rows") or []
    if rows_sel and rows_sel[0] < len(view.segments):
        _jump(table_key, view.segments[rows_sel[0]].start_frame)

row = row_of_frame(fi, st.session_state[frame_key])
fig = charts.timeline_figure(ts, fi, best, view.best_image, labels, threshold, selected_time=float(ts[row]))
st.plotly_chart(fig, key=chart_key, on_select="rerun", selection_mode="points", config={"displaylogo": False})
st.caption("Click a point to inspect that frame.")

# -- frame inspector ------------------------------------------------------------------------------------
with st.container(border=True):
    st.slider(
        "Frame",
        int(fi[0]),
        int(max(fi[-1], fi[0] + 1)),
        key=frame_key,
        format="frame %d",
        help="The nearest frame with a result is shown.",
    )
    row = row_of_frame(fi, st.session_state[frame_key])
    frame_no, t_s, src = int(fi[row]), float(ts[row]), int(res.source_frame[row])
    left, right = st.columns([3, 4], gap="large")
    with left:
        note = "" if src == frame_no else f" · result inherited from frame {src}"
        caption = f"Frame {frame_no} at {format_time(t_s)}{note}"
        try:
            st.image(video_frame(video.path, frame_no, t_s), caption=caption, width="stretch")
        except VideoOpenError as err:
            st.warning(f"Cannot show the frame: {err}")
    with right:
        matches = frame_matches(view, row)
        verdict = "matched" if matched[row] else "no match (below threshold)"
        st.markdown(f"**Top {len(matches)} images** · {verdict}")
        thumbs = get_thumbnails([m.image_id for m in matches])
        cols = st.columns(max(1, min(5, len(matches))))
        for n, m in enumerate(matches):
            with cols[n % len(cols)]:
                if m.image_id in thumbs:
                    st.image(thumbs[m.image_id], width="stretch")
                name = f"#{m.rank} {md_escape(m.name)}"
                if m.rank == 1 and matched[row]:
                    name = f":green[**{name}**]"
                st.caption(f"{name}  \n**{m.score:.3f}**")

# -- tables and charts -----------------------------------------------------------------------------------
seg_tab, heat_tab, hist_tab, out_tab = st.tabs(["Segments", "Heat map", "Score histogram", "Export & render"])
with seg_tab:
    if not view.segments:
        st.info("No segments at this threshold: lower it (see the histogram) or allow longer gaps.")
    else:
        st.dataframe(
            # previews travel inside the table: skip them when there are very many segments
            segment_rows(
                view,
                get_thumbnails([sg.image_id for sg in view.segments]) if len(view.segments) <= 300 else None,
            ),
            key=table_key,
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            width="stretch",
            column_config={
                "preview": st.column_config.ImageColumn("preview", width="small"),
                "peak": st.column_config.NumberColumn(format="%.3f"),
                "mean": st.column_config.NumberColumn(format="%.3f"),
            },
        )
        st.caption("Select a row to inspect its first frame.")
with heat_tab:
    st.plotly_chart(
        charts.heatmap_figure(ts, res.image_ids, res.scores, labels, top_n=15),
        key=f"heat-{run_id}",
        config={"displaylogo": False},
    )
    st.caption(
        "Each row is one of the 15 images with the highest peak score; empty where it was not in a frame's top-k."
    )
with hist_tab:
    st.plotly_chart(
        charts.histogram_figure(best, threshold), key=f"hist-{run_id}", config={"displaylogo": False}
    )
    st.caption("A good threshold sits in the gap between the noise (left) and the true matches (right).")

with out_tab:
    stem = f"run-{run_id}-t{threshold:.3f}"
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download CSV",
        data=lambda: csv_text(view),
        file_name=f"{stem}.csv",
        mime="text/csv",
        icon=":material/download:",
        key=f"csv-{run_id}",
    )
    d2.download_button(
        "Download JSON",
        data=lambda: json.dumps(run_to_dict(view), indent=2, allow_nan=False),
        file_name=f"{stem}.json",
        mime="application/json",
        icon=":material/download:",
        key=f"json-{run_id}",
    )
    st.divider()
    st.markdown("**Side-by-side video** of the frames and their best matching image, at this threshold")
    out_path = s.renders_dir / f"match-{stem}.mp4"
    done = follow_job(RENDER_JOB)
    if done is not None:
        outcome_notice(
            RENDER_JOB, done, f"Rendered {done.result.frames if done.status == 'done' else 0} frames."
        )
    show_notice(RENDER_JOB)
    r1, r2 = st.columns([1, 3])
    max_render = r1.number_input(
        "Max. frames (0 = all)", 0, 1_000_000, 0, step=100, key=f"render-max-{run_id}"
    )
    if r1.button("Render video", disabled=RENDER_JOB in st.session_state, key=f"render-{run_id}"):
        if not Path(video.path).is_file():
            st.error(f"The video `{video.path}` is gone: rendering needs the original file.")
        else:
            try:
                from core.render import render_match_video
            except ImportError:
                st.error("Rendering is not available in this installation (core.render is missing).")
            else:
                db_path, thr, limit = str(s.db_path), threshold, int(max_render) or None

                def render(job):
                    with Index(db_path) as idx:
                        return render_match_video(
                            idx,
                            run_id,
                            out_path,
                            threshold=thr,
                            max_frames=limit,
                            progress=job.progress,
                            cancel=job.cancel_event,
                        )

                start_job(RENDER_JOB, "render", f"Rendering run #{run_id}", render)
                st.rerun()
    if out_path.is_file():
        with r2:
            st.video(str(out_path))
            st.download_button(
                "Download MP4",
                data=lambda: out_path.read_bytes(),
                file_name=out_path.name,
                mime="video/mp4",
                key=f"mp4-{run_id}",
            )

with st.expander("Delete this run", icon=":material/delete:"):
    st.caption("Removes the run's results from the database (the video and the collection stay).")

    def _delete_run(rid: int) -> None:
        try:
            get_index().delete_run(rid)
        except WebSSLError as err:
            set_notice("match-admin", "error", str(err))
            return
        st.session_state.pop(RUN_KEY, None)
        set_notice("match-admin", "success", f"Deleted run #{rid}.")

    st.button("Delete run", on_click=_delete_run, args=(run_id,), key=f"delete-run-{run_id}")
