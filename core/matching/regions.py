"""Region mode: find collection images that fill only part of a frame (``match --regions``).

A frame's global embedding sees the model's centre crop of the whole frame; a poster on a
wall, a photo beside a news anchor or a picture-in-picture at a quarter of the frame's width
hardly moves it. Region mode looks for each image inside the frame, in two steps:

1. **Where** (patch tokens): the whole frame, at :attr:`RegionSettings.short_side`, goes
   through the model's first blocks only (:attr:`RegionSettings.depth` of them); each candidate
   image, as the model sees it when it is indexed (its centre crop), goes through the same
   blocks at several sizes of k×k patches. Early tokens still describe their own patch, so a
   template slid over the frame's tokens (a convolution of unit tokens: the mean cosine of
   corresponding patches) peaks where the image is, at the size it has there. Two places are
   kept: the highest peak, and the place that stands out most: where one candidate's template
   beats the other candidates' by the widest margin (with fewer than 16 candidates, where a
   template's own scores peak highest above the rest of the frame). Large pictures win the
   first, small ones often only the second; two places that mostly overlap are one.
2. **Which, and how well** (the usual embedding): each place is cut out of the frame, resized
   to the model's input and embedded like a collection image; the best match in the whole
   collection of either is the frame's region, with the box in frame pixels. Its score is the
   same cosine as a whole frame's, so one threshold serves both, and a frame's best match is
   the better of the two (:func:`best_matches`): re-labelling needs no model.

Candidates are the whole collection up to :attr:`RegionSettings.max_candidates` images, and
otherwise the frame's own best matches that many; their templates are made from the stored
thumbnails (no extra storage) once per run and kept for the run.

Why this design (bench/region_bench.py measures it): comparing final-layer tokens, or pooled
tokens, of a small picture in a frame with those of the picture alone fails on the benchmark's
model (the context of the frame mixes into every final token), and embedding a grid of crops
needs hundreds of windows per frame to cut a small picture tightly enough, at a cost of tens
of frames. Early tokens locate; two tight crops confirm.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import cv2
import numpy as np

from core.errors import InvalidArgumentError
from core.lazy import functional as F
from core.lazy import torch
from core.matching.search import ExactSearch, VectorSearch
from core.model.features import FeatureExtractor, l2_normalize
from core.model.frames import COMPUTE, FrameBatch
from core.model.preprocess import Preprocessing, preprocess_images
from db import EmbeddingMatrix, FrameRegions, FrameResults

logger = logging.getLogger(__name__)

Thumbnails = Callable[[Sequence[int]], dict[int, bytes]]
"""``thumbnails(image_ids) -> {id: JPEG bytes}`` (:meth:`db.Index.get_thumbnails`)."""
TEMPLATE_CACHE_FRAMES = 8
"""Templates kept: this many frames' worth of candidates (8 × 64 images, ≈ 130 MB for a ViT-L)."""


