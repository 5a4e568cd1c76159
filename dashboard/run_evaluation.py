"""The run explorer's Evaluate tab: a run against ground truth, and the threshold it calibrates.

Truth comes as an uploaded CSV or a path on the server (the forms of
:mod:`core.matching.truth`). The tab shows frame accuracy, AP over time, precision and recall
at the view's threshold, per-image figures and the precision–recall curve over the threshold;
one click sets the run's threshold slider to the threshold reaching 90 % precision (a
re-label from stored scores, no model).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.matching.runs import RunView
from core.matching.truth import (
    TARGET_PRECISION,
    GroundTruth,
    TruthFileError,
    evaluate_run,
    parse_truth,
)
from dashboard import charts, keys
from dashboard.state import with_paths

CONFIG = {"displaylogo": False}


def _truth(run_id: int) -> GroundTruth | None:
    """The truth the user gave (an upload wins over a path), or None; errors are shown."""
    c1, c2 = st.columns(2)
    upload = c1.file_uploader(
        "Truth CSV",
        type=["csv"],
        key=keys.run_truth_upload(run_id),
        help="image,start_s,end_s (segments, last frame included) or frame_index,image (labelled frames).",
    )
    path = c2.text_input("…or its path on the server", key=keys.run_truth_path(run_id)).strip()
    try:
        if upload is not None:
            return parse_truth(upload.getvalue().decode("utf-8-sig"), upload.name)
        if path:
            if not Path(path).is_file():
                st.error(f"No file at `{path}`: check the path.")
                return None
            return parse_truth(Path(path).read_text(encoding="utf-8-sig"), path)
    except (TruthFileError, UnicodeDecodeError) as err:
        st.error(f"{err}")
    return None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def show(view: RunView) -> None:
    run_id = view.run.id
    st.caption(
        "Compare the run with what the video really shows. Frames count as matched at the threshold "
        "above; AP and the curve cover every threshold."
    )
    truth = _truth(run_id)
    if truth is None:
        st.info("Upload a truth CSV (or give its path) to see how good this run is.")
        return
    result = evaluate_run(with_paths(view, view.best_image), truth)  # truth names images by path
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Frame accuracy", _pct(result.frame_accuracy), help=f"over {result.units:,} frames")
    m2.metric("Micro AP", "–" if result.micro_ap is None else f"{result.micro_ap:.3f}")
    m3.metric("Precision / recall", f"{_pct(result.precision)} / {_pct(result.recall)}", help="over time")
    at90 = result.threshold_at_p90
    m4.metric(f"Threshold at {TARGET_PRECISION:.0%} precision", "never" if at90 is None else f"{at90:.3f}")
    if len(result.curve):
        st.plotly_chart(
            charts.pr_curve_figure(
                result.curve.recall,
                result.curve.precision,
                result.curve.thresholds,
                current=(result.recall, result.precision, result.threshold),
                calibrated=result.curve.point(at90),
                target_precision=TARGET_PRECISION,
            ),
            key=keys.run_pr_curve(run_id),
            config=CONFIG,
        )
    if at90 is not None:

        def apply(value: float = at90) -> None:
            st.session_state[keys.run_threshold(run_id)] = float(min(max(value, 0.0), 1.0))

        st.button(
            f"Use threshold {at90:.3f} for this run",
            on_click=apply,
            key=keys.run_apply_threshold(run_id),
            icon=":material/tune:",
            help="Moves the threshold slider: the run is re-labelled from its stored scores, no model.",
        )
    else:
        st.warning(f"No threshold reaches {TARGET_PRECISION:.0%} precision on this truth.")
    if result.per_image:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "image": q.image,
                        "AP": q.ap,
                        "precision": q.precision,
                        "recall": q.recall,
                        "on screen (s)": round(q.truth_s, 2),
                        "found (s)": round(q.predicted_s, 2),
                    }
                    for q in result.per_image
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(format="%.3f") for c in ("AP", "precision", "recall")
            },
        )
