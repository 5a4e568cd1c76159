"""Maps of one image: PCA of the patch features, patch-to-[CLS] similarity, every layer's PCA.

>>> maps = image_maps(extractor, rgb, mode="full")          # doctest: +SKIP
>>> maps.pca.shape, maps.similarity.shape                    # doctest: +SKIP
((448, 672, 3), (32, 48))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.model.features import FeatureExtractor, Features
from core.model.preprocess import FULL_SHORT_SIDE, Preprocessing, input_view
from core.visual.drawing import _check_rgb, heatmap, overlay, upscale_nearest
from core.visual.pca import BACKGROUND_THRESHOLD, PcaColorizer, pca_rgb


def cls_similarity(patches: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Cosine similarity of every patch (rows×cols×D) to the [CLS] token (D): rows×cols float32 in [-1, 1]."""
    p = np.asarray(patches, dtype=np.float32)
    c = np.asarray(cls, dtype=np.float32).reshape(-1)
    if p.ndim != 3 or p.shape[-1] != c.shape[0]:
        raise ValueError(f"patches {p.shape} and cls {c.shape} do not fit")
    pn = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    cn = c / max(float(np.linalg.norm(c)), 1e-12)
    return np.clip(pn @ cn, -1.0, 1.0).astype(np.float32)


def _run_model(
    extractor: FeatureExtractor, rgb: np.ndarray, prep: Preprocessing, *, layers: bool = False
) -> tuple[np.ndarray, Features]:
    img = _check_rgb(rgb)
    pixels = extractor.preprocess([img], prep)
    feats = extractor.forward(pixels, patches=True, layers=layers)
    return input_view(pixels, prep)[0], feats


@dataclass(frozen=True, eq=False)
class ImageMaps:
    """Everything drawn for one image.

    Attributes:
        image: H×W×3 uint8, the model-input view (the centre crop in crop mode, the resized full
            frame in full mode); H, W = rows, cols × patch size.
        grid: (rows, cols) of the patch grid.
        mode: "crop" or "full".
        pca: H×W×3 uint8 PCA map, upscaled nearest-neighbour.
        pca_grid: rows×cols×3 uint8 PCA map, one pixel a patch.
        similarity: rows×cols float32 cosine of each patch to [CLS], in [-1, 1].
        similarity_rgb: H×W×3 uint8 heat map of ``similarity`` over ``similarity_range``.
        overlay: H×W×3 uint8 heat map blended over ``image``.
        similarity_range: (vmin, vmax) the heat map's colours span (the map's own min..max).
        cmap: colour map of the heat map.
    """

    image: np.ndarray
    grid: tuple[int, int]
    mode: str
    pca: np.ndarray
    pca_grid: np.ndarray
    similarity: np.ndarray
    similarity_rgb: np.ndarray
    overlay: np.ndarray
    similarity_range: tuple[float, float] = (-1.0, 1.0)
    cmap: str = "viridis"


def _value_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (-1.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    return (lo, hi)


def image_maps(
    extractor: FeatureExtractor,
    rgb: np.ndarray,
    *,
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
    suppress_background: bool = False,
    background_threshold: float = BACKGROUND_THRESHOLD,
    cmap: str = "viridis",
) -> ImageMaps:
    """PCA map, patch-to-[CLS] similarity and overlay of one RGB image (one forward pass).

    Args:
        extractor: the loaded model.
        rgb: H×W×3 uint8 image.
        mode: "crop" (the model's own centre crop, e.g. 224 px → 16×16 patches) or "full" (the
            whole image, aspect ratio kept, short side ``short_side`` rounded to the patch size;
            position embeddings are interpolated by the model).
        short_side: the full-frame mode's short side in pixels.
        suppress_background: black out patches whose first PCA component is below
            ``background_threshold`` (scaled 0..1).
        cmap: colour map of the similarity heat map.

    Raises:
        InvalidArgumentError: bad mode / short side; ValueError: not an RGB uint8 image.
    """
    prep = extractor.preprocessing.for_mode(mode, short_side)
    view, feats = _run_model(extractor, rgb, prep)
    assert feats.patches is not None
    patches, cls = feats.patches[0], feats.cls[0]
    rows, cols = patches.shape[:2]
    h, w = view.shape[:2]
    grid_rgb = pca_rgb(patches, background_threshold=background_threshold if suppress_background else None)
    sim = cls_similarity(patches, cls)
    vmin, vmax = _value_range(sim)
    sim_rgb = heatmap(sim, h, w, vmin=vmin, vmax=vmax, cmap=cmap)
    return ImageMaps(
        image=view,
        grid=(rows, cols),
        mode=prep.mode,
        pca=upscale_nearest(grid_rgb, h, w),
        pca_grid=grid_rgb,
        similarity=sim,
        similarity_rgb=sim_rgb,
        overlay=overlay(view, sim_rgb, 0.5),
        similarity_range=(vmin, vmax),
        cmap=cmap,
    )


def layer_grids(
    extractor: FeatureExtractor, rgb: np.ndarray, *, mode: str = "crop", short_side: int = FULL_SHORT_SIDE
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model-input view and :func:`layer_maps` from one forward pass."""
    prep = extractor.preprocessing.for_mode(mode, short_side)
    view, feats = _run_model(extractor, rgb, prep, layers=True)
    assert feats.layers is not None and feats.patches is not None
    layers = feats.layers[:, 0]  # L×rows×cols×D, after the final norm: in the output's space
    rows, cols, d = layers.shape[1:]
    colorizer = PcaColorizer().fit(feats.patches[0].reshape(-1, d))
    return view, [colorizer.transform(layer) for layer in layers]


def layer_maps(
    extractor: FeatureExtractor, rgb: np.ndarray, *, mode: str = "crop", short_side: int = FULL_SHORT_SIDE
) -> list[np.ndarray]:
    """Per transformer layer (1..L), a rows×cols×3 uint8 PCA map.

    The PCA and its scaler are fitted on the final layer's output (layer-normed) and applied to
    every layer's tokens after the same final layer norm, clipped: colours keep one meaning
    through the depth of the network, and early layers show how far they are from it.
    """
    return layer_grids(extractor, rgb, mode=mode, short_side=short_side)[1]