@dataclass(frozen=True, slots=True)
class RegionSettings:
    """How region mode searches a frame (the defaults come from bench/region_bench.py).

    Attributes:
        short_side: the whole frame is seen at this short side in pixels (24 patches of 14).
        depth: the share of the model's blocks whose patch tokens are compared (at least one).
        min_patches: the smallest size, in patches, an image is looked for at.
        max_patches_share: the largest size, as a share of the frame's short side.
        max_candidates: images compared with each frame: the whole collection when it has at
            most this many, otherwise the frame's own best matches this many.
        dims: tokens are compared in this many principal directions of the templates' tokens
            (a ViT-L's 1024 would make the search cost as much as the model).
        contrast: also embed the place that stands out most (see :func:`_contrast`): up to
            two crops a frame instead of one, far more small pictures.
    """

    short_side: int = 336
    depth: float = 0.125
    min_patches: int = 3
    max_patches_share: float = 0.6
    max_candidates: int = 64
    dims: int = 64
    contrast: bool = True

    def __post_init__(self) -> None:
        if self.short_side < 56 or not 0 < self.depth <= 1 or self.min_patches < 1:
            raise InvalidArgumentError(
                f"region settings: short side ≥ 56, depth in (0, 1] and min patches ≥ 1, got {self}"
            )
        if not 0 < self.max_patches_share <= 1 or self.max_candidates < 1 or self.dims < 1:
            raise InvalidArgumentError(f"region settings: max share in (0, 1], candidates ≥ 1, got {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RegionSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def blocks(self, num_layers: int) -> int:
        return max(1, min(num_layers, round(num_layers * self.depth)))

    def sizes(self, rows: int, cols: int) -> list[int]:
        """Template sizes in patches for a frame grid of rows×cols: from ``min_patches`` up by
        a quarter each (3, 4, 5, 6, 7, 9, 11, 14 at 336 px: as good as every size, at half the
        templates' cost)."""
        largest = max(self.min_patches, int(min(rows, cols) * self.max_patches_share))
        out, k = [], float(self.min_patches)
        while round(k) <= largest:
            out.append(round(k))
            k *= SIZE_STEP
        return sorted(set(out))


DEFAULT_REGIONS = RegionSettings()


def large_collection_note(image_count: int, settings: RegionSettings = DEFAULT_REGIONS) -> str | None:
    """What to expect of region mode on a collection larger than its candidates (None when every
    image is a candidate): measured in README, Performance, "A larger collection is not shown to
    work"."""
    if image_count <= settings.max_candidates:
        return None
    return (
        f"Region mode looks in each frame for its {settings.max_candidates} best images by the whole "
        f"frame; in a collection of {image_count:,} images a picture that fills a small part of the "
        "frame is rarely among them (measured: recall 0.02 at a quarter of the frame's width with "
        "1,012 images, against 0.94 with 48). Large pictures are still found; for small ones, match "
        "against a collection of the pictures you look for."
    )


SIZE_STEP = 1.25
SAME_PLACE_IOU = 0.5
"""Two places whose windows overlap this much (IoU) are one crop (:func:`_distinct`)."""
CONTRAST_ACROSS_TEMPLATES_FROM = 16
"""Candidates from which a place's contrast is measured across templates, not positions
(:func:`_contrast`). On bench's region video, the place found at 1/4 of the frame's width, with
random candidate sets of each size (trained proxy): across positions 0.99 at 3 candidates, 0.94
at 12, 0.88 at 24, 0.80 at 48; across templates 0.89, 0.86, 0.86, 0.94. On a video placed
anew (seed 77), at 48: 0.67 → 0.95 (trained proxy), 0.69 → 0.86 (random small model)."""


# -- combining a frame's region with the whole frame (no model) ------------------------------------
def region_rows(
    results: FrameResults, regions: FrameRegions | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The regions aligned with the results' rows: (image id or -1, score or NaN, N×4 box or NaN)."""
    n = len(results)
    ids = np.full(n, -1, np.int64)
    scores = np.full(n, np.nan, np.float32)
    boxes = np.full((n, 4), np.nan, np.float32)
    if regions is None or not len(regions) or not n:
        return ids, scores, boxes
    row = np.searchsorted(results.frame_index, regions.frame_index)
    ok = (row < n) & (results.frame_index[np.minimum(row, n - 1)] == regions.frame_index)
    ids[row[ok]] = regions.image_ids[ok]
    scores[row[ok]] = regions.scores[ok]
    boxes[row[ok]] = regions.boxes[ok]
    return ids, scores, boxes


def scored_images(
    results: FrameResults, regions: FrameRegions | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every image each recorded frame scored: the whole frame's top-k and, with regions, the
    frame's region as one more column (-1 and NaN where a frame has none). An image can appear
    twice in a row (in the top-k and as the region)."""
    if regions is None or not len(regions):
        return results.image_ids, results.scores
    r_image, r_score, _ = region_rows(results, regions)
    return (
        np.column_stack([results.image_ids, r_image]),
        np.column_stack([results.scores.astype(np.float32), r_score]),
    )


@dataclass(frozen=True, slots=True, eq=False)
class FrameBests:
    """Per recorded frame: its best match and its best region (see :func:`frame_bests`)."""

    image: np.ndarray  # int64 (N,): the best image, -1 where none
    score: np.ndarray  # float32 (N,): its score, NaN where none
    region_wins: np.ndarray  # bool (N,): the best match is the region's
    region_image: np.ndarray  # int64 (N,): the region's image, -1 where none
    region_score: np.ndarray  # float32 (N,)
    region_box: np.ndarray  # float32 (N, 4): left, top, right, bottom in frame pixels


def frame_bests(results: FrameResults, regions: FrameRegions | None = None) -> FrameBests:
    """Each frame's best match: the whole frame's best, or its best region's where that scores
    higher (both are cosines of the same embeddings, so one threshold applies to either)."""
    n = len(results)
    if results.k:
        image, score = results.image_ids[:, 0].copy(), results.scores[:, 0].astype(np.float32)
    else:
        image, score = np.full(n, -1, np.int64), np.full(n, np.nan, np.float32)
    r_image, r_score, r_box = region_rows(results, regions)
    wins = (r_image >= 0) & (np.isnan(score) | (np.nan_to_num(r_score, nan=-np.inf) > score))
    image[wins], score[wins] = r_image[wins], r_score[wins]
    return FrameBests(image, score, wins, r_image, r_score, r_box)


def best_matches(results: FrameResults, regions: FrameRegions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per recorded frame, its best image and score (:func:`frame_bests`): -1 and NaN where a
    frame has neither a whole-frame match nor a region."""
    bests = frame_bests(results, regions)
    return bests.image, bests.score


# -- the search (model) ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegionInput:
    """What the decoding thread prepares for the frames of a batch: the whole frames as model
    input at the region short side, and the frames themselves (to cut the found regions from)."""

    pixels: torch.Tensor
    frames: tuple[np.ndarray, ...]


def view_crop(rgb: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """The part of an image the model sees when it is indexed (its centre crop)."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = prep.view_box(h, w)
    y0, y1 = int(round(top * h)), max(int(round(top * h)) + 1, int(round(bottom * h)))
    x0, x1 = int(round(left * w)), max(int(round(left * w)) + 1, int(round(right * w)))
    return rgb[y0:y1, x0:x1]


def square_input(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` resized to side×side (area filter when shrinking)."""
    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if side < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (side, side), interpolation=interp)


class RegionSearch:
    """Region mode for one run: templates of the candidate images, kept for the run, and the
    search of each batch of frames (see the module's docstring)."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        vectors: VectorSearch | EmbeddingMatrix,
        thumbnails: Thumbnails,
        settings: RegionSettings = DEFAULT_REGIONS,
    ) -> None:
        """``vectors``: the collection's images to look for (exact or approximate search)."""
        if isinstance(vectors, EmbeddingMatrix):
            vectors = ExactSearch.of(vectors)
        self.fx, self.vectors, self.thumbnails, self.settings = extractor, vectors, thumbnails, settings
        self.prep = extractor.preprocessing
        self.frame_prep = self.prep.full_frame(settings.short_side)
        # crops are resized to the model's own input and normalised, not resized again
        self.crop_side = (self.prep.crop_hw or self.prep.resize_hw or (224, 224))[0]
        self.plain = replace(self.prep, shortest_edge=None, resize_hw=None, crop_hw=None)
        self.blocks = settings.blocks(extractor.num_layers)
        # image id -> size -> d×k×k unit tokens, the most recently used last (bounded: a large
        # collection brings new candidates with every shot)
        self._templates: OrderedDict[int, dict[int, torch.Tensor]] = OrderedDict()
        self._capacity = TEMPLATE_CACHE_FRAMES * settings.max_candidates
        self._centre: torch.Tensor | None = None  # the origin and the d directions tokens are seen in
        self._basis: torch.Tensor | None = None
        self._sizes: list[int] = []
        self._last: tuple[int, float, np.ndarray] = (-1, float("nan"), np.full(4, np.nan, np.float32))

    # -- producer thread ------------------------------------------------------------------------
    def prepare(self, frames: Sequence[np.ndarray]) -> RegionInput:
        """The batch's frames as region input (called in the decoding thread)."""
        return RegionInput(preprocess_images(list(frames), self.frame_prep), tuple(frames))

    # -- templates ------------------------------------------------------------------------------
    def _ensure_templates(self, image_ids: Sequence[int], sizes: list[int]) -> None:
        if sizes != self._sizes:  # another frame size: make the templates again
            self._templates, self._sizes, self._centre, self._basis = OrderedDict(), sizes, None, None
        for image_id in image_ids:
            if int(image_id) in self._templates:
                self._templates.move_to_end(int(image_id))
        missing = [int(i) for i in image_ids if int(i) not in self._templates]
        while len(self._templates) + len(missing) > self._capacity and self._templates:
            self._templates.popitem(last=False)
        if not missing:
            return
        jpegs = self.thumbnails(missing)
        views = {}
        for image_id in missing:
            rgb = _decode(jpegs.get(image_id))
            if rgb is None:
                logger.warning("image %d has no readable thumbnail: region mode cannot look for it", image_id)
                self._templates[image_id] = {}
            else:
                views[image_id] = view_crop(rgb, self.prep)
        if not views:
            return
        per_size: dict[int, torch.Tensor] = {}
        for k in sizes:
            side = k * self.prep.patch_size
            pixels = preprocess_images([square_input(v, side) for v in views.values()], self.plain)
            per_size[k] = self.fx.early_patches(pixels, self.blocks)  # N×k×k×D
        if self._centre is None:  # fixed for the run, from the first templates made
            tokens = torch.cat([t.reshape(-1, t.shape[-1]) for t in per_size.values()])
            self._centre = tokens.mean(0)
            self._basis = _principal_directions(tokens - self._centre, self.settings.dims)
        for n, image_id in enumerate(views):
            self._templates[image_id] = {
                k: self._unit(per_size[k][n]).permute(2, 0, 1).contiguous() / (k * k) for k in sizes
            }

    def _unit(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (…×D) centred, projected on the run's directions and scaled to unit length."""
        assert self._centre is not None and self._basis is not None
        return F.normalize((tokens - self._centre) @ self._basis, dim=-1)

    def _candidates(self, vectors: np.ndarray) -> list[np.ndarray]:
        """Per frame, the image ids to look for."""
        ids, _ = self.vectors.top_k(vectors, self.settings.max_candidates)  # all of a small collection
        return [row[row >= 0] for row in ids]

    # -- consumer thread ------------------------------------------------------------------------
    def search(
        self, region_input: RegionInput, vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The best region of each frame of ``region_input``.

        Args:
            vectors: the frames' normalised global embeddings (they choose the candidates of a
                large collection).

        Returns:
            (image ids, scores, N×4 boxes in frame pixels); -1 / NaN where nothing was found.
        """
        n = len(region_input.frames)
        ids = np.full(n, -1, np.int64)
        scores = np.full(n, np.nan, np.float32)
        boxes = np.full((n, 4), np.nan, np.float32)
        if n == 0 or len(self.vectors) == 0:
            return ids, scores, boxes
        tokens = self.fx.early_patches(region_input.pixels, self.blocks)  # B×R×C×D
        _, rows, cols, _ = tokens.shape
        sizes = self.settings.sizes(rows, cols)
        candidates = self._candidates(vectors)
        self._ensure_templates(np.unique(np.concatenate(candidates)), sizes)
        crops, found = [], []
        for b, frame in enumerate(region_input.frames):
            cand = [int(i) for i in candidates[b] if self._templates.get(int(i))]
            if not cand or self._centre is None:
                continue
            unit = self._unit(tokens[b]).permute(2, 0, 1)[None]  # 1×d×R×C
            templates = [self._templates[i] for i in cand]
            for k, r, c in _best_places(unit, templates, sizes, self.settings.contrast):
                box = _box(k, r, c, rows, cols, frame.shape[0], frame.shape[1])
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                crops.append(square_input(frame[y0:y1, x0:x1], self.crop_side))
                found.append((b, box))
        if not crops:
            return ids, scores, boxes
        emb = l2_normalize(self.fx.forward(preprocess_images(crops, self.plain)).cls)
        best_ids, best = self.vectors.top_k(emb, 1)
        for (b, box), image_id, s in zip(found, best_ids[:, 0], best[:, 0], strict=True):
            if not s <= scores[b]:  # the frame's best place (NaN: none yet)
                ids[b], scores[b], boxes[b] = image_id, s, box
        return ids, scores, boxes

    def fit_map(
        self, frame: np.ndarray, image_id: int
    ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Where one image fits in one frame: per patch of the whole frame (rows×cols), the
        mean patch cosine of the best window of any size that covers it, and that best
        window's box in frame pixels (the map ``explain`` draws).

        Raises:
            InvalidArgumentError: the image has no readable thumbnail.
        """
        tokens = self.fx.early_patches(self.prepare([frame]).pixels, self.blocks)
        _, rows, cols, _ = tokens.shape
        sizes = self.settings.sizes(rows, cols)
        self._ensure_templates([image_id], sizes)
        template = self._templates.get(int(image_id))
        if not template:
            raise InvalidArgumentError(
                f"image {image_id} has no readable thumbnail to compare with the frame"
            )
        unit = self._unit(tokens[0]).permute(2, 0, 1)[None]
        heat = torch.full((rows, cols), -1.0)
        best, where = -np.inf, (sizes[0], 0, 0)
        with torch.inference_mode():
            for k in sizes:
                if k > rows or k > cols:
                    continue
                score = F.conv2d(unit, template[k][None])[0]  # 1×(R-k+1)×(C-k+1)
                padded = F.pad(score[None], (k - 1, k - 1, k - 1, k - 1), value=-1.0)
                heat = torch.maximum(heat, F.max_pool2d(padded, k, stride=1)[0, 0])
                j = int(torch.argmax(score))
                if float(score.reshape(-1)[j]) > best:
                    _, r, c = np.unravel_index(j, score.shape)
                    best, where = float(score.reshape(-1)[j]), (k, int(r), int(c))
        return heat.numpy(), _box(*where, rows, cols, frame.shape[0], frame.shape[1])

    def for_batch(self, batch: FrameBatch, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The region of every row of a batch: its own for analysed frames (``vectors``: their
        normalised global embeddings, in order), its source's for inherited ones."""
        n = len(batch)
        ids = np.full(n, -1, np.int64)
        scores = np.full(n, np.nan, np.float32)
        boxes = np.full((n, 4), np.nan, np.float32)
        computed = np.flatnonzero(batch.tag == COMPUTE)
        if len(computed) and isinstance(batch.extra, RegionInput):
            ids[computed], scores[computed], boxes[computed] = self.search(batch.extra, vectors)
        row_of = {int(batch.index[p]): p for p in computed}
        own = set(computed.tolist())
        for p in range(n):
            if p in own:
                self._last = (int(ids[p]), float(scores[p]), boxes[p].copy())
                continue
            src = row_of.get(int(batch.source[p]))
            if src is not None:
                ids[p], scores[p], boxes[p] = ids[src], scores[src], boxes[src]
            else:
                ids[p], scores[p], boxes[p] = self._last[0], self._last[1], self._last[2]
        return ids, scores, boxes


def _principal_directions(centred: torch.Tensor, dims: int) -> torch.Tensor:
    """The ``dims`` directions of most variance of centred tokens (N×D), as a D×dims matrix."""
    d = centred.shape[1]
    if dims >= d:
        return torch.eye(d)
    cov = centred.T.double() @ centred.double() / max(1, len(centred) - 1)
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
    return vectors[:, -dims:].flip(1).float().contiguous()


def _decode(jpeg: bytes | None) -> np.ndarray | None:
    if not jpeg:
        return None
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _best_places(
    unit: torch.Tensor, templates: list[dict[int, torch.Tensor]], sizes: list[int], contrast: bool
) -> list[tuple[int, int, int]]:
    """(size, row, col) of the best template matches: the highest mean patch cosine (one
    convolution per size), and with ``contrast`` also the place that stands out most (see
    :func:`_contrast`). Large pictures win the first, small ones often only the second; one
    place when the two mostly overlap (:func:`_distinct`)."""
    _, _, rows, cols = unit.shape
    best = {"raw": (-np.inf, None), "z": (-np.inf, None)}
    for k in sizes:
        if k > rows or k > cols:
            continue
        weight = torch.stack([t[k] for t in templates])  # N×d×k×k
        with torch.inference_mode():
            score = F.conv2d(unit, weight)[0]  # N×(R-k+1)×(C-k+1)
        flat = score.reshape(len(templates), -1)
        measures = {"raw": flat}
        if contrast and flat.shape[1] > 1:
            measures["z"] = _contrast(flat)
        for name, values in measures.items():
            j = int(torch.argmax(values))
            value = float(values.reshape(-1)[j])
            if value > best[name][0]:
                _, r, c = np.unravel_index(j, score.shape)
                best[name] = (value, (k, int(r), int(c)))
    return _distinct([where for _, where in best.values() if where is not None])


def _distinct(places: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The places in order, without one whose window (size, row, col) overlaps an earlier one's
    by :data:`SAME_PLACE_IOU` or more: the same picture, not worth a second crop."""
    kept: list[tuple[int, int, int]] = []
    for k, r, c in places:
        if all(_window_iou((k, r, c), other) < SAME_PLACE_IOU for other in kept):
            kept.append((k, r, c))
    return kept


def _window_iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """IoU of two square windows of patches, each (size, row, col)."""
    rows = max(0, min(a[1] + a[0], b[1] + b[0]) - max(a[1], b[1]))
    cols = max(0, min(a[2] + a[0], b[2] + b[0]) - max(a[2], b[2]))
    inter = rows * cols
    return inter / (a[0] * a[0] + b[0] * b[0] - inter)


def _contrast(scores: torch.Tensor) -> torch.Tensor:
    """How much each score (templates × positions, one size) stands out, as a z-score.

    Among :data:`CONTRAST_ACROSS_TEMPLATES_FROM` candidates or more, across the templates at
    the same position: the picture is where its template beats the other candidates, while a
    background patch that one template happens to match well is matched about as well by many.
    Among fewer, that z-score says little (with two it is ±1 everywhere), so across the
    positions of each template: where its own scores peak.
    """
    axis = 0 if scores.shape[0] >= CONTRAST_ACROSS_TEMPLATES_FROM else 1
    return (scores - scores.mean(axis, keepdim=True)) / (scores.std(axis, keepdim=True) + 1e-6)


def _box(
    k: int, r: int, c: int, rows: int, cols: int, height: int, width: int
) -> tuple[float, float, float, float]:
    """A k×k patch window at (r, c) of a rows×cols grid over the whole frame, in frame pixels."""
    sy, sx = height / rows, width / cols
    return (c * sx, r * sy, (c + k) * sx, (r + k) * sy)
