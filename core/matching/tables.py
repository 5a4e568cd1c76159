"""A match run as pandas DataFrames: one row per frame, per frame and rank, or per segment.

Built from the run view's arrays in a few vectorised steps (an hour of video, 108,000 frames,
takes well under a second), with the view's own decisions: ``matched`` is the view's
threshold rule (:meth:`core.matching.runs.RunView.matched`), never re-applied here.

>>> frames_table(view).head()                                  # doctest: +SKIP
   frame_index  time_s  matched  inherited  source_frame  image_id         image     score
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.matching.runs import RunView

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = (
    "frame_index",
    "time_s",
    "matched",
    "inherited",
    "source_frame",
    "image_id",
    "image",
    "score",
)
MATCH_COLUMNS = ("frame_index", "time_s", "rank", "image_id", "image", "path", "score", "matched")
SEGMENT_COLUMNS = (
    "image_id",
    "image",
    "path",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "peak_score",
    "mean_score",
    "frames",
)


def _names(view: RunView, image_ids: np.ndarray) -> np.ndarray:
    """The file name of every id (``""`` for -1, no image), looked up once per distinct id."""
    ids = np.asarray(image_ids, np.int64)
    unique, inverse = np.unique(ids, return_inverse=True)
    names = np.array([view.image_name(int(i)) if i >= 0 else "" for i in unique], dtype=object)
    return names[inverse.reshape(ids.shape)] if ids.size else np.zeros(ids.shape, dtype=object)


def frames_table(view: RunView) -> pd.DataFrame:
    """One row per recorded frame: its best match (``image_id`` -1, ``image`` "" and ``score``
    NaN where it has none), whether it matched, and where an inherited result came from."""
    import pandas as pd

    res = view.results
    return pd.DataFrame(
        {
            "frame_index": res.frame_index,
            "time_s": res.time_s,
            "matched": view.matched(),
            "inherited": res.source_frame != res.frame_index,
            "source_frame": res.source_frame,
            "image_id": view.best_image,
            "image": _names(view, view.best_image),
            "score": view.best_score,
        },
        columns=list(FRAME_COLUMNS),
    )


def matches_table(view: RunView) -> pd.DataFrame:
    """One row per frame and rank (the whole frame's top-k, best first, ``rank`` 1..k), as the
    CSV export's ``frame`` rows; frames without matches have no rows. A region run's regions are
    in :attr:`RunView.regions`, and :func:`frames_table` has each frame's best of both."""
    import pandas as pd

    res = view.results
    rows, ranks = np.nonzero(res.image_ids >= 0) if res.k else (np.zeros(0, np.int64),) * 2
    ids = res.image_ids[rows, ranks] if res.k else np.zeros(0, np.int64)
    paths = np.array([view.image_paths.get(int(i), "") for i in ids], dtype=object)
    return pd.DataFrame(
        {
            "frame_index": res.frame_index[rows],
            "time_s": res.time_s[rows],
            "rank": ranks + 1,
            "image_id": ids,
            "image": _names(view, ids),
            "path": paths,
            "score": res.scores[rows, ranks] if res.k else np.zeros(0, np.float32),
            "matched": view.matched()[rows],
        },
        columns=list(MATCH_COLUMNS),
    )


def segments_table(view: RunView) -> pd.DataFrame:
    """One row per segment (the view's threshold, gap and minimum duration), by start time."""
    import pandas as pd

    rows = [
        {
            "image_id": s.image_id,
            "image": view.image_name(s.image_id),
            "path": view.image_paths.get(s.image_id, ""),
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "start_s": s.start_s,
            "end_s": s.end_s,
            "duration_s": s.duration_s,
            "peak_score": s.peak_score,
            "mean_score": s.mean_score,
            "frames": s.frames,
        }
        for s in view.segments
    ]
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))
