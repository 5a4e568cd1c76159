"""Value types returned by (and passed to) :class:`db.index.Index`.

Plain frozen dataclasses: rows of the database as Python values. The ones holding numpy
arrays compare by identity (``eq=False``), since arrays have no single truth value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def file_name(path: str) -> str:
    """The last component of ``path``, accepting both ``/`` and ``\\`` as separators."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def name_key(path: str) -> str:
    """What the name filter compares: the file name of ``path``, case-folded."""
    return file_name(path).casefold()


@dataclass(frozen=True, slots=True)
class Collection:
    """A named set of images, all embedded with one model."""

    id: int
    name: str
    model_id: str
    preprocessing: str  # JSON
    embed_dim: int
    created: str
    image_count: int
    failure_count: int
    content_version: int = 0  # bumped whenever its searchable content changes (a cache key, with the id)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image of a collection (without its thumbnail or embedding)."""

    id: int
    collection_id: int
    path: str
    sha256: str
    width: int
    height: int
    added: str

    @property
    def name(self) -> str:
        """The file name, without its folder."""
        return file_name(self.path)


@dataclass(frozen=True, slots=True, eq=False)
class NewImage:
    """An image to add with :meth:`Index.add_images`."""

    path: str
    sha256: str
    width: int
    height: int
    thumbnail: bytes  # a small JPEG
    embedding: np.ndarray  # (embed_dim,), any float dtype; stored L2-normalised as float32
    replaces: tuple[int, ...] = ()  # images of the same file's earlier content, removed with it
    size_bytes: int | None = None  # the file's size and modification time when it was read
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class ImageAdded:
    """What :meth:`db.Index.insert_images` did with one item."""

    image_id: int
    inserted: bool  # False: its content was already in the collection


@dataclass(frozen=True, slots=True)
class IndexFailure:
    """A file that could not be indexed, and why."""

    collection_id: int
    path: str
    reason: str
    created: str


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingMatrix:
    """All embeddings of a collection, ready for a matrix product.

    ``vectors`` is float32 (N, dim) with L2-normalised rows; ``image_ids[i]`` is the image of
    row ``i``.
    """

    image_ids: np.ndarray
    vectors: np.ndarray
    model_id: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """A video file, identified by the hash of its content."""

    id: int
    path: str
    sha256: str
    fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    rotation: int
    size_bytes: int
    added: str
    mtime_ns: int | None = None  # when the file was hashed (None: hashed before this was kept)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One matching of a video against a collection."""

    id: int
    video_id: int
    collection_id: int | None
    collection_name: str | None
    model_id: str
    params: dict
    status: str  # 'running', 'done', 'failed', 'cancelled', or 'interrupted' (its process is gone)
    stats: dict
    created: str
    finished: str | None
    video_path: str
    heartbeat: str | None = None  # last sign of life of the process writing it
    collection_changed: bool = False  # its collection gained, lost or re-embedded images since it searched it
    revision: int = 0  # bumped whenever its stored results change in place (a cache key, with the id)

    @property
    def complete(self) -> bool:
        """Every frame the run set out to analyse has a result."""
        return self.status == "done"


@dataclass(frozen=True, slots=True, eq=False)
class FrameResults:
    """The per-frame matches of a run, as arrays.

    Row ``i`` is frame ``frame_index[i]`` (sorted ascending); column ``j`` is its ``j``-th best
    match. Where a frame has fewer than ``k`` matches, ``image_ids`` holds -1 and ``scores``
    NaN. ``source_frame[i]`` is the frame whose embedding was used: ``frame_index[i]`` itself
    when the frame was analysed, an earlier frame when its result was inherited.
    """

    frame_index: np.ndarray  # int64 (N,)
    time_s: np.ndarray  # float64 (N,)
    source_frame: np.ndarray  # int64 (N,)
    image_ids: np.ndarray  # int64 (N, k)
    scores: np.ndarray  # float32 (N, k)

    @property
    def k(self) -> int:
        return int(self.image_ids.shape[1])

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class FrameRegions:
    """The best region of each frame of a run made with regions, as arrays.

    Row ``i`` is frame ``frame_index[i]`` (sorted ascending): ``image_ids[i]`` was found in the
    box ``boxes[i]`` = (left, top, right, bottom) in frame pixels with ``scores[i]``. Frames
    without a region are absent.
    """

    frame_index: np.ndarray  # int64 (N,)
    image_ids: np.ndarray  # int64 (N,)
    scores: np.ndarray  # float32 (N,)
    boxes: np.ndarray  # float32 (N, 4)

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])

    @classmethod
    def empty(cls) -> FrameRegions:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros((0, 4), np.float32),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in which one image is the best match above the threshold."""

    image_id: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float  # where the last frame ends (its time plus one frame)
    peak_score: float
    mean_score: float
    frames: int  # matched frames inside the segment

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class DbStats:
    """Sizes and row counts of an index file."""

    path: str
    size_bytes: int
    collections: int
    images: int
    videos: int
    runs: int
    cached_frames: int


@dataclass(frozen=True, slots=True)
class VectorIndexRecord:
    """Which index file holds a vector set, up to which logged change (see :mod:`db.vectors`)."""

    kind: str  # "images" or "frames"
    scope: str  # the collection id, or the embedding key
    file: str | None  # in the folder beside the database; None until the first build finished
    seq: int  # the last change of the log the file includes
    count: int  # vectors in the file
    dim: int
    updated: str


@dataclass(frozen=True, slots=True, eq=False)
class VectorChanges:
    """Logged changes of a vector set, in order: a key added (or its vector changed) or removed."""

    seq: np.ndarray  # int64 (N,)
    item_ids: np.ndarray  # int64 (N,)
    removed: np.ndarray  # bool (N,)

    def __len__(self) -> int:
        return int(self.seq.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class FrameRefs:
    """Where cached frame embeddings come from, per frame id."""

    frame_ids: np.ndarray  # int64 (N,)
    video_sha256: tuple[str, ...]
    frame_index: np.ndarray  # int64 (N,)
    time_s: np.ndarray  # float64 (N,)


@dataclass(frozen=True, slots=True)
class LibraryVideo:
    """A video indexed for library search (``python -m core index-videos``) with one embedding key."""

    video: VideoRecord
    embed_key: str
    sampling: dict
    frames: int  # cached frame embeddings of the video under this key
    complete: bool  # every frame the sampling chose has an embedding
    updated: str


@dataclass(frozen=True, slots=True)
class SearchableVideo:
    """A video whose cached frames ``find`` searches, under one embedding key: frames cached by
    ``index-videos`` (``indexed``) or by match runs of the video."""

    video: VideoRecord
    embed_key: str
    frames: int  # cached frame embeddings of the video under this key
    indexed: bool  # indexed for the library (python -m core index-videos)
    complete: bool  # indexed, and every frame its sampling chose has an embedding

    @property
    def source(self) -> str:
        """``indexed`` (index-videos indexed it), ``unfinished`` (index-videos began it) or
        ``matched`` (only match runs cached its frames)."""
        if not self.indexed:
            return "matched"
        return "indexed" if self.complete else "unfinished"
