"""Plotly figures of a match run, as pure functions of arrays (no Streamlit, no database).

- :func:`timeline_figure`: best score per frame over time, coloured by matched image, with the
  threshold as a line, as a Plotly figure (notebooks; the dashboard draws the same timeline on
  a canvas from :func:`dashboard.timeline_data.timeline_spec`);
- :func:`heatmap_figure`: images × time, the score of each of the top images per frame;
- :func:`histogram_figure`: distribution of best scores, split at the threshold;
- :func:`pr_curve_figure`: precision and recall over the threshold, against ground truth.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from core.visual.colours import NO_MATCH, image_colour
from dashboard.timeline_data import (
    BAND_FILL,
    BAND_LINE,
    LEGEND_IMAGES,
    MATCHED_COLOR,
    SELECTED_COLOR,
    THRESHOLD_COLOR,
    Timeline,
    legend_images,
    unique_labels,
)


def figure(traces: list[dict], layout: dict) -> go.Figure:
    """A Plotly figure from plain dicts, without Plotly's per-property validation: building and
    validating trace objects took ~200 ms a chart, most of a rerun's time on a long run."""
    return go.Figure(data=traces, layout=layout, _validate=False)


def _threshold_line(threshold: float, axis: str) -> tuple[dict, dict]:
    """The threshold as a dashed line (horizontal on the timeline, vertical on the histogram)."""
    if axis == "y":
        shape = {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": threshold,
            "y1": threshold,
        }
        note = {"xref": "paper", "x": 0, "yref": "y", "y": threshold, "xanchor": "left", "yanchor": "bottom"}
    else:
        shape = {
            "type": "line",
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "xref": "x",
            "x0": threshold,
            "x1": threshold,
        }
        note = {"yref": "paper", "y": 1, "xref": "x", "x": threshold, "xanchor": "left", "yanchor": "bottom"}
    shape["line"] = {"color": THRESHOLD_COLOR, "dash": "dash", "width": 1.5}
    note |= {"text": f"threshold {threshold:.2f}", "showarrow": False, "font": {"color": THRESHOLD_COLOR}}
    return shape, note


