"""Matplotlib figures of an image's maps (object API only, never ``pyplot``: safe in worker
threads and the dashboard), and writing them as PNG files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from core.errors import InvalidArgumentError
from core.visual.maps import ImageMaps

logger = logging.getLogger(__name__)


def _figure_to_rgb(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:, :, :3])


def _describe(maps: ImageMaps) -> str:
    h, w = maps.image.shape[:2]
    what = "centre crop" if maps.mode == "crop" else "full frame"
    return f"input: {what} {w}x{h}"


def _colour_bar(fig, image, ax) -> None:
    """The heat map's colour bar in an inset of its own axes: exactly as tall, never past it."""
    bar = fig.colorbar(image, cax=ax.inset_axes((1.03, 0.0, 0.045, 1.0)))
    bar.set_label("cosine similarity", fontsize=10)
    fig.get_layout_engine().set(w_pad=0.12)  # room for the bar and its labels on the right


def composite_figure(maps: ImageMaps, *, title: str | None = None, dpi: int = 100) -> np.ndarray:
    """Original | PCA | similarity heat map with a colour bar, as one RGB uint8 picture."""
    return _figure_to_rgb(composite(maps, title=title, dpi=dpi))


def composite(maps: ImageMaps, *, title: str | None = None, dpi: int = 100):
    """The matplotlib Figure of :func:`composite_figure` (its colour bar is exactly as tall as
    the heat map beside it)."""
    from matplotlib.figure import Figure

    h, w = maps.image.shape[:2]
    rows, cols = maps.grid
    aspect = w / h
    panel_w = min(4.0 * aspect, 4.8)  # wide frames: keep the whole figure about 16 inches wide
    panel_h = panel_w / aspect
    fig = Figure(
        figsize=(3 * panel_w + 1.6, panel_h + (1.3 if title else 0.9)), dpi=dpi, layout="constrained"
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
    _colour_bar(fig, im, axes[2])
    if title:
        fig.suptitle(title, fontsize=13, parse_math=False)  # a file name is text, never mathtext
    return fig


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
    _colour_bar(fig, im, ax)
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


def check_png(out: str | os.PathLike) -> Path:
    """``out`` as a Path, checked before any work.

    Raises:
        InvalidArgumentError: it does not name a .png file.
    """
    path = Path(out)
    if path.suffix.lower() != ".png" or path.is_dir():
        raise InvalidArgumentError(f"this writes a PNG picture: give a file name ending in .png, not {path}")
    return path


def pr_curve_png(
    recall: np.ndarray,
    precision: np.ndarray,
    thresholds: np.ndarray,
    out: str | os.PathLike,
    *,
    calibrated: tuple[float, float, float] | None = None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """A precision–recall curve over the threshold as a PNG (``evaluate --plot``).

    Args:
        calibrated: (recall, precision, threshold) of the point to mark (90 % precision).

    Raises:
        InvalidArgumentError: the name does not end in .png.
    """
    from matplotlib.figure import Figure

    path = check_png(out)
    fig = Figure(figsize=(5.2, 3.6), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color="#1f77b4", lw=2, label="over the threshold")
    ax.axhline(0.9, color="#9ca3af", ls=":", lw=1)
    if calibrated is not None:
        r, p, t = calibrated
        ax.plot(
            [r], [p], marker="*", ms=14, color="#16a34a", ls="", label=f"threshold {t:.3f} (90% precision)"
        )
    ax.set(
        xlim=(0, 1.02), ylim=(0, 1.05), xlabel="recall (share of the truth's time found)", ylabel="precision"
    )
    ax.legend(loc="lower left", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(_figure_to_rgb(fig)).save(path)
    return path
