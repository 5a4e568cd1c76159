"""Video library: index videos from a server folder (in the background), see what is indexed, and
find where query images appear across all of it (``python -m core index-videos`` / ``find``)."""

from __future__ import annotations

import streamlit as st

from core.errors import USER_ERRORS, ImageLoadError
from core.matching.library import (
    LibraryReport,
    collection_library_keys,
    find_collection_images,
    find_embeddings,
    index_videos,
    library_keys,
)
from core.matching.params import DEFAULTS, MatchParams
from core.media.files import FILE_STATE_NOTES, video_file_state
from core.media.images import decode_image_bytes
from core.media.video import format_time
from dashboard import keys
from dashboard.jobs import with_index, with_model
from dashboard.pages import LIBRARY_IMAGE_PARAM as QUERY_IMAGE
from dashboard.server_paths import ForbiddenPathError, resolve_allowed
from dashboard.state import (
    get_index,
    get_thumbnails,
    load_extractor,
    on_demand_loader,
    settings,
    square_preview,
)
from dashboard.widgets import (
    IMAGE_TYPES,
    code_span,
    count_metric,
    follow_job,
    md_escape,
    outcome_notice,
    page_header,
    pick_collection,
    set_notice,
    show_error,
    show_notice,
    start_job,
)
from db import NotFoundError

PICKABLE = 500  # image names listed to pick from, as in Explore's picker

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


def _remove() -> None:
    """Take the videos picked in LIBRARY_REMOVE (their SHA-256) out of the library."""
    picked = list(st.session_state.get(keys.LIBRARY_REMOVE, []))
    if not picked:
        return
    try:
        frames = get_index().forget_videos(picked)
    except USER_ERRORS as err:
        set_notice(keys.LIBRARY_NOTICE, "error", md_escape(err))
        return
    st.session_state[keys.LIBRARY_REMOVE] = []
    st.session_state.pop(keys.LIBRARY_FOUND, None)
    set_notice(
        keys.LIBRARY_NOTICE,
        "success",
        f"Removed {len(picked)} video(s) from the library ({frames:,} cached frames); their match runs stay.",
    )