def timeline_figure(
    line: Timeline,
    names: Mapping[int, str],
    threshold: float,
    *,
    selected_time: float | None = None,
    max_images: int = LEGEND_IMAGES,
    height: int = 400,
) -> go.Figure:
    """Best score over time, from :func:`decimate` (never more points than the chart has room for).

    Matched points are drawn in their image's own colour (:func:`core.visual.colours.image_colour`);
    the ``max_images`` images with most matched points get a legend entry each, the others share
    an "other images" entry and keep their colours; points below the threshold are grey. A band
    spans each bucket's lowest to highest score. ``line.matched`` comes from the run view (the
    threshold is applied there: here it is only drawn). Every point carries
    ``customdata = [frame index, image label]``, so a click tells which frame it was.
    The dashboard draws the same timeline from :func:`timeline_spec`.
    """
    t, fi, sc, img = line.time_s, line.frame_index, line.score, line.image
    labels = unique_labels(img, names)
    finite = np.isfinite(sc)
    matched = line.drawn_matched()
    traces: list[dict] = []

    def custom(mask: np.ndarray) -> list[list]:
        return [[int(f), labels.get(int(i), "")] for f, i in zip(fi[mask], img[mask], strict=True)]

    def points(mask: np.ndarray, name: str, marker: dict) -> dict:
        return {
            "type": "scatter",
            "x": t[mask],
            "y": sc[mask],
            "mode": "markers",
            "marker": marker,
            "name": name,
            "customdata": custom(mask),
            "hovertemplate": "%{customdata[1]}<br>%{x:.2f} s · frame %{customdata[0]}<br>score %{y:.3f}<extra></extra>",
        }

    band = np.isfinite(line.low) & finite
    if band.any():
        traces.append(
            {"type": "scatter", "x": t[band], "y": line.low[band], "mode": "lines", "line": {"width": 0},
             "hoverinfo": "skip", "showlegend": False}
        )  # fmt: skip
        traces.append(
            {"type": "scatter", "x": t[band], "y": sc[band], "mode": "lines", "fill": "tonexty",
             "fillcolor": BAND_FILL, "line": {"color": BAND_LINE, "width": 1},
             "hoverinfo": "skip", "name": "best score", "showlegend": False}
        )  # fmt: skip
    below = finite & ~matched
    if below.any():
        traces.append(points(below, "below threshold", {"color": NO_MATCH, "size": 5}))
    shown, rest = legend_images(img, matched, max_images)
    for image_id in shown:
        traces.append(
            points(
                matched & (img == image_id),
                labels[int(image_id)],
                {"color": image_colour(image_id), "size": 7},
            )
        )
    if len(rest):
        mask = matched & np.isin(img, rest)
        colours = [image_colour(i) for i in img[mask]]
        traces.append(
            points(mask, f"{len(rest)} other images", {"color": colours, "size": 7, "symbol": "diamond"})
        )
    shape, note = _threshold_line(threshold, "y")
    shapes = [shape]
    if selected_time is not None and np.isfinite(selected_time):
        shapes.append(
            {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "xref": "x", "x0": float(selected_time),
             "x1": float(selected_time), "line": {"color": SELECTED_COLOR, "width": 1, "dash": "dot"}}
        )  # fmt: skip
    return figure(
        traces,
        {
            "height": height,
            "margin": {"l": 50, "r": 10, "t": 20, "b": 100},
            "xaxis": {"title": {"text": "time (s)"}},
            "yaxis": {"title": {"text": "best score"}, "range": list(line.score_range(threshold))},
            # the legend goes below the plot, clear of Plotly's tool bar at the top right
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
            "hovermode": "closest",
            "clickmode": "event+select",
            "shapes": shapes,
            "annotations": [note],
        },
    )


def top_images(image_ids: np.ndarray, scores: np.ndarray, *, top_n: int = 15) -> np.ndarray:
    """The ``top_n`` image ids with the highest peak score anywhere in a run's top-k, best first."""
    ids_all = np.asarray(image_ids, np.int64)
    sc_all = np.asarray(scores, np.float64)
    if ids_all.ndim != 2 or ids_all.shape != sc_all.shape:
        raise ValueError(f"expected (frames, k) arrays, got {ids_all.shape} and {sc_all.shape}")
    valid = (ids_all >= 0) & np.isfinite(sc_all)
    if not valid.any():
        return np.zeros(0, np.int64)
    flat_ids, flat_scores = ids_all[valid], sc_all[valid]
    order = np.argsort(flat_ids, kind="stable")  # each image's scores side by side: one reduce
    sorted_ids = flat_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    peak = np.maximum.reduceat(flat_scores[order], starts)
    return sorted_ids[starts][np.argsort(-peak, kind="stable")[:top_n]]


