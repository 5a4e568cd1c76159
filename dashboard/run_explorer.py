"""The Match page's explorer: one stored run, re-labelled live from its stored scores.

Threshold, gap and minimum duration give a :class:`~core.matching.runs.RunView`; everything
below (metrics, timeline, inspector, segments, heat map, histogram, evaluation, downloads, the
rendered video) is drawn from that one view, so they always agree.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import streamlit as st

from core import api
from core.errors import USER_ERRORS, VideoOpenError
from core.matching.export import EXPORT_FORMATS
from core.matching.runs import RunView, search_again
from core.media.files import video_file_state
from core.media.video import format_time
from core.visual.colours import image_colour, image_rgb
from core.visual.explain import draw_box
from dashboard import charts, keys, run_evaluation, timeline_data
from dashboard.clicks import chosen_frame
from dashboard.jobs import with_index, with_model
from dashboard.results import (
    frame_matches,
    image_labels,
    row_of_frame,
    run_label,
    run_summary,
    segment_list_spec,
)
from dashboard.segment_list import segment_list
from dashboard.state import (
    explained_frame,
    get_index,
    get_run_view,
    get_thumbnails,
    model_loader,
    previews,
    run_top_images,
    settings,
    square_preview,
    video_frame,
    with_paths,
)
from dashboard.timeline import chosen_window, timeline
from dashboard.widgets import (
    code_span,
    count_metric,
    download,
    follow_job,
    md_escape,
    outcome_notice,
    set_notice,
    show_error,
    show_notice,
    start_job,
)
from db import NotFoundError, RunRecord

CONFIG = {"displaylogo": False}
HEATMAP_IMAGES = 15
MAX_PREVIEWS = 300  # images with a preview in the segments list (each ~2 KB)
TIMELINE_POINTS = 600  # ~1 point per 1.5 px of a wide chart: more are invisible, and each costs the browser
ZOOM_S = 120.0  # the window of "Zoom on the frame": short enough to show every frame


RUN_TABS = (
    "Segments",
    "Heat map",
    "Score histogram",
    "Evaluate",
    "Export & render",
)  # the run's tabs, in order


def show(runs: list[RunRecord]) -> None:
    """Pick a run and explore it."""
    by_id = {r.id: r for r in runs}
    if st.session_state.get(keys.RUN) not in by_id:
        st.session_state[keys.RUN] = runs[0].id
    run_id = st.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i]), key=keys.RUN)
    _explore(run_id)
    _delete(run_id)


@st.fragment
def _explore(run_id: int) -> None:
    """Everything about one run. A fragment: moving the threshold, clicking the timeline or
    turning a tab reruns only this (not the page's launcher, whose pickers query the index)."""
    try:
        base = get_run_view(run_id)
    except NotFoundError as err:
        show_error(err, "It may have been deleted; pick another run.")
        return
    run, video, res = base.run, base.video, base.results
    st.caption(
        f"Video {code_span(video.path)} ({video.width}×{video.height}, {video.fps:.3g} fps, "
        f"{format_time(video.duration_s)}) · collection **{md_escape(run.collection_name or '(deleted)')}** · "
        f"model {code_span(run.model_id)} · {md_escape(run_summary(base))}"
    )
    if run.status == "running":
        st.info("This run is still in progress; what is shown is what has been stored so far.")
    elif run.status in ("cancelled", "failed"):
        st.warning(f"This run was {run.status}: it holds results for the frames analysed before that.")
    elif run.collection_changed:
        _changed_since(run)
    if video_file_state(video) == "changed":
        st.warning(
            "The video file has changed since this run was made (its size or modification time): the "
            "frames shown may not be the ones it analysed. Match the video again to be sure."
        )
    if len(res) == 0 or res.k == 0:
        st.warning(
            "This run has no frame results to show (it stopped before the first batch). Run the match again."
        )
    else:
        view = _relabelled(base)
        view = with_paths(view, [seg.image_id for seg in view.segments])  # a lower threshold finds more
        _metrics(view)
        row = _timeline(view)
        _inspector(view, row)
        _tabs(view, int(view.results.frame_index[row]))


def _changed_since(run: RunRecord) -> None:
    """Say that the run's collection changed since it searched it, and offer to bring the run up to
    date from its cached frames (no model, no decoding; a region run needs the video)."""
    name = md_escape(run.collection_name or "")
    busy = keys.MATCH_JOB in st.session_state
    if run.params.get("regions"):
        st.info(
            f"The collection {name} has changed since this run: images added since were not looked for. "
            "A region run needs its video to include them: it is matched again with this run's options, "
            "and the new results take this run's place."
        )
        if st.button("Match the video again", key=keys.run_match_again(run.id), disabled=busy):
            from core.matching.refresh import match_run_again, run_precision  # the model's modules: on use

            model = get_index().get_collection_by_id(run.collection_id).model_id
            load = functools.partial(model_loader(), model, run_precision(run))  # in the job
            start_job(
                keys.MATCH_JOB,
                "match-again",
                f"Matching {Path(run.video_path).name} again for run #{run.id}",
                with_index(str(settings().db_path), with_model(load, match_run_again)),
                run,
            )
            st.rerun()  # the whole page: its job slot follows the match
        return
    st.info(
        f"The collection {name} has changed since this run: images added since were not looked for. "
        "Search it again from this run's frames: the run is brought up to date, without the model."
    )
    if st.button("Search the collection as it is now", key=keys.run_search_again(run.id), disabled=busy):
        start_job(
            keys.MATCH_JOB,
            "search-again",
            f"Searching {run.collection_name} again for run #{run.id}",
            with_index(str(settings().db_path), search_again),
            run.id,
        )
        st.rerun()  # the whole page: its job slot follows the search


def _relabelled(base: RunView) -> RunView:
    """Threshold and segment options: the view re-labelled from stored scores, no model."""
    p, run_id = base.params, base.run.id
    c1, c2, c3 = st.columns([3, 1, 1])
    threshold = c1.slider(
        "Threshold",
        0.0,
        1.0,
        float(min(max(p.threshold, 0.0), 1.0)),
        0.005,
        key=keys.run_threshold(run_id),
        help="Frames whose best score reaches this count as matched. Segments are recomputed instantly.",
    )
    gap = c2.number_input(
        "Join gaps up to (s)", 0.0, 60.0, float(p.gap_tolerance_s), step=0.25, key=keys.run_gap(run_id)
    )
    min_duration = c3.number_input(
        "Min. segment (s)", 0.0, 600.0, float(p.min_duration_s), step=0.5, key=keys.run_min_duration(run_id)
    )
    return base.relabel(threshold, gap, min_duration)


def _metrics(view: RunView) -> None:
    best, stats = view.best_score, view.stats
    m1, m2, m3, m4 = st.columns(4)
    share = stats["matched"] / stats["recorded"] if stats["recorded"] else 0.0
    # a share fits the card at any length (a count of 72,885 / 108,000 was cut off)
    m1.metric("Matched frames", f"{share:.0%}", help=f"{stats['matched']:,} of {stats['recorded']:,} frames")
    count_metric(m2, "Segments", stats["segments"])
    count_metric(m3, "Images seen", len({s.image_id for s in view.segments}))
    m4.metric("Best score", f"{np.nanmax(best):.3f}" if np.isfinite(best).any() else "–")


def _timeline(view: RunView) -> int:
    """The timeline, with the frame chosen by the slider, a click on it, or a segment row.

    Returns:
        The row of the inspected frame.
    """
    run_id, res = view.run.id, view.results
    frame_key, chart_key, list_key = (
        keys.run_frame(run_id),
        keys.run_timeline(run_id),
        keys.run_segments(run_id),
    )
    fi, ts, best = res.frame_index, res.time_s, view.best_score
    if frame_key not in st.session_state:
        st.session_state[frame_key] = int(fi[int(np.nanargmax(np.where(np.isfinite(best), best, -np.inf)))])

    chart_state = st.session_state.get(chart_key)  # one rerun only: a click or drag is applied once
    for chosen in (chosen_frame(chart_state), chosen_frame(st.session_state.get(list_key))):
        if chosen is not None:
            st.session_state[frame_key] = int(fi[row_of_frame(fi, chosen)])

    row = row_of_frame(fi, st.session_state[frame_key])
    window, zoomable = _window(view, float(ts[row]), chosen_window(chart_state))
    line = timeline_data.decimate(
        ts, fi, best, view.best_image, view.matched(), window=window, buckets=TIMELINE_POINTS
    )
    ranked = timeline_data.on_screen(view.best_image, view.matched(), ts)
    view = with_paths(view, np.concatenate([line.image, [i for i, _ in ranked]]).astype(np.int64))
    spec = timeline_data.timeline_spec(
        line,
        image_labels(view, line.image),
        view.params.threshold,
        selected_time=float(ts[row]),
        brush=zoomable,
    )
    timeline(spec, key=chart_key)
    detail = (
        f"each point is the best of ~{line.frames / len(line.time_s):.0f} frames (the band spans their scores)"
        if line.decimated
        else "every frame is a point"
    )
    zoom = " · drag across it to zoom in" if zoomable else ""
    st.caption(f"Click the timeline to inspect the frame there{zoom} · {detail}.")
    if ranked:
        seen = len(np.unique(view.best_image[view.matched() & (view.best_image >= 0)]))
        listed = " · ".join(
            f'<span style="color:{image_colour(i)}">&#9632;</span> {md_escape(view.image_name(i))} '
            f"{format_time(seconds)}"
            for i, seconds in ranked
        )
        st.caption(f"Most on screen ({seen:,} images in all): {listed}", unsafe_allow_html=True)
    return row


def _window(
    view: RunView, inspected_s: float, dragged: tuple[float, float] | None
) -> tuple[tuple[float, float], bool]:
    """The stretch of the run the timeline shows: a range slider, set by a drag across the
    timeline too, and a button that zooms on the inspected frame (where every frame becomes a
    point). Returns the window and whether the run is long enough to have one."""
    run_id, ts = view.run.id, view.results.time_s
    start, end = float(np.floor(ts[0])), float(np.ceil(ts[-1]))
    key = keys.run_window(run_id)
    if end - start <= ZOOM_S:
        return (start, end), False
    if dragged is not None:  # whole seconds (the slider's step), at least one, inside the run
        lo = min(max(start, float(np.floor(dragged[0]))), end - 1)
        st.session_state[key] = (lo, min(end, max(lo + 1, float(np.ceil(dragged[1])))))

    def zoom() -> None:
        lo = max(start, min(inspected_s - ZOOM_S / 2, end - ZOOM_S))
        st.session_state[key] = (round(lo), round(lo + ZOOM_S))

    left, right = st.columns([5, 1])
    chosen = left.slider("Time window (s)", start, end, (start, end), step=1.0, key=key)
    right.button(
        "Zoom on frame",
        help=f"Show the {ZOOM_S:g} s around the inspected frame, every frame a point",
        on_click=zoom,
        key=keys.run_zoom(run_id),
        width="stretch",
    )
    right.button(
        "Whole run", on_click=lambda: st.session_state.update({key: (start, end)}), key=keys.run_unzoom(run_id),
        width="stretch",
    )  # fmt: skip
    return chosen, True


def _inspector(view: RunView, row: int) -> None:
    """The frame beside its top-k images."""
    res, video, run_id = view.results, view.video, view.run.id
    fi, ts = res.frame_index, res.time_s
    frame_key = keys.run_frame(run_id)
    matched = view.matched()
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
            where = st.toggle(
                "Show where it matched",
                key=keys.run_overlay(run_id),
                help="A heat map of where the best image fits in the frame (runs the model's first blocks), "
                "with the region box of runs made with regions.",
            )
            try:
                picture = video_frame(video.path, frame_no, t_s)
                best = int(view.best_image[row])
                region = view.region_of(row)
                if where and best >= 0:
                    picture, note = explained_frame(run_id, frame_no, best), note + " · where it fits"
                elif region is not None and region[0] == best:  # the stored box: no model needed
                    picture, note = draw_box(picture, region[2], image_rgb(best)), note + " · region"
                st.image(picture, caption=f"Frame {frame_no} at {format_time(t_s)}{note}", width="stretch")
            except VideoOpenError as err:
                st.warning(f"Cannot show the frame: {md_escape(err)}")
            except USER_ERRORS as err:
                st.warning(f"Cannot show where it matched: {md_escape(err)}")
        with right:
            matches = frame_matches(with_paths(view, res.image_ids[row]), row)
            verdict = "matched" if matched[row] else "no match (below threshold)"
            top = sum(m.kind == "frame" for m in matches)
            region = " and its region" if len(matches) > top else ""
            st.markdown(f"**Top {top} images**{region} · {verdict}")
            thumbs = get_thumbnails([m.image_id for m in matches])
            cols = st.columns(max(1, min(5, len(matches))))
            for n, m in enumerate(matches):
                with cols[n % len(cols)]:
                    # a square from the stored thumbnail (an empty one where it is missing or unreadable)
                    st.image(square_preview(thumbs.get(m.image_id)), width="stretch")
                    name = f"{'region' if m.kind == 'region' else f'#{m.rank}'} {md_escape(m.name)}"
                    if m.best and matched[row]:
                        name = f"**{name}** :material/check_circle:"
                    swatch = f'<span style="color:{image_colour(m.image_id)}">&#9632;</span>'
                    st.caption(f"{swatch} {name}  \n**{m.score:.3f}**", unsafe_allow_html=True)


def _tabs(view: RunView, frame: int) -> None:
    run_id, res = view.run.id, view.results
    # only the open tab is drawn (and sent): on a long run the others cost seconds per rerun
    seg_tab, heat_tab, hist_tab, eval_tab, out_tab = st.tabs(
        list(RUN_TABS),
        key=keys.RUN_TAB,
        on_change="rerun",
    )
    if seg_tab.open:
        _segments(view, seg_tab, frame)
    if heat_tab.open:
        with heat_tab:
            top = run_top_images(view, HEATMAP_IMAGES)
            heat_labels = image_labels(with_paths(view, top), top)
            st.plotly_chart(
                charts.heatmap_figure(res.time_s, *view.scored_images(), heat_labels, top=top),
                key=keys.run_heatmap(run_id),
                config=CONFIG,
            )
            st.caption(
                f"Each row is one of the {HEATMAP_IMAGES} images with the highest peak score; empty where it "
                "was not in a frame's top-k (nor its region, in a run made with regions)."
            )
    if hist_tab.open:
        with hist_tab:
            st.plotly_chart(
                charts.histogram_figure(view.best_score, view.matched(), view.params.threshold),
                key=keys.run_histogram(run_id),
                config=CONFIG,
            )
            st.caption(
                "A good threshold sits in the gap between the noise (left) and the true matches (right)."
            )
    if eval_tab.open:
        with eval_tab:
            run_evaluation.show(view)
    if out_tab.open:
        with out_tab:
            _exports(view)


def _segments(view: RunView, tab, frame: int) -> None:
    """The segments list: a click on a row inspects its first frame (``frame``'s row is marked)."""
    with tab:
        if not view.segments:
            st.info("No segments at this threshold: lower it (see the histogram) or allow longer gaps.")
        else:
            # each image's preview travels once (a few KB); a colour square where there are very many
            shown = list(dict.fromkeys(s.image_id for s in view.segments))
            thumbs = previews(shown) if len(shown) <= MAX_PREVIEWS else None
            segment_list(segment_list_spec(view, thumbs, frame), key=keys.run_segments(view.run.id))
            st.caption(
                "Click a row to inspect its first frame, a header to sort by it. "
                "Each image has one colour everywhere."
            )


def _exports(view: RunView) -> None:
    """Downloads and the rendered "frame | match" video, at the view's threshold."""
    run_id, video = view.run.id, view.video
    stem = f"run-{run_id}-t{view.params.threshold:.3f}"
    everything = view.results.image_ids  # an export names every image of every frame's top-k
    for column, fmt in zip(st.columns(len(EXPORT_FORMATS)), EXPORT_FORMATS, strict=True):
        download(
            fmt.label,
            lambda fmt=fmt: fmt.text(with_paths(view, everything)),
            f"{stem}{fmt.suffix}",
            fmt.mime,
            key=keys.run_download(run_id, fmt.key),
            container=column,
            help=f"Download {fmt.description}",
        )
    st.divider()
    st.markdown("**Side-by-side video** of the frames and their best matching image, at this threshold")
    out_path = settings().renders_dir / f"match-{stem}.mp4"
    job_key = keys.run_render_job(run_id)
    done = follow_job(job_key)
    if done is not None:
        frames = done.result.frames if done.status == "done" else 0
        outcome_notice(job_key, done, f"Rendered {frames} frames.")
    show_notice(job_key)
    r1, r2 = st.columns([1, 3])
    max_render = r1.number_input(
        "Max. frames (0 = all)", 0, 1_000_000, 0, step=100, key=keys.run_render_max(run_id)
    )
    busy = job_key in st.session_state
    if r1.button("Render video", disabled=busy, key=keys.run_render(run_id)):
        if not Path(video.path).is_file():
            st.error(f"The video {code_span(video.path)} is gone: rendering needs the original file.")
        else:
            start_job(
                job_key,
                "render",
                f"Rendering run #{run_id}",
                api.render_match_video,
                with_paths(view, view.best_image),  # each frame is labelled with its best image
                out_path,
                db=str(settings().db_path),  # the job's own connection, for the thumbnails
                max_frames=int(max_render) or None,
            )
            st.rerun()
    if out_path.is_file():
        with r2:
            st.video(str(out_path))
            download(
                "Download MP4",
                out_path.read_bytes,
                out_path.name,
                "video/mp4",
                key=keys.run_download(run_id, "mp4"),
            )


def _delete(run_id: int) -> None:
    with st.expander("Delete this run", icon=":material/delete:"):
        st.caption("Removes the run's results from the database (the video and the collection stay).")

        def delete(rid: int) -> None:
            try:
                get_index().delete_run(rid)
            except USER_ERRORS as err:
                set_notice(keys.MATCH_ADMIN_NOTICE, "error", str(err))
                return
            st.session_state.pop(keys.RUN, None)
            set_notice(keys.MATCH_ADMIN_NOTICE, "success", f"Deleted run #{rid}.")

        st.button("Delete run", on_click=delete, args=(run_id,), key=keys.run_delete(run_id))
