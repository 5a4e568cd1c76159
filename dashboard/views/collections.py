"""Collections: create, add images (upload or server folder) with a cancellable indexing job,
see failures, prune missing files, rename, delete."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import api
from core.errors import USER_ERRORS
from core.matching.indexing import IndexReport, find_missing_files, remove_missing_files
from core.matching.refresh import refresh_runs
from core.matching.runs import out_of_date_runs
from dashboard import keys
from dashboard.jobs import with_index
from dashboard.server_paths import ForbiddenPathError, resolve_allowed
from dashboard.state import (
    collections_changed,
    extractor_loader,
    get_index,
    load_extractor,
    model_loader,
    settings,
)
from dashboard.widgets import (
    IMAGE_TYPES,
    code_span,
    follow_job,
    md_escape,
    outcome_notice,
    page_header,
    pick_collection,
    save_uploaded,
    set_notice,
    show_error,
    show_notice,
    start_job,
)

s = settings()
index = get_index()
page_header(
    "Collections", "A collection is a set of images embedded with one model; videos are matched against it."
)

# -- finished indexing job? -------------------------------------------------------------------
snap = follow_job(keys.INDEX_JOB)
if snap is not None:
    collections_changed()
    st.session_state[keys.UPLOAD_GENERATION] = st.session_state.get(keys.UPLOAD_GENERATION, 0) + 1
    if snap.status == "done":
        report: IndexReport = snap.result
        st.session_state[keys.INDEX_REPORT] = report
        outcome_notice(
            keys.INDEX_JOB,
            snap,
            f"Indexing finished: {md_escape(report.summary())} in {report.elapsed_s:.1f} s.",
        )
    else:
        outcome_notice(keys.INDEX_JOB, snap, "")
show_notice(keys.INDEX_JOB)
refreshed = follow_job(keys.REFRESH_JOB)
if refreshed is not None:
    done = refreshed.result if refreshed.status == "done" else []
    searched = sum(d.status == "searched again" for d in done)
    matched = sum(d.status == "matched again" for d in done)
    left = [d for d in done if d.status not in ("searched again", "matched again")]
    outcome_notice(
        keys.REFRESH_JOB,
        refreshed,
        f"{searched + matched} of {len(done)} run{'s' if len(done) != 1 else ''} brought up to date: "
        f"{searched} from their cached frames, {matched} matched again from their videos."
        + "".join(f" Run #{d.run_id}: {md_escape(d.reason)}." for d in left),
    )
show_notice(keys.REFRESH_JOB)
report = st.session_state.get(keys.INDEX_REPORT)
if report is not None and (report.failed or report.duplicates or report.moved):
    with st.expander(
        f"Last indexing: {len(report.failed)} failed, {len(report.duplicates)} duplicates, "
        f"{len(report.moved)} moved"
    ):
        if report.failed:
            st.dataframe(
                [{"file": p, "reason": r} for p, r in report.failed], hide_index=True, width="stretch"
            )
        if report.duplicates:
            st.dataframe(
                [{"file": p, "same content as": o} for p, o in report.duplicates],
                hide_index=True,
                width="stretch",
            )
        if report.moved:
            st.caption(
                "Moved: the same content, stored under a path that no longer exists; the image takes its new path."
            )
            st.dataframe([{"file": p, "was": o} for p, o in report.moved], hide_index=True, width="stretch")

# -- all collections ----------------------------------------------------------------------------
collections = index.list_collections()
if collections:
    st.dataframe(
        [
            {
                "name": c.name,
                "images": c.image_count,
                "failed files": c.failure_count,
                "model": c.model_id,
                "created": c.created.replace("T", " ")[:16],
            }
            for c in collections
        ],
        hide_index=True,
        width="stretch",
    )

# -- create -------------------------------------------------------------------------------------
with st.expander("New collection", expanded=not collections, icon=":material/add:"):
    with st.form(keys.CREATE_FORM, border=False):
        name = st.text_input("Name", placeholder="e.g. posters", key=keys.NEW_NAME)
        model = st.text_input(
            "Model",
            value=s.model_id,
            key=keys.NEW_MODEL,
            help="Hub id or local folder of a DINOv2-family model. Every image of the collection, and every "
            "video matched against it, is embedded with this model.",
        )
        create = st.form_submit_button("Create collection", type="primary", key=keys.CREATE_BUTTON)
    if create:
        if not name.strip():
            st.error("Give the collection a name.")
        else:
            try:
                fx = load_extractor(model.strip() or s.model_id)
                coll = index.create_collection(name, fx.model_id, fx.preprocessing.to_json(), fx.hidden_size)
            except USER_ERRORS as err:  # the model cannot load, the name is taken, ...
                show_error(err)
            else:
                st.session_state[keys.MANAGE_COLLECTION] = coll.name
                st.session_state[keys.COLLECTION] = coll.name
                set_notice(
                    keys.COLLECTIONS_NOTICE,
                    "success",
                    f"Created collection **{md_escape(coll.name)}**. Add images below.",
                )
                st.rerun()
show_notice(keys.COLLECTIONS_NOTICE, once=True)
show_notice(keys.ADMIN_NOTICE, once=True)

if not collections:
    st.stop()

# -- manage one ---------------------------------------------------------------------------------
st.subheader("Manage a collection")
coll = pick_collection(index, key=keys.MANAGE_COLLECTION, label="Collection")
if coll is None:
    st.stop()
job_running = keys.INDEX_JOB in st.session_state
stale = out_of_date_runs(index, coll.id)
if stale and keys.REFRESH_JOB not in st.session_state:
    n = len(stale)
    st.info(
        f"{n} match run{'s' if n != 1 else ''} searched {md_escape(coll.name)} before it changed: "
        "images added since were not looked for. Bring them up to date from their cached frames "
        "(no model, no video file needed). A region run, or one whose frames are no longer cached, "
        "needs its video: it is matched again with its own options only if you tick the box."
    )
    videos = st.checkbox(
        "Also match again from their videos the runs that need them (loads the model)",
        key=keys.REFRESH_VIDEOS,
        disabled=job_running,
    )
    if st.button("Bring the runs up to date", key=keys.REFRESH_RUNS_BUTTON, disabled=job_running):
        start_job(
            keys.REFRESH_JOB,
            "refresh-runs",
            f"Bringing the runs of {coll.name} up to date",
            with_index(str(s.db_path), refresh_runs),
            coll.name,
            load=model_loader() if videos else None,
        )
        st.rerun()

# A segmented control keeps its choice across reruns (tabs jump back to the first after an action).
SECTIONS = {
    "add": "Add images",
    "failures": f"Failed files ({coll.failure_count})",
    "admin": "Prune, rename, delete",
}
section = st.segmented_control(
    "Section",
    list(SECTIONS),
    format_func=SECTIONS.get,
    key=keys.MANAGE_TAB,
    default="add",
    required=True,
    label_visibility="collapsed",
)


def _start_indexing(collection: str, model_id: str, paths: list[str], recursive: bool, label: str) -> None:
    start_job(
        keys.INDEX_JOB,
        "index",
        f"Indexing {label} into {collection}",
        api.index_folder,
        paths,
        collection,
        db=str(s.db_path),  # the job opens its own connection
        model=extractor_loader(model_id),  # the collection's own, loaded as the job's first stage
        recursive=recursive,
    )
    st.rerun()


if section == "add":
    upload_col, folder_col = st.columns(2, gap="large")
    with upload_col:
        st.markdown("**Upload images**")
        files = st.file_uploader(
            "Image files",
            type=IMAGE_TYPES,
            accept_multiple_files=True,
            key=keys.image_upload(st.session_state.get(keys.UPLOAD_GENERATION, 0)),
            help="Stored in the data folder (named by content hash), then indexed.",
        )
        if st.button(
            f"Index {len(files)} uploaded file{'s' if len(files) != 1 else ''}",
            disabled=not files or job_running,
            type="primary",
            key=keys.INDEX_UPLOADS,
        ):
            saved = [p for p in (save_uploaded(f, "images") for f in files) if p is not None]
            if saved:
                _start_indexing(
                    coll.name, coll.model_id, [str(p) for p in saved], False, f"{len(saved)} uploads"
                )
    with folder_col:
        st.markdown("**Index a folder on the server**")
        folder = st.text_input(
            "Folder or file path", key=keys.INDEX_FOLDER, placeholder="/data/images"
        ).strip()
        recursive = st.checkbox("Include sub-folders", value=True, key=keys.INDEX_RECURSIVE)
        if st.button("Index folder", disabled=job_running, key=keys.INDEX_FOLDER_BUTTON):
            if not folder:
                st.warning("Type the path of a folder (or file) on the server first.")
            else:
                try:
                    path = resolve_allowed(folder)
                except ForbiddenPathError as err:
                    show_error(err)
                else:
                    if not path.exists():
                        st.error(
                            f"{code_span(path)} does not exist on the server. Check the path (it is not a "
                            "path on your computer)."
                        )
                    else:
                        _start_indexing(
                            coll.name, coll.model_id, [str(path)], recursive, path.name or str(path)
                        )
    st.caption(
        f"Model: {code_span(coll.model_id)} · only new files are embedded; files already indexed are skipped, "
        "so re-indexing a folder is cheap. Indexing can be cancelled; finished batches are kept."
    )

if section == "failures":
    failures = index.list_failures(coll.id)
    if not failures:
        st.success("No failed files.")
    else:
        st.caption("These files could not be indexed. Fix or remove them, then index again.")
        st.dataframe(
            [
                {"file": f.path, "reason": f.reason, "when": f.created.replace("T", " ")[:16]}
                for f in failures
            ],
            hide_index=True,
            width="stretch",
        )


def _find_missing(name: str) -> None:
    """First click: find the images whose files are gone, to show before removing anything."""
    try:
        index = get_index()
        missing = find_missing_files(index, index.get_collection(name))
    except USER_ERRORS as err:
        set_notice(keys.ADMIN_NOTICE, "error", md_escape(err))
        return
    st.session_state.pop(keys.PRUNE_ALL, None)
    if missing.images:
        st.session_state[keys.PRUNE_FOUND] = missing
    else:
        st.session_state.pop(keys.PRUNE_FOUND, None)
        set_notice(keys.ADMIN_NOTICE, "success", f"{md_escape(missing.summary())}; nothing removed.")


def _prune() -> None:
    missing = st.session_state.pop(keys.PRUNE_FOUND, None)
    if missing is None:
        return
    try:
        removed = remove_missing_files(get_index(), missing)
    except USER_ERRORS as err:
        set_notice(keys.ADMIN_NOTICE, "error", md_escape(err))
        return
    collections_changed()
    set_notice(
        keys.ADMIN_NOTICE,
        "success",
        f"Removed {len(removed)} images of **{md_escape(missing.collection.name)}** whose files are gone: "
        f"{md_escape(_some_names(removed))}",
    )


def _some_names(paths: list[str], shown: int = 10) -> str:
    return ", ".join(Path(p).name for p in paths[:shown]) + (" …" if len(paths) > shown else "")


def _rename(old: str) -> None:
    new = st.session_state.get(keys.RENAME_TO, "").strip()
    try:
        renamed = get_index().rename_collection(old, new)
    except USER_ERRORS as err:
        set_notice(keys.ADMIN_NOTICE, "error", md_escape(err))
        return
    st.session_state[keys.MANAGE_COLLECTION] = renamed.name
    st.session_state[keys.COLLECTION] = renamed.name
    st.session_state[keys.RENAME_TO] = ""
    set_notice(
        keys.ADMIN_NOTICE, "success", f"Renamed **{md_escape(old)}** to **{md_escape(renamed.name)}**."
    )


def _delete(name: str) -> None:
    if st.session_state.get(keys.DELETE_CONFIRM, "").strip() != name:
        set_notice(
            keys.ADMIN_NOTICE,
            "warning",
            f"Nothing deleted: type the collection's name, **{md_escape(name)}**, to confirm.",
        )
        return
    try:
        get_index().delete_collection(name)
    except USER_ERRORS as err:
        set_notice(keys.ADMIN_NOTICE, "error", md_escape(err))
        return
    collections_changed()
    st.session_state.pop(keys.MANAGE_COLLECTION, None)
    st.session_state.pop(keys.COLLECTION, None)
    st.session_state[keys.DELETE_CONFIRM] = ""
    set_notice(keys.ADMIN_NOTICE, "success", f"Deleted collection **{md_escape(name)}**.")


if section == "admin":
    st.markdown("**Prune missing files**")
    st.caption(
        "Removes images whose original file was deleted (their embeddings and matches go too). Files "
        "that moved: index them where they are now instead; the images take their new paths."
    )
    st.button("Prune missing files", on_click=_find_missing, args=(coll.name,), disabled=job_running)
    missing = st.session_state.get(keys.PRUNE_FOUND)
    if missing is not None and missing.collection.id == coll.id:
        paths = [path for _, path in missing.images]
        if missing.everything:
            sentence = missing.summary()
            st.warning(f"{md_escape(sentence[:1].upper() + sentence[1:])}.", icon=":material/usb_off:")
            sure = st.checkbox(
                f"Remove all {len(paths):,} images anyway, with their matches", key=keys.PRUNE_ALL
            )
        else:
            st.warning(f"{md_escape(missing.summary())}: {md_escape(_some_names(paths))}")
            sure = True
        st.button(
            f"Remove {len(paths):,} images",
            type="primary",
            on_click=_prune,
            disabled=job_running or not sure,
            key=keys.PRUNE_CONFIRM,
        )
    st.divider()
    st.markdown("**Rename**")
    st.text_input("New name", key=keys.RENAME_TO, placeholder=coll.name)
    st.button("Rename", on_click=_rename, args=(coll.name,), disabled=job_running)
    st.divider()
    st.markdown("**Delete**")
    st.warning(
        f"Deleting **{md_escape(coll.name)}** removes its {coll.image_count:,} images, their embeddings and all match runs "
        "against it from the database. The original image files are not touched.",
        icon=":material/delete_forever:",
    )
    st.text_input(f"Type **{md_escape(coll.name)}** to confirm", key=keys.DELETE_CONFIRM)
    st.button("Delete collection", type="primary", on_click=_delete, args=(coll.name,), disabled=job_running)
