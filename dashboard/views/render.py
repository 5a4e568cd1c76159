"""Render videos: the PCA of every layer of an image (MP4 / GIF) and per-frame PCA of a video,
in the background, played inline and downloadable."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from core.errors import USER_ERRORS, VideoOpenError
from core.media.video import probe_video
from core.model.preprocess import MODES
from core.visual.layer_video import LAYER_FPS, LAYER_PANEL, render_layers
from core.visual.pca_video import render_pca_video
from core.visual.render import PANEL_HEIGHT, RenderResult
from dashboard import keys
from dashboard.media import human_size
from dashboard.state import get_index, load_extractor, settings
from dashboard.uploads import sanitize_filename
from dashboard.widgets import (
    code_span,
    download,
    follow_job,
    image_source,
    outcome_notice,
    page_header,
    show_error,
    show_notice,
    start_job,
    video_source,
)

LAYER_PANELS = [224, 336, LAYER_PANEL, 560, 672]
PCA_PANELS = [224, 288, PANEL_HEIGHT, 448, 540]
PCA_FRAMES = 150  # the first value offered: a few seconds of video, about a minute on a CPU

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
        st.warning(f"{code_span(result.path)} is gone.")
        return
    st.video(str(result.path))
    st.caption(
        f"{result.frames} frames · {result.width}×{result.height} · {result.fps:g} fps · {code_span(result.path)}"
    )
    b1, b2 = st.columns(2)
    download("Download MP4", result.path.read_bytes, result.path.name, "video/mp4",
             key=keys.download(key, "mp4"), container=b1)  # fmt: skip
    if result.gif is not None and result.gif.is_file():
        st.image(str(result.gif), caption="GIF")
        download("Download GIF", result.gif.read_bytes, result.gif.name, "image/gif",
                 key=keys.download(key, "gif"), container=b2)  # fmt: skip


def poll(job_key: str) -> bool:
    """Show the job's live progress, or take its result once it has finished; True while it runs."""
    snap = follow_job(job_key)
    if snap is not None:
        if snap.status == "done":
            st.session_state[keys.job_result(job_key)] = snap.result
        done_text = f"Rendered {snap.result.frames} frames in {snap.elapsed_s:.0f} s." if snap.result else ""
        outcome_notice(job_key, snap, done_text)
    return job_key in st.session_state


def show_last(job_key: str) -> None:
    """The outcome of the last job: a notice and the video it made."""
    show_notice(job_key)
    result = st.session_state.get(keys.job_result(job_key))
    if result is not None:
        show_result(result, job_key)


layers_tab, pca_tab, recent_tab = st.tabs(["Layer evolution", "PCA of a video", "Recent renders"])

with layers_tab:
    busy = poll(keys.LAYERS_JOB)
    st.caption(
        "One frame per transformer layer: the PCA map of that layer, colours fitted on the last layer."
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        chosen = image_source(index, keys.LAYERS_SOURCE)
    with right:
        mode = st.radio(
            "View",
            MODES,
            horizontal=True,
            key=keys.LAYERS_MODE,
            format_func={"crop": "Centre crop", "full": "Full image"}.get,
        )
        fps = st.slider("Layers per second", 0.5, 10.0, LAYER_FPS, 0.5, key=keys.LAYERS_FPS)
        panel = st.select_slider("Panel height (px)", LAYER_PANELS, value=LAYER_PANEL, key=keys.LAYERS_PANEL)
        gif = st.checkbox("Also make a GIF", key=keys.LAYERS_GIF)
    if st.button("Render layer video", type="primary", disabled=chosen is None or busy, key=keys.LAYERS_GO):
        assert chosen is not None
        image, model_id = chosen
        try:
            fx = load_extractor(model_id)
        except USER_ERRORS as err:
            show_error(err)
        else:
            start_job(
                keys.LAYERS_JOB,
                "render",
                f"Rendering layers of {Path(image.path).name}",
                render_layers,
                fx,
                image.rgb,
                _out_path("layers", image.path.rsplit("/", 1)[-1]),
                fps=fps,
                mode=mode,
                panel_size=panel,
                gif=gif,
            )
            st.rerun()
    show_last(keys.LAYERS_JOB)

with pca_tab:
    busy = poll(keys.PCA_JOB)
    st.caption(
        "The last layer's patch features of every frame, in PCA colours fitted once on frames sampled across "
        "the video (so colours stay stable). Side by side: the model's input view left of the map."
    )
    left, right = st.columns([3, 2], gap="large")
    with left:
        video_path = video_source(keys.PCA_SOURCE)
    with right:
        side = st.checkbox("Side by side with the frame", value=True, key=keys.PCA_SIDE)
        max_frames = st.number_input(
            "Frames (0 = whole video)",
            0,
            1_000_000,
            PCA_FRAMES,
            step=50,
            key=keys.PCA_MAX_FRAMES,
            help="The model runs on every frame: about 2 frames/s on a laptop CPU.",
        )
        out_fps = st.number_input(
            "Output fps (0 = as the source)", 0.0, 120.0, 0.0, step=1.0, key=keys.PCA_FPS
        )
        height = st.select_slider("Panel height (px)", PCA_PANELS, value=PANEL_HEIGHT, key=keys.PCA_HEIGHT)
    go_pca = st.button("Render PCA video", type="primary", disabled=busy, key=keys.PCA_GO)
    if go_pca and video_path is None:
        st.warning("Choose a video first: upload one or type its path on the server.")
    if go_pca and video_path is not None:
        try:
            probe_video(video_path, compute_hash=False)
            fx = load_extractor(s.model_id)
        except VideoOpenError as err:
            show_error(err, "Upload another file or check the path.")
        except USER_ERRORS as err:
            show_error(err)
        else:
            start_job(
                keys.PCA_JOB,
                "render",
                f"Rendering PCA of {video_path.name}",
                render_pca_video,
                fx,
                video_path,
                _out_path("pca", video_path.name),
                side_by_side=side,
                max_frames=int(max_frames) or None,
                fps=float(out_fps) or None,
                panel_height=height,
            )
            st.rerun()
    show_last(keys.PCA_JOB)

with recent_tab:
    files = sorted(s.renders_dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)[:50]
    if not files:
        st.info("Nothing rendered yet.")
    else:
        by_name = {p.name: p for p in files}
        if st.session_state.get(keys.RECENT_NEWEST) != files[0].name:  # something new: show it
            st.session_state[keys.RECENT_NEWEST] = st.session_state[keys.RECENT] = files[0].name
        name = st.selectbox(
            "Rendered video",
            list(by_name),
            key=keys.RECENT,
            format_func=lambda n: f"{n} · {human_size(by_name[n].stat().st_size)}",
        )
        path = by_name[name]
        st.video(str(path))
        download("Download", path.read_bytes, path.name, "video/mp4", key=keys.RECENT_DOWNLOAD)
