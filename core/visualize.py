"""Pictures of what the ViT sees: PCA patch maps, patch-to-[CLS] similarity, layer evolution.

Numpy in, numpy out (RGB ``uint8``); nothing here touches matplotlib's global ``pyplot`` state
(figures are drawn with the object API and rendered by ``FigureCanvasAgg``), so the functions
are safe in worker threads and in the dashboard.

>>> maps = image_maps(extractor, rgb, mode="full")          # doctest: +SKIP
>>> save_image_maps(maps, "out", "poster")["composite"]      # doctest: +SKIP
PosixPath('out/poster_composite.png')

Colour stability: :class:`PcaColorizer` is fitted once (on one image's patches, or on patches
sampled across a whole video) and then applied anywhere, so a colour means the same direction
of feature space in every frame and every layer it is applied to.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from core.errors import InvalidArgumentError
from core.features import FeatureExtractor, Features
from core.preprocess import Preprocessing

logger = logging.getLogger(__name__)

__all__ = [
    "BACKGROUND_THRESHOLD",
    "ImageMaps",
    "PcaColorizer",
    "border_mask",
    "cls_similarity",
    "composite_figure",
    "final_norm",
    "heatmap",
    "image_maps",
    "input_view",
    "label",
    "layer_grids",
    "layer_maps",
    "letterbox",
    "overlay",
    "pca_rgb",
    "preprocessing_for",
    "save_image_maps",
    "similarity_figure",
    "upscale_nearest",
]

BACKGROUND_THRESHOLD = 0.5
"""Default background cut on the first PCA component, scaled to 0..1 (see :class:`PcaColorizer`)."""

_PERCENTILES = (1.0, 99.0)  # robust min / max of each component
_MIN_FOREGROUND = 8  # fewer foreground samples than this: colour PCA is fitted on all samples

Corner = Literal[
    "top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "center"
]
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "center")


# -- the colour-stable PCA ----------------------------------------------------------------------
class PcaColorizer:
    """Patch features → RGB through a PCA fitted once.

    ``fit`` learns a scikit-learn PCA (3 components) and, per component, a robust min / max
    (the 1st and 99th percentiles of the fitted samples); ``transform`` projects any patches,
    scales them with those fixed bounds and clips, so colours are comparable across frames.

    With ``background_threshold`` (as in the DINOv2 paper's figures), a first one-component
    PCA separates foreground from background: its projection is scaled to 0..1 the same robust
    way, and patches below the threshold are background (drawn black). The colour PCA is then
    fitted on the foreground samples only, so the colours spend their range on the object.
    The sign of a principal component is arbitrary; the first one is oriented so that
    background scores low: the patches on the image border are assumed to be background when
    ``fit`` is told which they are (``border=``), otherwise the smaller group (the long tail of
    the distribution) is taken as the foreground.

    Args:
        n_components: 1 to 3 colour channels (missing channels stay 0).
        background_threshold: cut in 0..1 on the scaled first component, or None for no
            background suppression.
    """

    def __init__(self, n_components: int = 3, background_threshold: float | None = None) -> None:
        if not 1 <= n_components <= 3:
            raise InvalidArgumentError(f"n_components must be 1, 2 or 3 (RGB channels), got {n_components}")
        if background_threshold is not None and not 0.0 <= background_threshold <= 1.0:
            raise InvalidArgumentError(f"background threshold must be in 0..1, got {background_threshold}")
        self.n_components = n_components
        self.background_threshold = background_threshold
        self._pca: PCA | None = None
        self._lo: np.ndarray | None = None
        self._hi: np.ndarray | None = None
        self._bg_pca: PCA | None = None
        self._bg_sign = 1.0
        self._bg_lo = 0.0
        self._bg_hi = 1.0

    @property
    def fitted(self) -> bool:
        return self._pca is not None

    @property
    def dim(self) -> int | None:
        """Feature dimension the colorizer was fitted on."""
        return None if self._pca is None else int(self._pca.n_features_in_)

    def fit(self, patch_samples: np.ndarray, *, border: np.ndarray | None = None) -> PcaColorizer:
        """Fit on N×D patch features (e.g. one image's patches, or patches sampled across a video).

        Args:
            patch_samples: N×D features (any float dtype; used as float32).
            border: optional N booleans, True for samples on the image border; only used to
                orient the background component.

        Returns:
            ``self``.

        Raises:
            ValueError: not a 2-D array, too few samples, or non-finite values.
        """
        x = _as_samples(patch_samples)
        if border is not None:
            border = np.asarray(border, bool).reshape(-1)
            if border.shape[0] != x.shape[0]:
                raise ValueError(f"border has {border.shape[0]} entries for {x.shape[0]} samples")
        colour_samples = x
        if self.background_threshold is not None:
            self._bg_pca = PCA(n_components=1, random_state=0).fit(x)
            first = self._bg_pca.transform(x)[:, 0]
            self._bg_sign = _background_sign(first, border)
            first = first * self._bg_sign
            self._bg_lo, self._bg_hi = (float(v) for v in np.percentile(first, _PERCENTILES))
            foreground = self._scaled_first(first) >= self.background_threshold
            if foreground.sum() >= max(_MIN_FOREGROUND, self.n_components + 1):
                colour_samples = x[foreground]
            else:
                logger.warning(
                    "only %d of %d patches are foreground at threshold %.2f; colours fitted on all patches",
                    int(foreground.sum()),
                    len(x),
                    self.background_threshold,
                )
        k = min(self.n_components, colour_samples.shape[0], colour_samples.shape[1])
        self._pca = PCA(n_components=k, random_state=0).fit(colour_samples)
        proj = self._pca.transform(colour_samples)
        lo, hi = np.percentile(proj, _PERCENTILES, axis=0)
        self._lo, self._hi = lo.astype(np.float32), hi.astype(np.float32)
        return self

    def components(self, patches: np.ndarray) -> np.ndarray:
        """(..., D) features → (..., 3) float32 components scaled by the fitted bounds (not clipped)."""
        x, lead = self._flat(patches)
        assert self._pca is not None and self._lo is not None and self._hi is not None
        proj = self._pca.transform(x).astype(np.float32)
        scaled = (proj - self._lo) / np.maximum(self._hi - self._lo, 1e-6)
        out = np.zeros((len(x), 3), np.float32)
        out[:, : scaled.shape[1]] = scaled
        return out.reshape(*lead, 3)

    def foreground(self, patches: np.ndarray) -> np.ndarray:
        """(..., D) → (...) booleans: True where a patch is foreground (all True without threshold)."""
        x, lead = self._flat(patches)
        if self.background_threshold is None or self._bg_pca is None:
            return np.ones(lead, bool)
        first = self._bg_pca.transform(x)[:, 0] * self._bg_sign
        return (self._scaled_first(first) >= self.background_threshold).reshape(lead)

    def transform(self, patches: np.ndarray) -> np.ndarray:
        """(..., D) features → (..., 3) RGB uint8, clipped; background patches black.

        Raises:
            RuntimeError: called before :meth:`fit`.
            ValueError: the feature dimension differs from the fitted one.
        """
        rgb = np.clip(self.components(patches), 0.0, 1.0)
        rgb = np.rint(rgb * 255.0).astype(np.uint8)
        if self.background_threshold is not None:
            rgb[~self.foreground(patches)] = 0
        return rgb

    def _scaled_first(self, first: np.ndarray) -> np.ndarray:
        return (first - self._bg_lo) / max(self._bg_hi - self._bg_lo, 1e-6)

    def _flat(self, patches: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        if self._pca is None:
            raise RuntimeError("PcaColorizer.transform called before fit")
        x = np.asarray(patches, dtype=np.float32)
        if x.ndim < 1 or x.shape[-1] != self._pca.n_features_in_:
            raise ValueError(f"expected (..., {self._pca.n_features_in_}) features, got shape {x.shape}")
        return x.reshape(-1, x.shape[-1]), tuple(x.shape[:-1])


def _as_samples(patch_samples: np.ndarray) -> np.ndarray:
    x = np.asarray(patch_samples, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected N×D patch samples, got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 patch samples to fit a PCA, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("patch samples contain NaN or infinite values")
    return x


def _background_sign(first: np.ndarray, border: np.ndarray | None) -> float:
    """+1 or -1 so that background scores low on the first component."""
    if border is not None and border.any() and (~border).any():
        return 1.0 if first[border].mean() <= first[~border].mean() else -1.0
    centred = first - first.mean()
    skew = float(np.mean(centred**3))
    return 1.0 if skew >= 0 else -1.0  # the long tail (the smaller group) is the foreground


def border_mask(rows: int, cols: int) -> np.ndarray:
    """rows×cols booleans, True on the outermost ring of patches."""
    mask = np.zeros((rows, cols), bool)
    mask[0, :] = mask[-1, :] = True
    mask[:, 0] = mask[:, -1] = True
    return mask


def pca_rgb(patches: np.ndarray, *, background_threshold: float | None = None) -> np.ndarray:
    """One image's patch grid (rows×cols×D) → rows×cols×3 uint8, PCA fitted on this image.

    Args:
        patches: rows×cols×D features.
        background_threshold: see :class:`PcaColorizer` (None: no background suppression).
    """
    x = np.asarray(patches, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected rows×cols×D patches, got shape {x.shape}")
    rows, cols, d = x.shape
    colorizer = PcaColorizer(background_threshold=background_threshold)
    colorizer.fit(x.reshape(-1, d), border=border_mask(rows, cols).reshape(-1))
    return colorizer.transform(x)


# -- similarity and drawing helpers -----------------------------------------------------------
def cls_similarity(patches: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Cosine similarity of every patch (rows×cols×D) to the [CLS] token (D): rows×cols float32 in [-1, 1]."""
    p = np.asarray(patches, dtype=np.float32)
    c = np.asarray(cls, dtype=np.float32).reshape(-1)
    if p.ndim != 3 or p.shape[-1] != c.shape[0]:
        raise ValueError(f"patches {p.shape} and cls {c.shape} do not fit")
    pn = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    cn = c / max(float(np.linalg.norm(c)), 1e-12)
    return np.clip(pn @ cn, -1.0, 1.0).astype(np.float32)


def upscale_nearest(grid_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Enlarge a patch grid (rows×cols or rows×cols×C) to height×width, nearest neighbour (blocky)."""
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {width}×{height}")
    grid = np.ascontiguousarray(grid_rgb)
    return cv2.resize(grid, (int(width), int(height)), interpolation=cv2.INTER_NEAREST_EXACT)


def _colormap_lut(cmap: str) -> np.ndarray:
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError as err:
        raise InvalidArgumentError(f"unknown colour map {cmap!r}") from err
    return np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def heatmap(
    values: np.ndarray,
    height: int,
    width: int,
    *,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "viridis",
) -> np.ndarray:
    """A rows×cols value grid as an H×W×3 uint8 colour image (nearest-neighbour, one block a patch).

    Values are scaled from ``vmin..vmax`` to the colour map and clipped; NaN is drawn black.
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a rows×cols grid of values, got shape {v.shape}")
    if not vmax > vmin:
        raise InvalidArgumentError(f"vmax must be greater than vmin, got {vmin}..{vmax}")
    nan = ~np.isfinite(v)
    idx = np.rint(np.clip((np.nan_to_num(v) - vmin) / (vmax - vmin), 0.0, 1.0) * 255).astype(np.uint8)
    rgb = _colormap_lut(cmap)[idx]
    rgb[nan] = 0
    return upscale_nearest(rgb, height, width)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map over an image (both H×W×3 uint8; ``heat`` is resized if its size differs)."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be in 0..1, got {alpha}")
    img = _check_rgb(image)
    h = _check_rgb(heat, "heat")
    if h.shape[:2] != img.shape[:2]:
        h = cv2.resize(h, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    out = img.astype(np.float32) * (1.0 - alpha) + h.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


def letterbox(
    rgb: np.ndarray, width: int, height: int, color: tuple[int, int, int] = (24, 24, 24)
) -> np.ndarray:
    """Fit an image into width×height keeping its aspect ratio (never stretched), centred on ``color``."""
    img = _check_rgb(rgb)
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}×{height}")
    h, w = img.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(img, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else img
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.asarray(color, np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas


# OpenCV 5 draws Unicode text with its built-in fonts; older versions draw ASCII only (Hershey).
_CV2_UNICODE = int(cv2.__version__.split(".")[0]) >= 5


def _drawable(text: str) -> str:
    """The text as cv2 can draw it: unchanged on OpenCV ≥ 5, transliterated to ASCII before."""
    if _CV2_UNICODE:
        return text
    for sym, rep in (("≥", ">="), ("≤", "<="), ("×", "x"), ("–", "-"), ("—", "-"), ("…", "...")):
        text = text.replace(sym, rep)
    folded = unicodedata.normalize("NFKD", text)
    # accents (combining marks) are dropped; characters with no ASCII form (CJK, emoji) become '?'
    return "".join(ch if ch.isascii() else ("" if unicodedata.combining(ch) else "?") for ch in folded)


def label(
    rgb: np.ndarray,
    text: str,
    *,
    corner: Corner = "top-left",
    scale: float | None = None,
    color: tuple[int, int, int] = (255, 255, 255),
    box_alpha: float = 0.65,
) -> np.ndarray:
    """Draw ``text`` (lines split on ``\\n``) on a dark translucent box; returns a new image.

    Args:
        rgb: H×W×3 uint8.
        text: the label (OpenCV < 5 draws ASCII only: other characters are transliterated).
        corner: "top-left", "top-right", "bottom-left", "bottom-right", "top-center",
            "bottom-center" or "center".
        scale: cv2 font scale; default from the image height (readable at 224..1080 px).
        color: text colour.
        box_alpha: opacity of the black box behind the text.
    """
    if corner not in _CORNERS:
        raise InvalidArgumentError(f"corner must be one of {', '.join(_CORNERS)}, got {corner!r}")
    out = _check_rgb(rgb).copy()
    h, w = out.shape[:2]
    if scale is None:
        scale = float(np.clip(h / 620.0, 0.35, 1.2))
    thickness = 1 if scale < 0.75 else 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    pad = max(3, round(6 * scale))
    gap = max(2, round(5 * scale))
    margin = max(2, round(6 * scale))
    room = w - 2 * pad - 2 * margin
    lines = [_fit_line(_drawable(line), font, scale, thickness, room) for line in text.split("\n")]
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_h = max(sz[0][1] + sz[1] for sz in sizes)
    box_w = min(w, max(sz[0][0] for sz in sizes) + 2 * pad)
    box_h = min(h, len(lines) * line_h + (len(lines) - 1) * gap + 2 * pad)
    if corner.endswith("left"):
        x0 = margin
    elif corner.endswith("right"):
        x0 = w - box_w - margin
    else:
        x0 = (w - box_w) // 2
    if corner.startswith("top"):
        y0 = margin
    elif corner.startswith("bottom"):
        y0 = h - box_h - margin
    else:
        y0 = (h - box_h) // 2
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(w, x0 + box_w), min(h, y0 + box_h)
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.rint(region * (1.0 - box_alpha)).astype(np.uint8)
    y = y0 + pad
    for line, ((_, th), _baseline) in zip(lines, sizes, strict=True):
        y_text = y + th
        cv2.putText(out, line, (x0 + pad, y_text), font, scale, color, thickness, cv2.LINE_AA)
        y += line_h + gap
    return out


def _fit_line(line: str, font: int, scale: float, thickness: int, max_width: int) -> str:
    """Shorten a line that is too wide by cutting its middle (file names keep both ends)."""
    if cv2.getTextSize(line, font, scale, thickness)[0][0] <= max_width or len(line) <= 4:
        return line
    dots = "..." if not _CV2_UNICODE else "…"
    keep = len(line) - 1
    while keep > 2:
        head = (keep + 1) // 2
        candidate = line[:head] + dots + line[len(line) - (keep - head) :]
        if cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= max_width:
            return candidate
        keep -= 1
    return line[:1] + dots


def _check_rgb(rgb: np.ndarray, name: str = "image") -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB {name}, got shape {arr.shape} dtype {arr.dtype}")
    return arr


# -- model-side helpers -----------------------------------------------------------------------
def preprocessing_for(
    extractor: FeatureExtractor, mode: str = "crop", short_side: int = 448
) -> Preprocessing:
    """The model's own preprocessing ("crop": its centre crop) or the full-frame variant ("full").

    Raises:
        InvalidArgumentError: unknown mode or a short side smaller than the patch size.
    """
    if mode == "crop":
        return extractor.preprocessing
    if mode == "full":
        try:
            return extractor.preprocessing.full_frame(short_side)
        except ValueError as err:
            raise InvalidArgumentError(str(err)) from err
    raise InvalidArgumentError(f"mode must be 'crop' or 'full', got {mode!r}")


def input_view(pixel_values: torch.Tensor, prep: Preprocessing) -> np.ndarray:
    """Undo the normalisation of model input (B×3×H×W): the B×H×W×3 uint8 pixels the model saw."""
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (pixel_values.float().cpu() * std + mean) / prep.rescale_factor
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _run_model(
    extractor: FeatureExtractor, rgb: np.ndarray, prep: Preprocessing, *, layers: bool = False
) -> tuple[np.ndarray, Features]:
    img = _check_rgb(rgb)
    pixels = extractor.preprocess([img], prep)
    feats = extractor.forward(pixels, patches=True, layers=layers)
    return input_view(pixels, prep)[0], feats


def final_norm(extractor: FeatureExtractor, layer_tokens: np.ndarray) -> np.ndarray:
    """Apply the model's final layer norm to raw residual-stream tokens (..., D), as float32.

    The final layer's normed tokens are the model's output patch features, so a PCA fitted on
    those applies to every layer in the same space. Models without a ``layernorm`` get a plain
    (parameter-free) standardisation.
    """
    x = torch.from_numpy(np.ascontiguousarray(layer_tokens, dtype=np.float32))
    norm = getattr(extractor.model, "layernorm", None)
    with torch.inference_mode():
        if isinstance(norm, torch.nn.LayerNorm):
            weight = None if norm.weight is None else norm.weight.detach().float().cpu()
            bias = None if norm.bias is None else norm.bias.detach().float().cpu()
            y = F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)
        else:
            logger.warning("model has no final LayerNorm; standardising each layer's tokens instead")
            y = F.layer_norm(x, (x.shape[-1],))
    return y.numpy()


# -- maps of one image ------------------------------------------------------------------------
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
    short_side: int = 448,
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
    prep = preprocessing_for(extractor, mode, short_side)
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
    extractor: FeatureExtractor, rgb: np.ndarray, *, mode: str = "crop", short_side: int = 448
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model-input view and :func:`layer_maps` from one forward pass."""
    prep = preprocessing_for(extractor, mode, short_side)
    view, feats = _run_model(extractor, rgb, prep, layers=True)
    assert feats.layers is not None and feats.patches is not None
    layers = final_norm(extractor, feats.layers[:, 0])  # L×rows×cols×D, in the output's space
    rows, cols, d = layers.shape[1:]
    colorizer = PcaColorizer().fit(feats.patches[0].reshape(-1, d))
    return view, [colorizer.transform(layer) for layer in layers]


def layer_maps(
    extractor: FeatureExtractor, rgb: np.ndarray, *, mode: str = "crop", short_side: int = 448
) -> list[np.ndarray]:
    """Per transformer layer (1..L), a rows×cols×3 uint8 PCA map.

    The PCA and its scaler are fitted on the final layer's output (layer-normed) and applied to
    every layer's tokens after the same final layer norm, clipped: colours keep one meaning
    through the depth of the network, and early layers show how far they are from it.
    """
    return layer_grids(extractor, rgb, mode=mode, short_side=short_side)[1]


# -- figures ----------------------------------------------------------------------------------
def _figure_to_rgb(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:, :, :3])


def _describe(maps: ImageMaps) -> str:
    h, w = maps.image.shape[:2]
    what = "centre crop" if maps.mode == "crop" else "full frame"
    return f"input: {what} {w}x{h}"


def composite_figure(maps: ImageMaps, *, title: str | None = None, dpi: int = 100) -> np.ndarray:
    """Original | PCA | similarity heat map with a colour bar, as one RGB uint8 picture."""
    from matplotlib.figure import Figure

    h, w = maps.image.shape[:2]
    rows, cols = maps.grid
    aspect = w / h
    panel_w = min(4.0 * aspect, 4.8)  # wide frames: keep the whole figure about 16 inches wide
    panel_h = panel_w / aspect
    fig = Figure(
        figsize=(3 * panel_w + 1.4, panel_h + (1.3 if title else 0.9)), dpi=dpi, layout="constrained"
    )
    axes = fig.subplots(1, 3)
    axes[0].imshow(maps.image)
    axes[0].set_title(_describe(maps), fontsize=11)
    axes[1].imshow(maps.pca_grid, interpolation="nearest", extent=(0, w, h, 0))
    axes[1].set_title(f"PCA of patch features ({rows}x{cols} patches)", fontsize=11)
    vmin, vmax = maps.similarity_range
    im = axes[2].imshow(
        maps.similarity, cmap=maps.cmap, vmin=vmin, vmax=vmax, interpolation="nearest", extent=(0, w, h, 0)
    )
    axes[2].set_title("patch-to-[CLS] cosine similarity", fontsize=11)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03)
    bar.set_label("cosine similarity", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=13)
    return _figure_to_rgb(fig)


def similarity_figure(maps: ImageMaps, *, dpi: int = 100) -> np.ndarray:
    """The similarity heat map alone, with its colour bar, as RGB uint8."""
    from matplotlib.figure import Figure

    h, w = maps.image.shape[:2]
    fig = Figure(figsize=(4.0 * w / h + 1.2, 4.5), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    vmin, vmax = maps.similarity_range
    im = ax.imshow(
        maps.similarity, cmap=maps.cmap, vmin=vmin, vmax=vmax, interpolation="nearest", extent=(0, w, h, 0)
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("patch-to-[CLS] cosine similarity", fontsize=11)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("cosine similarity", fontsize=10)
    return _figure_to_rgb(fig)


def save_image_maps(maps: ImageMaps, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``{stem}_pca.png``, ``{stem}_similarity.png`` (heat map with colour bar),
    ``{stem}_overlay.png`` and ``{stem}_composite.png`` into ``out_dir`` (created if needed).

    Returns:
        ``{"pca": path, "similarity": path, "overlay": path, "composite": path}``.
    """
    from PIL import Image

    if not stem or os.sep in stem or (os.altsep and os.altsep in stem):
        raise InvalidArgumentError(f"stem must be a plain file name prefix, got {stem!r}")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {
        "pca": maps.pca,
        "similarity": similarity_figure(maps),
        "overlay": maps.overlay,
        "composite": composite_figure(maps, title=stem),
    }
    paths: dict[str, Path] = {}
    for name, rgb in pictures.items():
        path = folder / f"{stem}_{name}.png"
        Image.fromarray(rgb).save(path)
        paths[name] = path
    logger.info("wrote %d pictures of %s to %s", len(paths), stem, folder)
    return paths
