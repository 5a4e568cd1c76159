"""Explore an image: PCA map and patch-to-[CLS] similarity map of the ViT's features, and the
PCA of any layer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.errors import USER_ERRORS
from core.model.features import FeatureExtractor
from core.model.preprocess import FULL_SHORT_SIDE, MODES
from core.visual.drawing import upscale_nearest
from core.visual.figures import composite_figure
from core.visual.maps import ImageMaps, image_maps, layer_grids
from dashboard import keys
from dashboard.media import figure_name, png_bytes
from dashboard.state import get_index, load_extractor
from dashboard.widgets import code_span, download, image_source, page_header, show_error

SHORT_SIDES = [224, 336, FULL_SHORT_SIDE, 560, 672]

page_header(
    "Explore an image",
    "Colours of the PCA map: the 3 main directions of the patch features as RGB — similar colours, similar "
    "features. The similarity map: how close each patch is to the image's global [CLS] embedding.",
)


@st.cache_data(show_spinner="Running the model…", max_entries=16)
def _maps(
    model_id: str,
    sha256: str,
    mode: str,
    short_side: int,
    suppress: bool,
    _fx: FeatureExtractor,
    _rgb: np.ndarray,
) -> ImageMaps:
    return image_maps(_fx, _rgb, mode=mode, short_side=short_side, suppress_background=suppress)


@st.cache_data(show_spinner="Running the model (all layers)…", max_entries=8)
def _layers(
    model_id: str, sha256: str, mode: str, short_side: int, _fx: FeatureExtractor, _rgb: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    return layer_grids(_fx, _rgb, mode=mode, short_side=short_side)


index = get_index()
src_col, opt_col = st.columns([3, 2], gap="large")
with src_col:
    chosen = image_source(index, keys.EXPLORE_SOURCE)
with opt_col:
    mode = st.radio(
        "View",
        MODES,
        format_func={"crop": "Centre crop (what the model sees when matching)", "full": "Full image"}.get,
        key=keys.EXPLORE_MODE,
    )
    short_side = FULL_SHORT_SIDE
    if mode == "full":
        short_side = st.select_slider(
            "Short side (px)",
            SHORT_SIDES,
            value=FULL_SHORT_SIDE,
            key=keys.EXPLORE_SHORT_SIDE,
            help="More pixels, more patches: finer maps, slower.",
        )
    suppress = st.checkbox(
        "Hide background",
        key=keys.EXPLORE_SUPPRESS,
        help="Black out patches the first PCA component marks as background.",
    )
    # here, not above the third picture: there it pushed that picture below the other two
    overlay = st.toggle("Blend the similarity over the image", value=True, key=keys.EXPLORE_OVERLAY)

if chosen is None:
    st.info("Upload an image or pick one from a collection to see its feature maps.")
    st.stop()
image, model_id = chosen

try:
    fx = load_extractor(model_id)
    maps = _maps(fx.model_id, image.sha256, mode, short_side, suppress, fx, image.rgb)
except USER_ERRORS as err:
    show_error(err)
    st.stop()

rows, cols = maps.grid
st.caption(
    f"Model {code_span(fx.model_id)} · input {maps.image.shape[1]}×{maps.image.shape[0]} px · {rows}×{cols} patches"
)
c1, c2, c3 = st.columns(3)
c1.image(maps.image, caption="Model input", width="stretch")
c2.image(maps.pca, caption="PCA of the patch features", width="stretch")
lo, hi = maps.similarity_range
c3.image(
    maps.overlay if overlay else maps.similarity_rgb,
    caption=f"Similarity to [CLS] ({lo:.2f} … {hi:.2f}, viridis: dark low, yellow high)",
    width="stretch",
)
name = image.path.rsplit("/", 1)[-1]
download(
    "Download the figure (PNG)",
    lambda: png_bytes(composite_figure(maps, title=name)),
    figure_name(name, maps.mode),
    "image/png",
    key=keys.EXPLORE_DOWNLOAD,
)

st.subheader("Layer by layer")
st.caption(
    "The PCA is fitted on the last layer and applied to every layer, so colours keep their meaning: "
    "watch the features organise themselves through the network's depth."
)
try:
    view, grids = _layers(fx.model_id, image.sha256, mode, short_side, fx, image.rgb)
except USER_ERRORS as err:
    show_error(err)
    st.stop()
n = len(grids)
layer = st.slider("Layer", 1, n, n, key=keys.EXPLORE_LAYER)
h, w = view.shape[:2]
l1, l2, _ = st.columns(3)
l1.image(view, caption="Model input", width="stretch")
l2.image(upscale_nearest(grids[layer - 1], h, w), caption=f"Layer {layer} of {n}", width="stretch")
