"""Every ``st.session_state`` key and widget key of the dashboard, named once.

Pages, widgets and tests (``AppTest``) use these names; a key written as a literal in two places
can drift. Keys that depend on a run or a job are functions of it.
"""

from __future__ import annotations

# -- shared across pages ----------------------------------------------------------------------
COLLECTION = "collection"  # the collection last picked on any page (pre-selects the next picker)
SAVED_UPLOADS = "_saved_uploads"  # upload id -> stored path, so an upload is stored once


def notice(key: str) -> str:
    """Where the outcome message of ``key``'s last job or action is kept."""
    return f"{key}:notice"


def job_result(job_key: str) -> str:
    """Where the result of ``job_key``'s last finished job is kept."""
    return f"{job_key}:result"


def cancel_job(job_id: int) -> str:
    return f"cancel-job-{job_id}"


# -- Collections --------------------------------------------------------------------------------
INDEX_JOB = "index-job"
REFRESH_JOB = "refresh-runs-job"  # bringing a changed collection's runs up to date
REFRESH_RUNS_BUTTON = "refresh-runs"
REFRESH_VIDEOS = "refresh-runs-videos"  # the checkbox: also match again the runs that need their video
INDEX_REPORT = "index-report"
MANAGE_COLLECTION = "manage-collection"
MANAGE_TAB = "manage-tab"
NEW_NAME = "new-collection-name"
NEW_MODEL = "new-collection-model"
CREATE_FORM = "create-collection"
CREATE_BUTTON = "create-collection-button"
COLLECTIONS_NOTICE = "collections"
ADMIN_NOTICE = "admin"
UPLOAD_GENERATION = "upload-generation"
INDEX_UPLOADS = "index-uploads"
INDEX_FOLDER = "index-folder"
INDEX_RECURSIVE = "index-recursive"
INDEX_FOLDER_BUTTON = "index-folder-button"
RENAME_TO = "rename-to"
DELETE_CONFIRM = "delete-confirm"
BROWSE_REMOVE = "browse-remove"  # remove the opened image from its collection
PRUNE_FOUND = "prune-found"  # the MissingFiles found by "Prune missing files", waiting for a yes
PRUNE_CONFIRM = "prune-confirm"
PRUNE_ALL = "prune-all"  # the second yes when every file of the collection is gone


def image_upload(generation: int) -> str:
    """The uploader's key: a new generation empties it after an indexing job took its files."""
    return f"image-upload-{generation}"


# -- Browse & search ----------------------------------------------------------------------------
BROWSE_COLLECTION = "browse-collection"
BROWSE_OPEN = "browse-open"
BROWSE_FILTER = "browse-filter"
BROWSE_PAGE = "browse-page"
BROWSE_PAGE_SIZE = "browse-page-size"
BROWSE_PREVIOUS = "browse-previous"
BROWSE_NEXT = "browse-next"
BROWSE_QUERY = "browse-query"
BROWSE_QUERY_EMBEDDING = "browse-query-embedding"
NEIGHBOURS_K = "neighbours-k"
QUERY_K = "query-k"


# -- shared widgets (their key is a prefix given by the page) -----------------------------------
def source_how(prefix: str) -> str:
    return f"{prefix}-how"


def source_upload(prefix: str) -> str:
    return f"{prefix}-upload"


def source_path(prefix: str) -> str:
    return f"{prefix}-path"


def source_collection(prefix: str) -> str:
    return f"{prefix}-collection"


def source_filter(prefix: str) -> str:
    return f"{prefix}-filter"


def source_image(prefix: str) -> str:
    return f"{prefix}-image"


# -- Match a video ------------------------------------------------------------------------------
MATCH_JOB = "match-job"
MATCH_BATCH_REPORT = "match-batch-report"  # the last batch's BatchReport (a folder matched)
MATCH_ADMIN_NOTICE = "match-admin"
RUN = "match-run"
RUN_TAB = "match-run-tab"  # the open tab under the inspector (only it is drawn); kept across runs
MATCH_VIDEO = "match-video"
MATCH_COLLECTION = "match-collection"
MATCH_SAMPLING = "match-sampling"
MATCH_STRIDE = "match-stride"
MATCH_FPS = "match-fps"
MATCH_MAX_INTERVAL = "match-max-interval"
MATCH_TOP_K = "match-topk"
MATCH_THRESHOLD = "match-threshold0"
MATCH_GAP = "match-gap0"
MATCH_MIN_DURATION = "match-min0"
MATCH_MAX_FRAMES = "match-max-frames"
MATCH_REGIONS = "match-regions"
MATCH_GO = "match-go"
MATCH_LAUNCHER = "match-launcher"  # the "New match run" form open (True) or closed
MATCH_FORM_DRAWN = "match-form-drawn"  # whether the last run of the page drew the form
MATCH_FORM = (
    source_how(MATCH_VIDEO),
    source_path(MATCH_VIDEO),
    MATCH_COLLECTION,
    MATCH_SAMPLING,
    MATCH_STRIDE,
    MATCH_FPS,
    MATCH_MAX_INTERVAL,
    MATCH_TOP_K,
    MATCH_THRESHOLD,
    MATCH_GAP,
    MATCH_MIN_DURATION,
    MATCH_MAX_FRAMES,
    MATCH_REGIONS,
)
"""The form's values, kept while it is closed and not drawn (its upload cannot be: see
:func:`dashboard.match_launcher.show`)."""


