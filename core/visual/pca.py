"""PCA of patch features as RGB, fitted once and applied anywhere (colour-stable).

:class:`PcaColorizer` is fitted once (on one image's patches, or on patches sampled across a
whole video) and then applied anywhere, so a colour means the same direction of feature space
in every frame and every layer it is applied to.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from core.errors import InvalidArgumentError
from core.lazy import decomposition

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

logger = logging.getLogger(__name__)

BACKGROUND_THRESHOLD = 0.5
"""Default background cut on the first PCA component, scaled to 0..1 (see :class:`PcaColorizer`)."""

_PERCENTILES = (1.0, 99.0)  # robust min / max of each component
_MIN_FOREGROUND = 8  # fewer foreground samples than this: colour PCA is fitted on all samples


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
            self._bg_pca = decomposition.PCA(n_components=1, random_state=0).fit(x)
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
        self._pca = decomposition.PCA(n_components=k, random_state=0).fit(colour_samples)
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
