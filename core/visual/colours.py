"""One colour per image, the same everywhere: timeline, heat map, segments, rendered video.

The colour follows from the image's id alone, never from the order in which images appear in
a run or above a threshold, so an image keeps its colour when the threshold moves and across
runs of the same collection. Consecutive ids (images indexed together) get distinct colours.
"""

from __future__ import annotations

# A qualitative palette readable on white and on dark panels (Tableau 10 + Plotly + D3 tones,
# without greys, which mean "no match").
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
    "#0d9488",
    "#a16207",
    "#4338ca",
    "#be123c",
    "#65a30d",
)
NO_MATCH = "#b0b7c3"
"""Frames below the threshold (grey: no image)."""


def image_colour(image_id: int) -> str:
    """The image's colour as ``#rrggbb``."""
    return PALETTE[int(image_id) % len(PALETTE)]


def image_rgb(image_id: int) -> tuple[int, int, int]:
    """The image's colour as an ``(r, g, b)`` tuple of 0..255."""
    hex_colour = image_colour(image_id)
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
