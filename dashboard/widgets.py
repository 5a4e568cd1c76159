"""UI pieces shared by several pages: job progress, notices, pickers for collections and media."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import streamlit as st

from core.errors import ImageLoadError
from core.media.images import IMAGE_EXTENSIONS, LoadedImage, decode_image_bytes, load_image
from core.media.video import VIDEO_EXTENSIONS
from dashboard import keys, pages, uploads
from dashboard.jobs import JobSnapshot
from dashboard.media import short_count
from dashboard.server_paths import ForbiddenPathError, resolve_allowed
from dashboard.state import get_jobs, get_thumbnails, settings
from db import Collection, Index

logger = logging.getLogger(__name__)

POLL_S = 0.75
IMAGE_TYPES = sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
VIDEO_TYPES = sorted(ext.lstrip(".") for ext in VIDEO_EXTENSIONS)


# -- jobs -------------------------------------------------------------------------------------
def start_job(key: str, kind: str, title: str, fn, /, *args, **kwargs) -> None:
    """Queue ``fn(*args, progress=..., cancel=..., **kwargs)`` in the background (see
    :meth:`dashboard.jobs.JobManager.submit`) and remember it under ``st.session_state[key]``."""
    job = get_jobs().submit(kind, title, fn, *args, **kwargs)
    st.session_state[key] = job.id
    st.session_state.pop(keys.notice(key), None)


def follow_job(key: str) -> JobSnapshot | None:
    """Show the progress of the job in ``st.session_state[key]``, if any.

    While the job runs, a fragment redraws its progress bar (with a Cancel button) every
    :data:`POLL_S` seconds and reruns the whole page once the job has finished. Returns the
    job's snapshot exactly once, on the first rerun after it finished (the key is then
    cleared); the caller shows the result and may :func:`set_notice` an outcome.
    """
    job = get_jobs().get(st.session_state.get(key))
    if job is None:
        st.session_state.pop(key, None)
        return None
    snap = job.snapshot()
    if snap.active:
        _live_progress(job.id)
        return None
    st.session_state.pop(key, None)
    return snap


@st.fragment(run_every=POLL_S)
def _live_progress(job_id: int) -> None:
    job = get_jobs().get(job_id)
    if job is None:
        return
    snap = job.snapshot()
    if not snap.active:
        st.rerun()
    if snap.status == "queued":
        text = f"{md_escape(snap.title)}: queued (#{snap.queue_position + 1} in line), waiting for the job before it…"
    else:
        text = f"{md_escape(snap.title)} — {snap.message}"  # the message is describe_event's, not a user's
    with st.container(border=True):
        st.progress(snap.fraction or 0.0, text=text)
        if job.cancel_event.is_set():
            st.caption("Cancelling… (stops after the batch in progress)")
        else:
            st.button(
                "Cancel", key=keys.cancel_job(job_id), on_click=job.cancel, icon=":material/stop_circle:"
            )


def set_notice(key: str, level: str, text: str) -> None:
    """Remember a message about ``key``'s last job to show on later reruns (Markdown: escape
    user values with :func:`md_escape`)."""
    st.session_state[keys.notice(key)] = (level, text)


def show_notice(key: str, *, once: bool = False) -> None:
    """Show the notice remembered for ``key`` (and forget it if ``once``)."""
    notice = st.session_state.pop(keys.notice(key), None) if once else st.session_state.get(keys.notice(key))
    level, text = notice or (None, None)
    if text:
        {"success": st.success, "warning": st.warning, "error": st.error}.get(level, st.info)(text)


def outcome_notice(key: str, snap: JobSnapshot, done_text: str) -> None:
    """A notice for a finished job: success text, the cancellation, or the error."""
    if snap.status == "done":
        set_notice(key, "success", done_text)
    elif snap.status == "cancelled":
        set_notice(key, "warning", f"{md_escape(snap.title)}: cancelled. {md_escape(snap.message)}")
    else:
        set_notice(key, "error", f"{md_escape(snap.title)} failed: {md_escape(snap.error)}")


def show_error(err: object, hint: str = "") -> None:
    """An error message (an exception's text, say) shown literally, with an optional hint."""
    st.error(md_escape(str(err)) + (f" {hint}" if hint else ""))


# -- pickers ----------------------------------------------------------------------------------
def pick_collection(
    index: Index, *, key: str, label: str = "Collection", require_images: bool = False
) -> Collection | None:
    """A collection selector; explains what to do when there is none (returns None then)."""
    collections = index.list_collections()
    if not collections:
        st.info("There are no collections yet: create one and add images on the **Collections** page.")
        st.page_link(pages.COLLECTIONS.path, label="Go to Collections", icon=pages.COLLECTIONS.icon)
        return None
    by_name = {c.name: c for c in collections}
    remembered = st.session_state.get(keys.COLLECTION)
    if st.session_state.get(key) not in by_name:
        st.session_state[key] = remembered if remembered in by_name else collections[0].name
    # The options are the names alone: a count inside an option's label went stale in the
    # browser after indexing (the widget keeps its options' labels); the caption below is redrawn.
    name = st.selectbox(label, list(by_name), key=key)
    st.session_state[keys.COLLECTION] = name
    coll = by_name[name]
    st.caption(f"{coll.image_count:,} images · model {code_span(coll.model_id)}")
    if require_images and coll.image_count == 0:
        st.warning(
            f"Collection **{md_escape(coll.name)}** has no images yet: add some on the **Collections** page first."
        )
        st.page_link(pages.COLLECTIONS.path, label="Go to Collections", icon=pages.COLLECTIONS.icon)
        return None
    return coll


def video_source(key: str, *, folders: bool = False) -> Path | None:
    """Upload a video or name one on the server (``folders``: or a folder of videos); returns its
    path, or None (with a hint)."""
    how = st.radio(
        "Video",
        ["Upload a file", "Path on the server"],
        horizontal=True,
        key=keys.source_how(key),
        label_visibility="collapsed",
    )
    if how == "Upload a file":
        upload = st.file_uploader("Video file", type=VIDEO_TYPES, key=keys.source_upload(key))
        if upload is None:
            return None
        return save_uploaded(upload, "videos")
    text = st.text_input(
        "Video or folder path on the server" if folders else "Video path on the server",
        key=keys.source_path(key),
        placeholder="/data/videos/clip.mp4" + (" or /data/videos/" if folders else ""),
    ).strip()
    if not text:
        return None
    try:
        path = resolve_allowed(text)
    except ForbiddenPathError as err:
        show_error(err)
        return None
    if folders and path.is_dir():
        return path
    if not path.is_file():
        st.error(
            f"No video file at {code_span(path)}: check the path (it is read on the server, not on your computer)."
        )
        return None
    return path


def image_source(index: Index, key: str) -> tuple[LoadedImage, str] | None:
    """Upload an image or pick one from a collection.

    Returns:
        ``(image, model id)``: the model is the collection's for a picked image, the default
        model for an upload; None (with a hint shown) while nothing usable is chosen.
    """
    how = st.radio(
        "Image",
        ["Upload an image", "From a collection"],
        horizontal=True,
        key=keys.source_how(key),
        label_visibility="collapsed",
    )
    if how == "Upload an image":
        upload = st.file_uploader("Image file", type=IMAGE_TYPES, key=keys.source_upload(key))
        if upload is None:
            return None
        try:
            return decode_image_bytes(upload.getvalue(), upload.name), settings().model_id
        except ImageLoadError as err:
            st.error(f"Cannot read this image: {md_escape(err.reason)}. Upload a JPEG, PNG, WebP, … file.")
            return None
    coll = pick_collection(index, key=keys.source_collection(key), require_images=True)
    if coll is None:
        return None
    name_filter = st.text_input(
        "Filter by file name", key=keys.source_filter(key), placeholder="part of a file name"
    )
    records = index.list_images(coll.id, limit=500, name_filter=name_filter or None)
    if not records:
        st.info("No image names match the filter.")
        return None
    by_id = {r.id: r for r in records}
    image_id = st.selectbox(
        "Image", list(by_id), format_func=lambda i: by_id[i].name, key=keys.source_image(key)
    )
    rec = by_id[image_id]
    try:
        return load_image(rec.path), coll.model_id
    except ImageLoadError as err:
        thumb = get_thumbnails([rec.id]).get(rec.id)
        if not thumb:
            st.error(f"Cannot read {code_span(rec.path)}: {md_escape(err.reason)}.")
            return None
        st.warning(
            f"The original cannot be read ({md_escape(err.reason)}); using the small stored thumbnail instead."
        )
        return decode_image_bytes(thumb, rec.name), coll.model_id


def save_uploaded(upload, kind: str) -> Path | None:
    """Store a ``st.file_uploader`` file under the data folder (once per upload)."""
    cache = st.session_state.setdefault(keys.SAVED_UPLOADS, {})
    marker = (kind, upload.file_id, upload.name, upload.size)
    if marker in cache and Path(cache[marker]).is_file():
        return Path(cache[marker])
    try:
        path = uploads.save_upload(upload, upload.name, kind=kind)
    except OSError as err:
        st.error(
            f"Could not store the upload {md_escape(upload.name)}: {md_escape(err)}. Check free disk space in "
            "the data folder."
        )
        return None
    cache[marker] = str(path)
    return path


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def keep_values(names: tuple[str, ...]) -> None:
    """Keep the values of widgets that this run does not draw (Streamlit forgets a widget's
    value at the end of a run that does not draw it; a value set through Session State stays).
    An upload cannot be kept this way: Streamlit refuses to set a file uploader's value."""
    for name in names:
        if name in st.session_state:
            st.session_state[name] = st.session_state[name]


def count_metric(container, label: str, count: int) -> None:
    """A metric card showing ``count`` short enough to fit (:func:`dashboard.media.short_count`),
    with the exact figure in its help where it was shortened."""
    shown = short_count(count)
    container.metric(label, shown, help=None if shown == f"{count:,}" else f"{count:,}")


def md_escape(text: object) -> str:
    """Text from users or files (a collection or file name, a path, an error message) shown
    literally inside Markdown, which Streamlit renders nearly everywhere (labels, captions,
    notices, progress text): no link, image, colour or emphasis can come out of it."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def code_span(text: object) -> str:
    """Text shown literally as inline code (a path, say), whatever backticks it holds."""
    value = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def download(
    label: str, data, file_name: str, mime: str, *, key: str, container=None, help: str | None = None
) -> None:
    """A download button that never reruns the page: a rerun on click dropped the file of the
    button clicked next (``MediaFileStorageError: Deferred file not found``). ``data`` may be
    bytes or a callable that makes them when clicked."""
    (container or st).download_button(
        label,
        data=data,
        file_name=file_name,
        mime=mime,
        key=key,
        icon=":material/download:",
        on_click="ignore",
        help=help,
    )


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)
