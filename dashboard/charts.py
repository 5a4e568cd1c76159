"""Plotly figures of a match run, as pure functions of arrays (no Streamlit, no database).

- :func:`timeline_figure`: best score per frame over time, coloured by matched image, with
  the threshold as a line (WebGL traces for long videos);
- :func:`heatmap_figure`: images × time, the score of each of the top images per frame;
- :func:`histogram_figure`: distribution of best scores, split at the threshold;
- :func:`pr_curve_figure`: precision and recall over the threshold, against ground truth;
- :func:`selected_frame`: the frame index a click on the timeline chose.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.visual.colours import NO_MATCH, image_colour

# Above this many points a trace is drawn with WebGL (go.Scattergl); below, SVG is crisper.
WEBGL_MIN_POINTS = 5000
THRESHOLD_COLOR = "#dc2626"
MATCHED_COLOR = "#1f77b4"
SELECTED_COLOR = "#111827"


def unique_labels(image_ids: np.ndarray, names: Mapping[int, str]) -> dict[int, str]:
    """``id -> label``: the file name, with ``(#id)`` added where two images share a name."""
    ids = [int(i) for i in np.unique(np.asarray(image_ids, np.int64)) if i >= 0]
    base = {i: names.get(i, f"#{i}") for i in ids}
    counts: dict[str, int] = {}
    for label in base.values():
        counts[label] = counts.get(label, 0) + 1
    return {i: (label if counts[label] == 1 else f"{label} (#{i})") for i, label in base.items()}


def _scatter(n_points: int):
    return go.Scattergl if n_points >= WEBGL_MIN_POINTS else go.Scatter


def timeline_figure(
    time_s: np.ndarray,
    frame_index: np.ndarray,
    best_score: np.ndarray,
    best_image: np.ndarray,
    matched: np.ndarray,
    names: Mapping[int, str],
    threshold: float,
    *,
    selected_time: float | None = None,
    max_images: int = 12,
    height: int = 400,
) -> go.Figure:
    """Best score per frame over time.

    One trace per matched image in the image's own colour (:func:`core.visual.colours.image_colour`;
    the ``max_images`` with most matched frames get a legend entry each, the rest share an
    "other images" entry but keep their colours), one grey trace for frames not matched, a thin
    line through all frames, the threshold as a dashed line and the selected frame as a vertical
    line. ``matched`` is the run view's decision per frame (the threshold is applied there, not
    here). Every point carries ``customdata = [frame index, image label]``, so a click tells
    which frame it was (see :func:`selected_frame`).
    """
    t = np.asarray(time_s, np.float64)
    fi = np.asarray(frame_index, np.int64)
    sc = np.asarray(best_score, np.float64)
    img = np.asarray(best_image, np.int64)
    matched = np.asarray(matched, bool)
    if not (len(t) == len(fi) == len(sc) == len(img) == len(matched)):
        raise ValueError(
            f"arrays differ in length: {len(t)}, {len(fi)}, {len(sc)}, {len(img)}, {len(matched)}"
        )
    labels = unique_labels(img, names)
    finite = np.isfinite(sc)
    matched = matched & (img >= 0)
    Trace = _scatter(len(t))
    fig = go.Figure()

    def custom(mask: np.ndarray) -> np.ndarray:
        lab = np.array([labels.get(int(i), "") for i in img[mask]], dtype=object)
        return np.column_stack([fi[mask].astype(object), lab])

    hover = "%{customdata[1]}<br>%{x:.2f} s · frame %{customdata[0]}<br>score %{y:.3f}<extra></extra>"
    if finite.any():
        fig.add_trace(
            Trace(
                x=t[finite],
                y=sc[finite],
                mode="lines",
                line={"color": "rgba(120,130,145,0.45)", "width": 1},
                name="best score",
                customdata=custom(finite),
                hovertemplate=hover,
                showlegend=False,
            )
        )
    below = finite & ~matched
    if below.any():
        fig.add_trace(
            Trace(
                x=t[below],
                y=sc[below],
                mode="markers",
                marker={"color": NO_MATCH, "size": 5},
                name="below threshold",
                customdata=custom(below),
                hovertemplate=hover,
            )
        )
    ids, counts = np.unique(img[matched], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    shown, rest = order[:max_images], order[max_images:]
    for image_id in shown:
        mask = matched & (img == image_id)
        fig.add_trace(
            Trace(
                x=t[mask],
                y=sc[mask],
                mode="markers",
                marker={"color": image_colour(image_id), "size": 7},
                name=labels[int(image_id)],
                customdata=custom(mask),
                hovertemplate=hover,
            )
        )
    if len(rest):
        mask = matched & np.isin(img, rest)
        fig.add_trace(
            Trace(
                x=t[mask],
                y=sc[mask],
                mode="markers",
                marker={"color": [image_colour(i) for i in img[mask]], "size": 7, "symbol": "diamond"},
                name=f"{len(rest)} other images",
                customdata=custom(mask),
                hovertemplate=hover,
            )
        )
    fig.add_hline(
        y=threshold,
        line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1.5},
        annotation_text=f"threshold {threshold:.2f}",
        annotation_position="top left",
        annotation_font_color=THRESHOLD_COLOR,
    )
    if selected_time is not None and np.isfinite(selected_time):
        fig.add_vline(x=float(selected_time), line={"color": SELECTED_COLOR, "width": 1, "dash": "dot"})
    low = float(np.nanmin(sc)) if finite.any() else 0.0
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 10, "t": 20, "b": 100},
        xaxis_title="time (s)",
        yaxis_title="best score",
        yaxis_range=[min(low, threshold) - 0.03, 1.02],
        # the legend goes below the plot, clear of Plotly's tool bar at the top right
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        hovermode="closest",
        clickmode="event+select",
    )
    return fig


