"""The Match page's launcher: choose a video, a collection and the options; run it in the background.

Every default comes from the core's parameter types (:data:`core.matching.params.DEFAULTS`,
:data:`core.matching.sampling.DEFAULT_SAMPLING`), as in the CLI.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import api
from core.errors import USER_ERRORS, VideoOpenError
from core.matching.batch import BatchReport, batch_files, match_batch
from core.matching.params import DEFAULTS, MatchParams
from core.matching.pipeline import RunSummary
from core.matching.regions import DEFAULT_REGIONS, large_collection_note
from core.matching.runs import RunView
from core.matching.sampling import DEFAULT_SAMPLING
from core.media.video import probe_video
from dashboard import keys
from dashboard.jobs import with_index, with_model
from dashboard.results import RATE, SAMPLING_MODES, STRIDE, make_sampling
from dashboard.state import extractor_loader, on_demand_loader, settings
from dashboard.widgets import (
    follow_job,
    keep_values,
    md_escape,
    outcome_notice,
    pick_collection,
    show_error,
    show_notice,
    start_job,
    video_source,
)
from db import Index


def follow() -> bool:
    """Take a finished match job's outcome (the new run is selected); True while one runs."""
    snap = follow_job(keys.MATCH_JOB)
    if snap is not None:
        if snap.status == "done" and isinstance(snap.result, BatchReport):  # a folder
            report: BatchReport = snap.result
            st.session_state[keys.MATCH_BATCH_REPORT] = report
            runs = [item.run_id for item in report.items if item.run_id is not None]
            if runs:
                st.session_state[keys.RUN] = runs[-1]
            outcome_notice(keys.MATCH_JOB, snap, f"Batch finished: {md_escape(report.summary())}.")
        elif snap.status == "done" and isinstance(snap.result, RunView):  # a run searched again
            view: RunView = snap.result
            st.session_state[keys.RUN] = view.run.id
            outcome_notice(
                keys.MATCH_JOB,
                snap,
                f"Run #{view.run.id}: {md_escape(view.run.collection_name or '')} searched as it is now, "
                "from the run's cached frames.",
            )
        elif snap.status == "done":
            # a core.api.MatchRun, or a run matched again (core.matching.refresh.match_run_again)
            summary = snap.result if isinstance(snap.result, RunSummary) else snap.result.summary
            st.session_state[keys.RUN] = summary.run_id
            outcome_notice(
                keys.MATCH_JOB,
                snap,
                f"Run #{summary.run_id} finished: {summary.frames_recorded:,} frames, "
                f"{summary.matched_frames:,} matched, {len(summary.view.segments)} segments in "
                f"{summary.elapsed_s:.1f} s.",
            )
        else:
            outcome_notice(keys.MATCH_JOB, snap, "")
    show_notice(keys.MATCH_JOB)
    report = st.session_state.get(keys.MATCH_BATCH_REPORT)
    if report is not None:
        with st.expander(f"Last batch: {len(report.items)} videos", expanded=True):
            st.dataframe(
                [
                    {
                        "video": Path(item.path).name,
                        "status": item.status,
                        "run": item.run_id,
                        "frames": item.frames,
                        "analysed": item.analysed,
                        "matched": item.matched,
                        "segments": item.segments,
                        "reason": item.reason,
                    }
                    for item in report.items
                ],
                hide_index=True,
                width="stretch",
            )
    return keys.MATCH_JOB in st.session_state


def form_defaults() -> dict[str, object]:
    """The form's first values: the CLI's defaults (core.matching.params, core.matching.sampling)."""
    return {
        keys.MATCH_STRIDE: STRIDE,
        keys.MATCH_FPS: RATE,
        keys.MATCH_MAX_INTERVAL: float(DEFAULT_SAMPLING.max_interval_s),
        keys.MATCH_TOP_K: DEFAULTS.top_k,
        keys.MATCH_THRESHOLD: float(DEFAULTS.threshold),
        keys.MATCH_GAP: float(DEFAULTS.gap_tolerance_s),
        keys.MATCH_MIN_DURATION: float(DEFAULTS.min_duration_s),
        keys.MATCH_MAX_FRAMES: 0,
    }


