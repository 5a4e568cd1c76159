"""Browse & search: a paginated thumbnail grid of a collection (thumbnails from the database),
an image's details and nearest neighbours, and search by an uploaded query image."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from core.errors import USER_ERRORS, ImageLoadError
from core.matching.search import neighbours, search
from core.media.images import decode_image_bytes, load_image
from core.model.features import l2_normalize
from dashboard import keys
from dashboard.media import GRID_PAGE_SIZE, GRID_PAGE_SIZES, human_size, short_name
from dashboard.pages import LIBRARY, LIBRARY_IMAGE_PARAM
from dashboard.state import (
    collections_changed,
    get_collection_search,
    get_index,
    get_thumbnails,
    load_extractor,
    square_preview,
)
from dashboard.widgets import (
    IMAGE_TYPES,
    code_span,
    md_escape,
    page_header,
    pick_collection,
    set_notice,
    show_error,
    show_notice,
)
from db import Collection, NotFoundError

COLUMNS = 6

index = get_index()
page_header(
    "Browse & search", "Thumbnails come from the database, so browsing stays fast for large collections."
)

coll = pick_collection(index, key=keys.BROWSE_COLLECTION, require_images=True)
if coll is None:
    st.stop()


def _open(image_id: int | None) -> None:
    st.session_state[keys.BROWSE_OPEN] = image_id


def _remove(image_id: int, name: str, collection: Collection) -> None:
    """Remove the opened image from its collection (with its matches in runs) and close it."""
    try:
        get_index().remove_images(collection.id, [image_id])
    except USER_ERRORS as err:
        set_notice(keys.BROWSE_REMOVE, "error", md_escape(err))
        return
    collections_changed()
    st.session_state[keys.BROWSE_OPEN] = None
    set_notice(
        keys.BROWSE_REMOVE,
        "success",
        f"Removed **{md_escape(name)}** from **{md_escape(collection.name)}**, with its matches in runs.",
    )


def image_grid(
    ids: list[int], *, scores: list[float] | None = None, key: str, columns: int = COLUMNS
) -> None:
    """Thumbnails with names (and scores), each with an Open button."""
    records = index.get_images(ids)
    thumbs = get_thumbnails(ids)
    for start in range(0, len(ids), columns):
        cols = st.columns(columns)
        for offset, col in enumerate(cols):
            pos = start + offset
            if pos >= len(ids):
                break
            image_id = ids[pos]
            rec = records.get(image_id)
            with col:
                name = rec.name if rec else f"#{image_id}"
                st.image(square_preview(thumbs.get(image_id)), width="stretch")
                short = md_escape(short_name(name))
                st.caption(
                    f"{short} · **{scores[pos]:.3f}**" if scores is not None else short, help=md_escape(name)
                )
                st.button(
                    "Open", key=f"{key}-{image_id}-{pos}", on_click=_open, args=(image_id,), width="stretch"
                )


# -- an opened image ----------------------------------------------------------------------------
# Always the same slot, empty when no image is open: an element put before the grid only when an
# image opens moved every grid card one place down, and the browser built all 48 anew.
show_notice(keys.BROWSE_REMOVE, once=True)
opened_slot = st.container()
opened = st.session_state.get(keys.BROWSE_OPEN)
if opened is not None:
    try:
        rec = index.get_image(opened)
    except NotFoundError:
        st.session_state[keys.BROWSE_OPEN] = None
        rec = None
    if rec is not None and rec.collection_id == coll.id:
        with opened_slot, st.container(border=True):
            head, close = st.columns([6, 1])
            head.subheader(md_escape(rec.name))
            close.button("Close", on_click=_open, args=(None,), icon=":material/close:", width="stretch")
            pic, info = st.columns([2, 3], gap="large")
            with pic:
                if Path(rec.path).is_file():
                    try:
                        st.image(load_image(rec.path).rgb, width="stretch")
                    except ImageLoadError as err:
                        st.warning(
                            f"The original cannot be read ({md_escape(err.reason)}); showing the thumbnail."
                        )
                        st.image(square_preview(get_thumbnails([rec.id]).get(rec.id)), width="stretch")
                else:
                    st.warning("The original file is gone (moved or deleted); showing the stored thumbnail.")
                    st.image(square_preview(get_thumbnails([rec.id]).get(rec.id)), width="stretch")
            with info:
                size = Path(rec.path).stat().st_size if Path(rec.path).is_file() else None
                st.markdown(
                    f"**Path** {code_span(rec.path)}  \n**Size** {rec.width} × {rec.height} px"
                    + (f" · {human_size(size)}" if size else "")
                    + f"  \n**Added** {rec.added.replace('T', ' ')[:19]}  \n**SHA-256** `{rec.sha256[:16]}…`"
                )
                st.page_link(
                    LIBRARY.path,
                    label="Find in the video library",
                    icon=LIBRARY.icon,
                    query_params={LIBRARY_IMAGE_PARAM: str(rec.id)},
                )
                with st.popover("Remove from the collection", icon=":material/delete:"):
                    st.caption(
                        f"Removes **{md_escape(rec.name)}** from **{md_escape(coll.name)}**: its embedding, "
                        "thumbnail and its matches in runs. The file is not touched; indexing its folder "
                        "again adds it back."
                    )
                    st.button(
                        "Remove", on_click=_remove, args=(rec.id, rec.name, coll), key=keys.BROWSE_REMOVE
                    )
                k = st.slider("Neighbours", 3, 30, 12, key=keys.NEIGHBOURS_K)
            try:
                hits = neighbours(index, get_collection_search(coll.id), rec.id, k)
            except USER_ERRORS as err:
                show_error(err)
            else:
                st.markdown(
                    "**Nearest neighbours in the collection** (cosine similarity of [CLS] embeddings)"
                )
                image_grid([h.image_id for h in hits], scores=[h.score for h in hits], key="nn")

# -- search with a query image --------------------------------------------------------------------
with st.expander("Search with an image", icon=":material/image_search:"):
    query_file = st.file_uploader("Query image", type=IMAGE_TYPES, key=keys.BROWSE_QUERY)
    k_query = st.slider("Results", 1, 48, 12, key=keys.QUERY_K)
    if query_file is not None:
        try:
            image = decode_image_bytes(query_file.getvalue(), query_file.name)
            cache_key = (query_file.file_id, coll.model_id)
            cached = st.session_state.get(keys.BROWSE_QUERY_EMBEDDING)
            if cached is not None and cached[0] == cache_key:
                q = cached[1]
            else:
                fx = load_extractor(coll.model_id)
                with st.spinner("Embedding the query image…"):
                    q = l2_normalize(fx.cls_embeddings([image.rgb]))
                st.session_state[keys.BROWSE_QUERY_EMBEDDING] = (cache_key, q)
            vectors = get_collection_search(coll.id)
        except ImageLoadError as err:
            st.error(f"Cannot read this image: {md_escape(err.reason)}. Upload a JPEG, PNG, WebP, … file.")
        except USER_ERRORS as err:
            show_error(err)
        else:
            left, right = st.columns([1, 5], gap="medium")
            left.image(image.rgb, caption="query", width="stretch")
            with right:
                hits = search(vectors, q, k_query)[0]
                image_grid([h.image_id for h in hits], scores=[h.score for h in hits], key="query", columns=5)

# -- the grid -------------------------------------------------------------------------------------
st.subheader(md_escape(coll.name))


def _reset_page() -> None:
    st.session_state[keys.BROWSE_PAGE] = 1


f1, f2, f3 = st.columns([3, 1, 1])
name_filter = f1.text_input(
    "Filter by file name", key=keys.BROWSE_FILTER, placeholder="part of a file name", on_change=_reset_page
)
page_size = f2.selectbox(
    "Per page",
    GRID_PAGE_SIZES,
    index=GRID_PAGE_SIZES.index(GRID_PAGE_SIZE),
    key=keys.BROWSE_PAGE_SIZE,
    on_change=_reset_page,
)
# the picker's record has the count already: counting a million images again took ~80 ms a rerun
total = index.count_images(coll.id, name_filter=name_filter) if name_filter else coll.image_count
pages = max(1, math.ceil(total / page_size))
if st.session_state.get(keys.BROWSE_PAGE, 1) > pages:
    st.session_state[keys.BROWSE_PAGE] = pages
page = f3.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1, key=keys.BROWSE_PAGE)

if total == 0:
    st.info(
        f"No image names contain “{md_escape(name_filter)}”."
        if name_filter
        else "This collection has no images."
    )
else:
    offset = (int(page) - 1) * page_size
    records = index.list_images(coll.id, offset=offset, limit=page_size, name_filter=name_filter or None)
    st.caption(f"Images {offset + 1:,}–{offset + len(records):,} of {total:,}, ordered by path.")
    image_grid([r.id for r in records], key="grid")
    if pages > 1:  # a pager below the grid too: no scrolling back up to turn the page

        def _turn(step: int) -> None:
            st.session_state[keys.BROWSE_PAGE] = min(
                pages, max(1, int(st.session_state[keys.BROWSE_PAGE]) + step)
            )

        p1, p2, p3 = st.columns([1, 2, 1])
        p1.button("← Previous page", on_click=_turn, args=(-1,), disabled=page <= 1, key=keys.BROWSE_PREVIOUS)
        p2.caption(f"Page {int(page):,} of {pages:,}")
        p3.button("Next page →", on_click=_turn, args=(1,), disabled=page >= pages, key=keys.BROWSE_NEXT)