def score_matrix(
    image_ids: np.ndarray, scores: np.ndarray, *, top_n: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """The scores of the ``top_n`` images (by peak score) per frame.

    Returns:
        ``(ids (n,), matrix (n, frames))``; NaN where an image is not among a frame's top-k.
    """
    ids_all = np.asarray(image_ids, np.int64)
    sc_all = np.asarray(scores, np.float64)
    if ids_all.ndim != 2 or ids_all.shape != sc_all.shape:
        raise ValueError(f"expected (frames, k) arrays, got {ids_all.shape} and {sc_all.shape}")
    valid = (ids_all >= 0) & np.isfinite(sc_all)
    if not valid.any():
        return np.zeros(0, np.int64), np.zeros((0, len(ids_all)), np.float64)
    flat_ids, flat_sc = ids_all[valid], sc_all[valid]
    uniq, inverse = np.unique(flat_ids, return_inverse=True)
    peak = np.full(len(uniq), -np.inf)
    np.maximum.at(peak, inverse, flat_sc)
    top = uniq[np.argsort(-peak, kind="stable")[:top_n]]
    order = np.argsort(top)
    sorted_top = top[order]
    pos = np.clip(np.searchsorted(sorted_top, ids_all), 0, len(top) - 1)
    hit = valid & (sorted_top[pos] == ids_all)
    frames, ranks = np.nonzero(hit)
    matrix = np.full((len(top), len(ids_all)), np.nan)
    matrix[order[pos[frames, ranks]], frames] = sc_all[frames, ranks]
    return top, matrix


def _bin_columns(matrix: np.ndarray, time_s: np.ndarray, max_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink to at most ``max_columns`` time bins, keeping each bin's highest score."""
    n = matrix.shape[1]
    if n <= max_columns:
        return matrix, time_s
    edges = np.linspace(0, n, max_columns + 1).astype(np.int64)
    starts = np.unique(edges[:-1])
    filled = np.where(np.isnan(matrix), -np.inf, matrix)
    binned = np.maximum.reduceat(filled, starts, axis=1)
    binned[np.isneginf(binned)] = np.nan
    return binned, time_s[starts]


def heatmap_figure(
    time_s: np.ndarray,
    image_ids: np.ndarray,
    scores: np.ndarray,
    names: Mapping[int, str],
    *,
    top_n: int = 15,
    max_columns: int = 1500,
) -> go.Figure:
    """Images × time: how strongly each of the top images matches each frame."""
    t = np.asarray(time_s, np.float64)
    top, matrix = score_matrix(image_ids, scores, top_n=top_n)
    matrix, t = _bin_columns(matrix, t, max_columns)
    labels = unique_labels(top, names)
    y = [labels.get(int(i), f"#{i}") for i in top]
    # each row's label in its image's colour, as on the timeline
    ticks = [
        f'<span style="color:{image_colour(i)}">{html.escape(label)}</span>'
        for i, label in zip(top, y, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=t,
            y=y,
            colorscale="Viridis",
            zmax=1.0,
            colorbar={"title": {"text": "score"}, "thickness": 12},
            hovertemplate="%{y}<br>%{x:.2f} s<br>score %{z:.3f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_layout(
        height=max(220, 90 + 24 * len(y)),
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
        xaxis_title="time (s)",
        yaxis={"autorange": "reversed", "automargin": True, "tickvals": y, "ticktext": ticks},
    )
    return fig


def histogram_figure(
    best_score: np.ndarray, matched: np.ndarray, threshold: float, *, bins: int = 60
) -> go.Figure:
    """Best scores per frame, frames not matched in grey and matched ones in blue.

    ``matched`` is the run view's decision per frame; ``threshold`` only draws its line.
    """
    sc_all = np.asarray(best_score, np.float64)
    finite = np.isfinite(sc_all)
    sc, hit = sc_all[finite], np.asarray(matched, bool)[finite]
    lo = float(min(sc.min(), threshold)) if len(sc) else min(0.0, threshold)
    hi = float(max(sc.max(), threshold)) if len(sc) else 1.0
    size = max((hi - lo) / bins, 1e-3)
    xbins = {"start": lo, "end": hi + size, "size": size}
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=sc[~hit], xbins=xbins, marker_color=NO_MATCH, name="below threshold"))
    fig.add_trace(go.Histogram(x=sc[hit], xbins=xbins, marker_color=MATCHED_COLOR, name="matched"))
    fig.add_vline(
        x=threshold,
        line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 1.5},
        annotation_text=f"threshold {threshold:.2f}",
        annotation_font_color=THRESHOLD_COLOR,
    )
    fig.update_layout(
        barmode="stack",
        height=260,
        margin={"l": 50, "r": 10, "t": 30, "b": 40},
        xaxis_title="best score of a frame",
        yaxis_title="frames",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig


def pr_curve_figure(
    recall: np.ndarray,
    precision: np.ndarray,
    thresholds: np.ndarray,
    *,
    current: tuple[float | None, float | None, float] | None = None,
    calibrated: tuple[float, float, float] | None = None,
    target_precision: float = 0.9,
    height: int = 340,
) -> go.Figure:
    """Precision against recall over the threshold (one point per threshold, highest first).

    Args:
        current: (recall, precision, threshold) at the view's threshold, drawn as a marker.
        calibrated: (recall, precision, threshold) of the threshold reaching ``target_precision``.
    """
    r, p, t = (np.asarray(a, np.float64) for a in (recall, precision, thresholds))
    if not len(r) == len(p) == len(t):
        raise ValueError(f"arrays differ in length: {len(r)}, {len(p)}, {len(t)}")
    fig = go.Figure()
    fig.add_trace(
        _scatter(len(r))(
            x=r,
            y=p,
            mode="lines+markers" if len(r) < 200 else "lines",
            line={"color": MATCHED_COLOR, "width": 2, "shape": "hv"},
            marker={"size": 4},
            customdata=t,
            name="over the threshold",
            hovertemplate="threshold %{customdata:.3f}<br>recall %{x:.3f}<br>precision %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(
        y=target_precision,
        line={"color": NO_MATCH, "dash": "dot", "width": 1},
        annotation_text=f"{target_precision:.0%} precision",
        annotation_position="bottom left",
    )
    marks = [(calibrated, "#16a34a", "star", f"({target_precision:.0%} precision)")]
    if current is not None and current[0] is not None and current[1] is not None:
        marks.append((current, THRESHOLD_COLOR, "x", "(this view)"))
    for point, colour, symbol, what in marks:
        if point is None:
            continue
        cr, cp, ct = point
        fig.add_trace(
            go.Scatter(
                x=[cr],
                y=[cp],
                mode="markers",
                marker={"color": colour, "size": 12, "symbol": symbol},
                name=f"threshold {ct:.3f} {what}",
                hovertemplate=f"threshold {ct:.3f}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 10, "t": 20, "b": 80},
        xaxis={"title": "recall (share of the truth's time found)", "range": [0, 1.02]},
        yaxis={"title": "precision (share of found time that is right)", "range": [0, 1.05]},
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
    )
    return fig


def selected_frame(event: Any) -> int | None:
    """The frame index of the first point in a ``st.plotly_chart(on_select=...)`` event, if any."""
    if event is None:
        return None
    selection = event.get("selection") if isinstance(event, Mapping) else getattr(event, "selection", None)
    if selection is None:
        return None
    points = selection.get("points") if isinstance(selection, Mapping) else getattr(selection, "points", None)
    for point in points or ():
        custom = point.get("customdata") if isinstance(point, Mapping) else None
        if custom is None:
            continue
        try:
            return int(custom[0] if isinstance(custom, list | tuple) else custom)
        except (TypeError, ValueError, IndexError):
            continue
    return None