def run_threshold(run_id: int) -> str:
    return f"thr-{run_id}"


def run_gap(run_id: int) -> str:
    return f"gap-{run_id}"


def run_min_duration(run_id: int) -> str:
    return f"min-{run_id}"


def run_frame(run_id: int) -> str:
    return f"frame-{run_id}"


def run_timeline(run_id: int) -> str:
    return f"timeline-{run_id}"


def run_window(run_id: int) -> str:
    return f"window-{run_id}"


def run_zoom(run_id: int) -> str:
    return f"zoom-{run_id}"


def run_unzoom(run_id: int) -> str:
    return f"unzoom-{run_id}"


def run_segments(run_id: int) -> str:
    return f"segments-{run_id}"


def run_heatmap(run_id: int) -> str:
    return f"heat-{run_id}"


def run_histogram(run_id: int) -> str:
    return f"hist-{run_id}"


def run_download(run_id: int, kind: str) -> str:
    return f"{kind}-{run_id}"


def download(prefix: str, kind: str) -> str:
    """A download button of a result shown under ``prefix`` (a job's key, say)."""
    return f"{prefix}-{kind}"


def run_render_max(run_id: int) -> str:
    return f"render-max-{run_id}"


def run_render(run_id: int) -> str:
    return f"render-{run_id}"


def run_render_job(run_id: int) -> str:
    """The render job of one run: its notice ("Rendered N frames") belongs to that run alone."""
    return f"match-render-job-{run_id}"


def run_delete(run_id: int) -> str:
    return f"delete-run-{run_id}"


def run_search_again(run_id: int) -> str:
    return f"search-again-{run_id}"


def run_match_again(run_id: int) -> str:
    return f"match-again-{run_id}"


def run_overlay(run_id: int) -> str:
    return f"overlay-{run_id}"


def run_truth_upload(run_id: int) -> str:
    return f"truth-upload-{run_id}"


def run_truth_path(run_id: int) -> str:
    return f"truth-path-{run_id}"


def run_pr_curve(run_id: int) -> str:
    return f"pr-curve-{run_id}"


def run_apply_threshold(run_id: int) -> str:
    return f"apply-threshold-{run_id}"


# -- Explore ------------------------------------------------------------------------------------
EXPLORE_SOURCE = "explore"
EXPLORE_MODE = "explore-mode"
EXPLORE_SHORT_SIDE = "explore-short-side"
EXPLORE_SUPPRESS = "explore-suppress"
EXPLORE_OVERLAY = "explore-overlay"
EXPLORE_LAYER = "explore-layer"
EXPLORE_DOWNLOAD = "explore-download"

# -- Render -------------------------------------------------------------------------------------
LAYERS_JOB = "render-layers-job"
PCA_JOB = "render-pca-job"
LAYERS_SOURCE = "render-layers"
LAYERS_MODE = "render-layers-mode"
LAYERS_FPS = "render-layers-fps"
LAYERS_PANEL = "render-layers-panel"
LAYERS_GIF = "render-layers-gif"
LAYERS_GO = "render-layers-go"
PCA_SOURCE = "render-pca"
PCA_SIDE = "render-pca-side"
PCA_MAX_FRAMES = "render-pca-max"
PCA_FPS = "render-pca-fps"
PCA_HEIGHT = "render-pca-height"
PCA_GO = "render-pca-go"
RECENT = "render-recent"
RECENT_NEWEST = "render-recent-newest"  # the newest render when the list was last shown
RECENT_DOWNLOAD = "render-recent-download"


# -- Video library ------------------------------------------------------------------------------
LIBRARY_JOB = "library-job"
LIBRARY_FOLDER = "library-folder"
LIBRARY_INDEX_BUTTON = "library-index-button"
LIBRARY_QUERIES = "library-queries"
LIBRARY_THRESHOLD = "library-threshold"
LIBRARY_FOUND = "library-found"  # (what was searched, threshold) -> the last find's results
LIBRARY_EMBEDDED = "library-embedded"  # ((upload ids, model), their [CLS] embeddings)
LIBRARY_SOURCE = "library-source"  # upload images, or images of a collection
LIBRARY_COLLECTION = "library-collection"
LIBRARY_FILTER = "library-filter"
LIBRARY_PICKED = "library-picked"
LIBRARY_REMOVE = "library-remove"  # videos picked to take out of the library
LIBRARY_REMOVE_BUTTON = "library-remove-button"
LIBRARY_NOTICE = "library"