def show(index: Index, *, expanded: bool, running: bool) -> None:
    """The "New match run" form, drawn only while it is open (its widgets cost a page load of a
    run about 0.1 s in the browser); closed, it keeps its values (:data:`keys.MATCH_FORM`), and
    it stays drawn while it holds an upload, which could not be restored."""
    launcher = st.expander(
        "New match run",
        expanded=expanded,
        icon=":material/play_circle:",
        key=keys.MATCH_LAUNCHER,
        on_change="rerun",
    )
    if not launcher.open and st.session_state.get(keys.source_upload(keys.MATCH_VIDEO)) is None:
        keep_values(keys.MATCH_FORM)
        st.session_state[keys.MATCH_FORM_DRAWN] = False
        return
    if not st.session_state.get(keys.MATCH_FORM_DRAWN):
        # the browser forgot the values with the widgets: values set through Session State
        # travel with the widgets drawn again
        keep_values(keys.MATCH_FORM)
        st.session_state[keys.MATCH_FORM_DRAWN] = True
    for name, value in form_defaults().items():  # the widgets take their first values from here
        st.session_state.setdefault(name, value)
    with launcher:
        src_col, opt_col = st.columns([1, 1], gap="large")
        with src_col:
            st.markdown("**Video**")
            video_path = video_source(keys.MATCH_VIDEO, folders=True)
            files = batch_files([video_path]) if video_path is not None and video_path.is_dir() else None
            if files is not None:
                st.caption(
                    f"{len(files)} video files in this folder and below: one run each; videos matched "
                    "before with these options are skipped, unfinished ones resumed."
                )
            st.markdown("**Collection**")
            coll = pick_collection(index, key=keys.MATCH_COLLECTION, require_images=True)
        with opt_col:
            st.markdown("**Options**")
            mode = st.selectbox(
                "Frames to analyse",
                list(SAMPLING_MODES),
                format_func=SAMPLING_MODES.get,
                key=keys.MATCH_SAMPLING,
            )
            stride, fps, max_interval = STRIDE, RATE, DEFAULT_SAMPLING.max_interval_s
            if mode == "stride":
                stride = st.number_input("Analyse every N-th frame", 1, 1000, key=keys.MATCH_STRIDE)
            elif mode == "fps":
                fps = st.number_input("Frames per second", 0.1, 120.0, step=0.5, key=keys.MATCH_FPS)
            elif mode == "auto":
                max_interval = st.number_input(
                    "Re-check at least every (s)",
                    0.1,
                    60.0,
                    step=0.5,
                    key=keys.MATCH_MAX_INTERVAL,
                    help="Frames that barely change inherit the last result; this forces a fresh look this often.",
                )
            a, b = st.columns(2)
            top_k = a.number_input("Top-k images per frame", 1, 50, key=keys.MATCH_TOP_K)
            threshold = b.slider(
                "Threshold",
                0.0,
                1.0,
                step=0.01,
                key=keys.MATCH_THRESHOLD,
                help="A frame matches when its best score reaches this. You can move it after the run, instantly.",
            )
            c, d = st.columns(2)
            gap = c.number_input(
                "Join gaps up to (s)",
                0.0,
                60.0,
                step=0.25,
                key=keys.MATCH_GAP,
            )
            min_duration = d.number_input(
                "Drop segments shorter than (s)",
                0.0,
                600.0,
                step=0.5,
                key=keys.MATCH_MIN_DURATION,
            )
            max_frames = st.number_input(
                "Stop after N frames (0 = whole video)", 0, 10_000_000, step=100, key=keys.MATCH_MAX_FRAMES
            )
            regions = st.checkbox(
                "Also look for images filling only part of the frame (regions)",
                key=keys.MATCH_REGIONS,
                help="Posters on a wall, picture-in-picture, a photo beside a presenter. Each analysed "
                "frame costs more (see the README's benchmark); the region box is stored with the run.",
            )
            if regions and coll is not None and (note := large_collection_note(coll.image_count)):
                st.warning(note)
        go = st.button("Run match", type="primary", disabled=coll is None or running, key=keys.MATCH_GO)
    if not go or coll is None:
        return
    if video_path is None:
        st.warning("Choose a video first: upload one or type its path on the server.")
        return
    if files == []:
        st.warning(f"No video files in {md_escape(video_path)}: pick a folder with videos in it.")
        return
    try:
        if files is None:
            info = probe_video(video_path, compute_hash=False)
            if info.frame_count == 0 and info.duration_s == 0:
                raise VideoOpenError(str(video_path), "the video has no frames")
        options = {
            "sampling": make_sampling(mode, stride=stride, fps=fps, max_interval_s=max_interval),
            "params": MatchParams(
                threshold=threshold, top_k=int(top_k), gap_tolerance_s=gap, min_duration_s=min_duration
            ),
            "max_frames": int(max_frames) or None,
            "regions": DEFAULT_REGIONS if regions else None,
        }
    except VideoOpenError as err:
        show_error(err, "Upload another file or check the path.")
        return
    except USER_ERRORS as err:
        show_error(err)
        return
    if files is not None:  # a folder: every video in it, one run each (python -m core match FOLDER)
        st.session_state.pop(keys.MATCH_BATCH_REPORT, None)
        # the collection's own model, loaded only if a video is left to match
        on_demand = on_demand_loader(coll.model_id)
        start_job(
            keys.MATCH_JOB,
            "match-batch",
            f"Matching {len(files)} videos of {video_path.name or video_path} against {coll.name}",
            with_index(str(settings().db_path), with_model(on_demand, match_batch)),
            [str(video_path)],
            coll.name,
            **options,
        )
    else:
        start_job(
            keys.MATCH_JOB,
            "match",
            f"Matching {Path(video_path).name} against {coll.name}",
            api.match,
            video_path,
            coll.name,
            db=str(settings().db_path),  # the job opens its own connection
            model=extractor_loader(coll.model_id),  # the collection's own, loaded as the job's first stage
            **options,
        )
    st.rerun()
