"""The video library: videos indexed for search by image, and where query images appear in them.

``index-videos`` embeds a video's sampled frames into the frame-embedding cache without matching
them (:func:`index_videos`); every matched video's analysed frames are in that cache too.
``find`` embeds query images and searches every cached frame of the model (:func:`find_images`;
images of a collection are searched with their stored embeddings, :func:`find_collection_images`):

1. candidates: the frames most similar to each query, across the whole library, through the
   same exact-or-approximate search as collections (:func:`core.matching.search.open_vectors`:
   thousands of hours of video are millions of cached frames, searched with the approximate
   index beside the database);
2. for each video with a candidate at or above the threshold, all its cached frames are scored
   exactly and grouped into time segments with the match runs' rule
   (:func:`core.matching.segments.find_segments`). A cached frame stands for the frames after it
   up to the next cached one (change-driven sampling analyses a frame when the picture changes),
   so a segment ends where the next analysed frame begins.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from core.errors import InvalidArgumentError, VideoOpenError
from core.matching.frame_embedding import embed_video
from core.matching.params import MatchParams
from core.matching.pipeline import identify_video, register_video
from core.matching.sampling import Sampling
from core.matching.search import maintain_vectors, open_vectors
from core.matching.segments import find_segments
from core.media.files import FileState, video_file_state
from core.media.video import iter_video_files
from core.model.features import FeatureExtractor, l2_normalize
from core.model.on_demand import ModelOnDemand
from core.model.preprocess import Preprocessing
from core.model.setup import sibling_embed_keys
from core.progress import ProgressCallback, ProgressReporter
from db import Collection, Index, LibraryVideo, Segment, VideoRecord

logger = logging.getLogger(__name__)

CANDIDATES = 256
"""Frames asked of the library per query at first; doubled while the last one still reaches
the threshold (an image seen in many videos), up to :data:`MAX_CANDIDATES`."""
MAX_CANDIDATES = 65_536


# -- indexing ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VideoIndexed:
    """What ``index-videos`` did with one video."""

    path: str
    status: str  # "indexed", "already indexed" or "failed"
    recorded: int = 0  # frames chosen by the sampling
    analysed: int = 0  # frames with an embedding (computed or cached before)
    computed: int = 0  # model passes
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LibraryReport:
    """What :func:`index_videos` did."""

    videos: tuple[VideoIndexed, ...] = field(default=())
    elapsed_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)

    def summary(self) -> str:
        hours = sum(v.duration_s for v in self.videos if v.status != "failed") / 3600
        counts = (
            f"{self.count('indexed')} indexed, {self.count('already indexed')} already indexed, "
            f"{self.count('failed')} failed ({hours:.2f} h of video)"
        )
        return counts if self.videos else f"{counts}: no video files found in the given paths"


def index_videos(
    index: Index,
    paths: Iterable[str | os.PathLike],
    extractor: FeatureExtractor | ModelOnDemand,
    *,
    sampling: Sampling | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LibraryReport:
    """Embed the sampled frames of videos (files and folders) into the frame-embedding cache.

    Resumable: frames already cached are not computed again, and a video indexed completely
    with the same sampling is skipped without decoding (a :class:`ModelOnDemand` is loaded only
    when a video is left to index). One video that cannot be read is reported and the others go on.

    Raises:
        FileNotFoundError: a given path does not exist.
        core.progress.Cancelled: ``cancel`` was set; finished batches are kept.
    """
    model = ModelOnDemand.of(extractor)
    sampling = sampling or Sampling.auto()
    files = [str(p) for p in iter_video_files(paths)]
    reporter = ProgressReporter("indexing videos", "videos", len(files), progress, cancel)
    done: list[VideoIndexed] = []
    reporter.update(0)

    def indexed_before(sha256: str) -> LibraryVideo | None:
        entry = index.library_video(sha256, model.setup.embed_key())
        return (
            entry if entry is not None and entry.complete and entry.sampling == sampling.to_dict() else None
        )

    for number, path in enumerate(files):
        reporter.check_cancelled()
        try:
            info = identify_video(index, path)
        except VideoOpenError as err:
            done.append(VideoIndexed(path, "failed", reason=err.reason))
            logger.info("not indexed: %s: %s", path, err.reason)
            continue
        register_video(index, info)
        entry = indexed_before(info.sha256)
        if entry is None and not model.loaded:  # loaded now, its precision is confirmed: asked again
            model.get(progress)
            entry = indexed_before(info.sha256)
        if entry is not None:
            done.append(
                VideoIndexed(path, "already indexed", analysed=entry.frames, duration_s=info.duration_s)
            )
            reporter.update(number + 1)
            continue
        extractor = model.get(progress)
        embed_key = extractor.embed_key()
        cached = index.cached_frame_indices(info.sha256, embed_key)

        def sink(
            frames: np.ndarray,
            times: np.ndarray,
            vectors: np.ndarray,
            sha: str = info.sha256,
            key: str = embed_key,
        ) -> None:
            index.add_frame_embeddings(sha, key, frames, times, vectors)

        index.mark_library_video(info.sha256, embed_key, sampling=sampling.to_dict(), complete=False)
        frames = embed_video(
            path,
            extractor,
            sampling=sampling,
            info=info,
            cached=cached,
            batch_size=batch_size,
            sink=sink,
            keep_vectors=False,
            cancel=cancel,
        )
        index.mark_library_video(info.sha256, embed_key, sampling=sampling.to_dict(), complete=True)
        done.append(
            VideoIndexed(
                path,
                "indexed",
                recorded=len(frames.frame_index),
                analysed=frames.analysed,
                computed=len(frames.computed_index),
                duration_s=info.duration_s,
                elapsed_s=frames.elapsed_s,
            )
        )
        reporter.update(number + 1)
    # the library's approximate index: built once it is large, then changes merged now and then
    setup = model.setup
    maintain_vectors(index, "frames", setup.embed_key(), setup.hidden_size, progress=progress)
    return LibraryReport(tuple(done), reporter.elapsed_s)


# -- finding ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Appearance:
    """Where a query image appears in one video: time segments in order (``image_id`` is the
    query's number), and whether the video's file still holds what they were found in
    (:func:`video_file_state`)."""

    video: VideoRecord
    segments: tuple[Segment, ...]
    file: FileState = "ok"

    @property
    def peak_score(self) -> float:
        return max(s.peak_score for s in self.segments)

    @property
    def seconds(self) -> float:
        return sum(s.duration_s for s in self.segments)


@dataclass(frozen=True, slots=True)
class Found:
    """Where one query image appears across the library, best video first."""

    query: str  # its name (file name or upload name)
    appearances: tuple[Appearance, ...]


def library_keys(index: Index, extractor: FeatureExtractor) -> list[str]:
    """The embedding keys of the cached frames that this model's queries can search."""
    return index.embed_keys_with_frames(extractor.sibling_embed_keys())


def collection_library_keys(index: Index, collection: Collection) -> list[str]:
    """The embedding keys of the cached frames that ``collection``'s images can search: those of
    its model and preprocessing."""
    preprocessing = Preprocessing.from_json(collection.preprocessing)
    return index.embed_keys_with_frames(sibling_embed_keys(collection.model_id, preprocessing))


def find_images(
    index: Index,
    extractor: FeatureExtractor,
    images: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    params: MatchParams | None = None,
    progress: ProgressCallback | None = None,
) -> list[Found]:
    """Where each query image (RGB uint8) appears in the library's videos.

    Frames count as showing a query when their cosine similarity reaches ``params.threshold``;
    segments follow ``params.gap_tolerance_s`` and ``params.min_duration_s``.
    """
    queries = extractor.cls_embeddings(list(images))
    keys = library_keys(index, extractor)
    return find_embeddings(index, keys, queries, names, params=params, progress=progress)


def find_collection_images(
    index: Index,
    collection: Collection,
    image_ids: Sequence[int],
    *,
    params: MatchParams | None = None,
    progress: ProgressCallback | None = None,
) -> list[Found]:
    """:func:`find_images` for images of ``collection``, by the embeddings stored when they were
    indexed: no model pass, and the original files need not exist any more. Only frames cached
    by the collection's model and preprocessing are searched.

    Raises:
        InvalidArgumentError: an id is not an image of ``collection``.
    """
    records = index.get_images(image_ids)
    stray = [i for i in image_ids if i not in records or records[i].collection_id != collection.id]
    if stray:
        raise InvalidArgumentError(f"image ids {stray} are not in collection {collection.name!r}")
    names = [records[i].name for i in image_ids]
    keys = collection_library_keys(index, collection)
    embeddings = index.get_embeddings(image_ids)
    return find_embeddings(index, keys, embeddings, names, params=params, progress=progress)


def find_embeddings(
    index: Index,
    keys: Sequence[str],
    embeddings: np.ndarray,
    names: Sequence[str],
    *,
    params: MatchParams | None = None,
    progress: ProgressCallback | None = None,
) -> list[Found]:
    """Where each query, given by its [CLS] embedding (a row of ``embeddings``), appears among
    the library's frames cached under ``keys`` (those of the model that made the embeddings).
    ``progress`` hears of two stages: the search (queries) and the scoring of videos."""
    params = params or MatchParams()
    if len(names) == 0:
        return []
    queries = l2_normalize(embeddings)
    keys = list(keys)
    searched = ProgressReporter("searching the library", "queries", len(queries) * len(keys), progress)
    candidates: list[set[str]] = [set() for _ in range(len(queries))]  # video sha256 per query
    for key in keys:
        vectors = open_vectors(index, "frames", key, queries.shape[1])
        found = _candidate_frames(vectors, queries, params, lambda n: searched.update(searched.done + n))
        every = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
        refs = index.frame_refs(every)  # frames removed since the search are left out
        video_of = dict(zip(refs.frame_ids.tolist(), refs.video_sha256, strict=True))
        for q, ids in enumerate(found):
            candidates[q].update(video_of[i] for i in ids.tolist() if i in video_of)
    shas = sorted(set().union(*candidates))
    videos = index.find_videos(shas) if shas else {}
    asking: dict[str, list[int]] = {sha: [] for sha in shas}  # the queries each video may show
    for q, found in enumerate(candidates):
        for sha in found:
            asking[sha].append(q)
    appearances: list[list[Appearance]] = [[] for _ in range(len(queries))]
    scored = ProgressReporter("scoring videos", "videos", len(shas), progress)
    for number, sha in enumerate(shas):  # each video's cached frames read once, for all its queries
        scored.update(number)
        found = _segments(index, keys, videos[sha], queries, asking[sha], params)
        state = video_file_state(videos[sha], index)
        for q, segments in zip(asking[sha], found, strict=True):
            if segments:
                appearances[q].append(Appearance(videos[sha], tuple(segments), state))
    scored.update(len(shas))
    return [
        Found(name, tuple(sorted(found, key=lambda a: (-a.peak_score, a.video.path))))
        for name, found in zip(names, appearances, strict=True)
    ]


QUERY_BLOCK = 4096
"""Queries searched at once: a matrix product over the library's frames per block in exact
search, not a pass over them per query (100,000 queries: 9.8 min one by one); the approximate
index splits a block itself to bound its reads (:data:`core.matching.ann.MAX_PROPOSALS`).
Blocks this large also keep the C heap from growing: with blocks of 256, 22 MB score blocks
alternating with the small arrays that stay (each query's hits) fragmented glibc's heap, to
10 GB resident by 100,000 queries."""


SCORE_BLOCK = 256
"""Queries scored at once against one video's cached frames: a frames × queries block of at
most 108 MB for an hour of every-frame cache (108,000 frames)."""


def _candidate_frames(
    vectors, queries: np.ndarray, params: MatchParams, searched: Callable[[int], None] = lambda n: None
) -> list[np.ndarray]:
    """Per query, the frame ids at or above the threshold among the most similar ones
    (``searched`` is told how many queries each first-round block settled or sent on)."""
    out = [np.empty(0, np.int64)] * len(queries)
    pending, want = np.arange(len(queries)), CANDIDATES
    while len(pending):
        more = []
        for start in range(0, len(pending), QUERY_BLOCK):
            rows = pending[start : start + QUERY_BLOCK]
            ids, scores = vectors.top_k(queries[rows], want)
            hits = params.matched(scores)
            for row, row_ids, row_hits in zip(rows.tolist(), ids, hits, strict=True):
                out[row] = row_ids[row_hits]
                if row_hits.all() and want < min(MAX_CANDIDATES, len(vectors)):
                    more.append(row)  # every candidate reached the threshold: ask for more
            if want == CANDIDATES:
                searched(len(rows))
        pending, want = np.asarray(more, np.int64), want * 2
    return out


def _segments(
    index: Index,
    keys: list[str],
    video: VideoRecord,
    queries: np.ndarray,
    numbers: Sequence[int],
    params: MatchParams,
) -> list[list[Segment]]:
    """Per query of ``numbers`` (rows of ``queries``), its segments in one video, from all the
    video's cached frames scored exactly (a segment's ``image_id`` is the query's number)."""
    parts = [index.load_frame_embeddings(video.sha256, key) for key in keys]
    frames = np.concatenate([p[0] for p in parts])
    times = np.concatenate([p[1] for p in parts])
    vectors = l2_normalize(np.concatenate([p[2] for p in parts]))
    # a frame cached in several precisions counts once, with its best score for each query
    order = np.argsort(frames, kind="stable")
    frames, times = frames[order], times[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    frames, times = frames[starts], times[starts]
    frame_s = 1 / video.fps if video.fps > 0 else 0.0
    out = []
    for start in range(0, len(numbers), SCORE_BLOCK):  # frames × queries, a block of queries at a time
        block = list(numbers[start : start + SCORE_BLOCK])
        scores = (vectors @ queries[block].T)[order]
        scores = np.maximum.reduceat(scores, starts, axis=0) if len(starts) else scores
        for column, number in enumerate(block):
            out.append(_query_segments(frames, times, scores[:, column], number, video, frame_s, params))
    return out


def _query_segments(
    frames: np.ndarray,
    times: np.ndarray,
    scores: np.ndarray,
    number: int,
    video: VideoRecord,
    frame_s: float,
    params: MatchParams,
) -> list[Segment]:
    """One query's segments from its scores on a video's cached frames (in frame order)."""
    found = find_segments(
        frames,
        times,
        np.full(len(frames), number, np.int64),
        np.ascontiguousarray(scores),
        threshold=params.threshold,
        gap_tolerance_s=params.gap_tolerance_s,
        min_duration_s=0.0,  # applied below, once a segment reaches its true end
    )
    segments = []
    for seg in found:
        # the last matched cached frame stands for the frames up to the next cached one
        after = np.searchsorted(frames, seg.end_frame, side="right")
        if after < len(frames):
            end_frame, end_s = int(frames[after]) - 1, float(times[after]) - frame_s
        else:
            end_frame, end_s = (
                max(seg.end_frame, video.frame_count - 1),
                max(seg.end_s, video.duration_s - frame_s),
            )
        seg = replace(seg, end_frame=max(seg.end_frame, end_frame), end_s=max(seg.end_s, end_s))
        if seg.duration_s + 1e-9 >= params.min_duration_s:
            segments.append(seg)
    return segments