entries = index.searchable_videos()  # what find searches: indexed and matched videos alike
videos = {e.video.sha256: e.video.path for e in entries}
hours = sum({e.video.sha256: e.video.duration_s for e in entries}.values()) / 3600
left, mid, right = st.columns(3)
count_metric(left, "Videos", len(videos))
mid.metric("Hours of video", f"{hours:,.1f}")
count_metric(right, "Cached frames (all videos)", sum(e.frames for e in entries))
show_notice(keys.LIBRARY_NOTICE, once=True)
if entries:
    with st.expander("Videos searched"):
        st.dataframe(
            [
                {
                    "video": e.video.path,
                    "duration": format_time(e.video.duration_s),
                    "frames analysed": e.frames,
                    "source": e.source,
                    "file": video_file_state(e.video, index),
                }
                for e in entries
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            "Source: **indexed** by index-videos (**unfinished** if it was stopped), or **matched**: "
            "the frames a match run analysed. File: **ok**, **changed** since its frames were cached "
            "(index it again to know what it holds), **replaced** by other content (indexed since as "
            "another video: remove this one) or **missing**."
        )
        st.multiselect(
            "Remove from the library",
            list(videos),
            format_func=videos.get,
            key=keys.LIBRARY_REMOVE,
            help="Their cached frames are deleted, so find no longer searches them; their match runs "
            "stay and the files are not touched.",
        )
        st.button(
            "Remove",
            on_click=_remove,
            disabled=not st.session_state.get(keys.LIBRARY_REMOVE),
            key=keys.LIBRARY_REMOVE_BUTTON,
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
                start_job(
                    keys.LIBRARY_JOB,
                    "index-videos",
                    f"Indexing videos of {path.name or path}",
                    # the model loads in the job, and only if a video is left to index
                    with_index(str(settings().db_path), with_model(on_demand_loader(), index_videos)),
                    [str(path)],
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
QUERY_SOURCES = ("Upload images", "Images of a collection")
linked = st.query_params.get(QUERY_IMAGE)
if linked is not None:  # "Find in the video library" on an image opened in Browse
    del st.query_params[QUERY_IMAGE]
    try:
        rec = index.get_image(int(linked))
        st.session_state[keys.COLLECTION] = index.get_collection_by_id(rec.collection_id).name
        st.session_state[keys.LIBRARY_SOURCE] = QUERY_SOURCES[1]
        st.session_state.pop(keys.LIBRARY_COLLECTION, None)
        st.session_state[keys.LIBRARY_PICKED] = [rec.id]
        st.session_state[keys.LIBRARY_FILTER] = ""
    except (ValueError, NotFoundError):
        st.warning("The image of that link is not in the database any more.")
source = st.radio(
    "Query", QUERY_SOURCES, horizontal=True, key=keys.LIBRARY_SOURCE, label_visibility="collapsed"
)
threshold = st.slider("Threshold (cosine)", 0.0, 1.0, DEFAULTS.threshold, 0.01, key=keys.LIBRARY_THRESHOLD)
params = MatchParams(threshold=threshold)
previews: list = []  # a picture per query: RGB array (upload) or JPEG bytes (stored thumbnail)
try:
    if source == QUERY_SOURCES[0]:
        uploads = st.file_uploader(
            "Query images", type=IMAGE_TYPES, accept_multiple_files=True, key=keys.LIBRARY_QUERIES
        )
        if not uploads:
            st.stop()
        queries = [decode_image_bytes(f.getvalue(), f.name) for f in uploads]
        fx = load_extractor()
        upload_keys = library_keys(index, fx)
        if not upload_keys:
            st.info("No video frames are indexed for this model yet: index a folder of videos above.")
            st.stop()
        files = tuple(f.file_id for f in uploads)
        wanted = ("upload", files, threshold)
        previews = [q.rgb for q in queries]
        # embedded once per set of uploads: moving the threshold searches again, with no model pass
        embedded = st.session_state.get(keys.LIBRARY_EMBEDDED)
        if embedded is None or embedded[0] != (files, fx.model_id):
            with st.spinner("Embedding the query images…"):
                embedded = ((files, fx.model_id), fx.cls_embeddings(previews))
            st.session_state[keys.LIBRARY_EMBEDDED] = embedded

        def search():
            names = [f.name for f in uploads]
            return find_embeddings(index, upload_keys, embedded[1], names, params=params)
    else:
        coll = pick_collection(index, key=keys.LIBRARY_COLLECTION, require_images=True)
        if coll is None:
            st.stop()
        if not collection_library_keys(index, coll):
            st.info(
                f"No video frames are indexed for this collection's model ({code_span(coll.model_id)}) "
                "yet: index a folder of videos above with that model."
            )
            st.stop()
        name_filter = st.text_input(
            "Filter by file name", key=keys.LIBRARY_FILTER, placeholder="part of a file name"
        )
        records = index.list_images(coll.id, limit=PICKABLE, name_filter=name_filter or None)
        by_id = {r.id: r for r in records}
        kept = [i for i in st.session_state.get(keys.LIBRARY_PICKED, []) if i in by_id]
        st.session_state[keys.LIBRARY_PICKED] = kept
        picked = st.multiselect(
            "Images",
            list(by_id),
            format_func=lambda i: by_id[i].name,
            key=keys.LIBRARY_PICKED,
            placeholder=f"pick images (the first {PICKABLE} names that match the filter are listed)",
            help="Searched with the embeddings stored when they were indexed: no model pass.",
        )
        if not picked:
            st.stop()
        wanted = ("collection", coll.id, tuple(picked), threshold)
        thumbs = get_thumbnails(picked)
        previews = [square_preview(thumbs.get(i)) for i in picked]

        def search():
            return find_collection_images(index, coll, picked, params=params)

    cached = st.session_state.get(keys.LIBRARY_FOUND)
    if cached is None or cached[0] != wanted:
        with st.spinner("Searching the library…"):
            st.session_state[keys.LIBRARY_FOUND] = (wanted, search())
    found = st.session_state[keys.LIBRARY_FOUND][1]
except ImageLoadError as err:
    st.error(f"Cannot read this image: {md_escape(err.reason)}. Upload a JPEG, PNG, WebP, … file.")
    st.stop()
except USER_ERRORS as err:
    show_error(err)
    st.stop()

for preview, result in zip(previews, found, strict=True):
    pic, table = st.columns([1, 5], gap="medium")
    pic.image(preview, caption=result.query, width="stretch")
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
                    "file": a.file if a.file == "ok" else f"{a.file}: {FILE_STATE_NOTES[a.file]}",
                }
                for a in result.appearances
            ],
            hide_index=True,
            width="stretch",
        )
