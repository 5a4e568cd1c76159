"""Render videos: the PCA of every layer of an image (MP4 / GIF) and per-frame PCA of a video,
in the background, played inline and downloadable."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from core.errors import ModelLoadError, VideoOpenError, WebSSLError
from core.render import RenderResult, render_layers, render_pca_video
from core.video import probe_video
from dashboard.media import human_size
from dashboard.state import get_index, load_extractor, settings
from dashboard.uploads import sanitize_filename
from dashboard.widgets import (
    follow_job,
    image_source,
    outcome_notice,
    page_header,
    show_notice,
    start_job,
    video_source,
)

LAYERS_JOB = "render-layers-job"
PCA_JOB = "render-pca-job"

s = settings()
index = get_index()
page_header(
    "Render videos", "Videos of what the model sees: layer by layer for an image, frame by frame for a video."
)


def _out_path(kind: str, stem: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return s.renders_dir / f"{kind}-{sanitize_filename(Path(stem).stem, 'video')[:60]}-{stamp}.mp4"


def show_result(result: RenderResult, key: str) -> None:
    """Play a rendered video (and its GIF) inline, with download buttons."""
    if not result.path.is_file():
        st.warning(f"`{result.path}` is gone.")
        return
    st.video(str(result.path))
    st.caption(
        f"{result.frames} frames · {result.width}×{result.height} · {result.fps:g} fps · `{result.path}`"
    )
    b1, b2 = st.columns(2)
    b1.download_button(
        "Download MP4",
        data=lambda: result.path.read_bytes(),
        file_name=result.path.name,
        mime="video/mp4",
        icon=":material/download:",
        key=f"{key}-mp4",
    )
    if result.gif is not None and result.gif.is_file():
        st.image(str(result.gif), caption="GIF")
        b2.download_button(
            "Download GIF",
            data=lambda: result.gif.read_bytes(),
            file_name=result.gif.name,
            mime="image/gif",
            icon=":material/download:",
            key=f"{key}-gif",
        )


def poll(job_key: str) -> bool:
    """Show the job's live progress, or take its result once it has finished; True while it runs."""
    snap = follow_job(job_key)
    if snap is not None:
        if snap.status == "done":
            st.session_state[f"{job_key}:result"] = snap.result
        done_text = f"Rendered {snap.result.frames} frames in {snap.elapsed_s:.0f} s." if snap.result else ""
        outcome_notice(job_key, snap, done_text)
    return job_key in st.session_state


def show_last(job_key: str) -> None:
    """The outcome of the last job: a notice and the video it made."""
    show_notice(job_key)
    result = st.session_state.get(f"{job_key}:result")
    if result is not None:
        show_result(result, job_key)


layers_tab, pca_tab, recent_tab = st.tabs(["Layer evolution", "PCA of a video", "Recent renders"])

with layers_tab:
    busy = poll(LAYERS_JOB)
    st.caption(
        "One frame per transformer layer: the PCA map of that layer, colours fitted on the last layer."
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        chosen = image_source(index, "render-layers")
    with right:
        mode = st.radio(
            "View",
            ["crop", "full"],
            horizontal=True,
            key="render-layers-mode",
            format_func={"crop": "Centre crop", "full": "Full image"}.get,
        )
        fps = st.slider("Layers per second", 0.5, 10.0, 2.0, 0.5, key="render-layers-fps")
        panel = st.select_slider(
            "Panel height (px)", [224, 336, 448, 560, 672], value=448, key="render-layers-panel"
        )
        gif = st.checkbox("Also make a GIF", key="render-layers-gif")
    if st.button(
        "Render layer video", type="primary", disabled=chosen is None or busy, key="render-layers-go"
    ):
        assert chosen is not None
        image, model_id = chosen
        try:
            fx = load_extractor(model_id)
        except ModelLoadError as err:
            st.error(str(err))
        else:
            out = _out_path("layers", image.path.rsplit("/", 1)[-1])
            rgb = image.rgb

            def work(job):
                return render_layers(
                    fx,
                    rgb,
                    out,
                    fps=fps,
                    mode=mode,
                    panel_size=panel,
                    gif=gif,
                    progress=job.progress,
                    cancel=job.cancel_event,
                )

            start_job(LAYERS_JOB, "render", f"Rendering layers of {Path(image.path).name}", work)
            st.rerun()
    show_last(LAYERS_JOB)

with pca_tab:
    busy = poll(PCA_JOB)
    st.caption(
        "The last layer's patch features of every frame, in PCA colours fitted once on frames sampled across "
        "the video (so colours stay stable). Side by side: the model's input view left of the map."
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        video_path = video_source("render-pca")
    with right:
        side = st.checkbox("Side by side with the frame", value=True, key="render-pca-side")
        max_frames = st.number_input(
            "Frames (0 = whole video)",
            0,
            1_000_000,
            150,
            step=50,
            key="render-pca-max",
            help="The model runs on every frame: about 2 frames/s on a laptop CPU.",
        )
        out_fps = st.number_input(
            "Output fps (0 = as the source)", 0.0, 120.0, 0.0, step=1.0, key="render-pca-fps"
        )
        height = st.select_slider(
            "Panel height (px)", [224, 288, 360, 448, 540], value=360, key="render-pca-height"
        )
    go_pca = st.button("Render PCA video", type="primary", disabled=busy, key="render-pca-go")
    if go_pca and video_path is None:
        st.warning("Choose a video first: upload one or type its path on the server.")
    if go_pca and video_path is not None:
        try:
            probe_video(video_path, compute_hash=False)
            fx = load_extractor(s.model_id)
        except VideoOpenError as err:
            st.error(f"{err} — upload another file or check the path.")
        except ModelLoadError as err:
            st.error(str(err))
        except WebSSLError as err:
            st.error(str(err))
        else:
            out = _out_path("pca", video_path.name)
            limit, rate = int(max_frames) or None, float(out_fps) or None

            def work(job):
                return render_pca_video(
                    fx,
                    video_path,
                    out,
                    side_by_side=side,
                    max_frames=limit,
                    fps=rate,
                    panel_height=height,
                    progress=job.progress,
                    cancel=job.cancel_event,
                )

            start_job(PCA_JOB, "render", f"Rendering PCA of {video_path.name}", work)
            st.rerun()
    show_last(PCA_JOB)

with recent_tab:
    files = sorted(s.renders_dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)[:50]
    if not files:
        st.info("Nothing rendered yet.")
    else:
        by_name = {p.name: p for p in files}
        name = st.selectbox(
            "Rendered video",
            list(by_name),
            key="render-recent",
            format_func=lambda n: f"{n} · {human_size(by_name[n].stat().st_size)}",
        )
        path = by_name[name]
        st.video(str(path))
        st.download_button(
            "Download",
            data=path.read_bytes,
            file_name=path.name,
            mime="video/mp4",
            key="render-recent-download",
            icon=":material/download:",
        )