def score_matrix(
    image_ids: np.ndarray, scores: np.ndarray, *, top_n: int = 15, top: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The scores of the ``top_n`` images (by peak score) per frame.

    Returns:
        ``(ids (n,), matrix (n, frames))``; NaN where an image is not among a frame's top-k. An
        image scored twice in a frame (a region run's region) keeps its higher score.
    """
    ids_all = np.asarray(image_ids, np.int64)
    sc_all = np.asarray(scores, np.float64)
    top = top_images(ids_all, sc_all, top_n=top_n) if top is None else np.asarray(top, np.int64)
    if not len(top):
        return top, np.zeros((0, len(ids_all)), np.float64)
    valid = (ids_all >= 0) & np.isfinite(sc_all)
    order = np.argsort(top)
    sorted_top = top[order]
    pos = np.clip(np.searchsorted(sorted_top, ids_all), 0, len(top) - 1)
    hit = valid & (sorted_top[pos] == ids_all)
    frames, ranks = np.nonzero(hit)
    matrix = np.full((len(top), len(ids_all)), np.nan, np.float32)
    np.fmax.at(matrix, (order[pos[frames, ranks]], frames), sc_all[frames, ranks].astype(np.float32))
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
    top: np.ndarray | None = None,
    max_columns: int = 1500,
) -> go.Figure:
    """Images × time: how strongly each of the top images (``top``, or the ``top_n`` of
    :func:`top_images`) matches each frame."""
    t = np.asarray(time_s, np.float64)
    top, matrix = score_matrix(image_ids, scores, top_n=top_n, top=top)
    matrix, t = _bin_columns(matrix, t, max_columns)
    labels = unique_labels(top, names)
    y = [labels.get(int(i), f"#{i}") for i in top]
    # each row's label in its image's colour, as on the timeline
    ticks = [
        f'<span style="color:{image_colour(i)}">{html.escape(label)}</span>'
        for i, label in zip(top, y, strict=True)
    ]
    return figure(
        [
            {
                "type": "heatmap",
                "z": matrix,
                "x": t,
                "y": y,
                "colorscale": "Viridis",
                "zmax": 1.0,
                "colorbar": {"title": {"text": "score"}, "thickness": 12},
                "hovertemplate": "%{y}<br>%{x:.2f} s<br>score %{z:.3f}<extra></extra>",
                "hoverongaps": False,
            }
        ],
        {
            "height": max(220, 90 + 24 * len(y)),
            "margin": {"l": 10, "r": 10, "t": 20, "b": 40},
            "xaxis": {"title": {"text": "time (s)"}},
            "yaxis": {"autorange": "reversed", "automargin": True, "tickvals": y, "ticktext": ticks},
        },
    )


def histogram_figure(
    best_score: np.ndarray, matched: np.ndarray, threshold: float, *, bins: int = 60
) -> go.Figure:
    """Best scores per frame, frames not matched in grey and matched ones in blue.

    Counted here (two bar traces of ``bins`` counts), not by the browser from every score: a long
    run's scores would be megabytes of JSON. ``matched`` is the run view's decision per frame;
    ``threshold`` only draws its line.
    """
    sc_all = np.asarray(best_score, np.float64)
    finite = np.isfinite(sc_all)
    sc, hit = sc_all[finite], np.asarray(matched, bool)[finite]
    lo = float(min(sc.min(), threshold)) if len(sc) else min(0.0, threshold)
    hi = float(max(sc.max(), threshold)) if len(sc) else 1.0
    edges = np.linspace(lo, max(hi, lo + 1e-3), bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    traces = []
    for mask, colour, name in ((~hit, NO_MATCH, "below threshold"), (hit, MATCHED_COLOR, "matched")):
        counts, _ = np.histogram(sc[mask], bins=edges)
        traces.append(
            {
                "type": "bar",
                "x": centres,
                "y": counts,
                "width": width,
                "marker": {"color": colour},
                "name": name,
            }
        )
    shape, note = _threshold_line(threshold, "x")
    return figure(
        traces,
        {
            "barmode": "stack",
            "bargap": 0,
            "height": 260,
            "margin": {"l": 50, "r": 10, "t": 30, "b": 40},
            "xaxis": {"title": {"text": "best score of a frame"}},
            "yaxis": {"title": {"text": "frames"}},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
            "shapes": [shape],
            "annotations": [note],
        },
    )


PR_POINTS = 1000  # points drawn of a precision-recall curve


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
    if len(r) > PR_POINTS:  # an hour of frames has ~100k thresholds; the curve's shape needs ~1000
        keep = np.unique(np.r_[np.linspace(0, len(r) - 1, PR_POINTS).astype(np.int64), len(r) - 1])
        r, p, t = r[keep], p[keep], t[keep]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
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
