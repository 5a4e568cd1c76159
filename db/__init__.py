"""The index database: collections of embedded images, videos, cached frame embeddings, runs.

Everything lives in one SQLite file, opened with :class:`Index`::

    from db import Index

    with Index("data/index.sqlite") as index:
        collection = index.get_or_create_collection("posters", model_id, preprocessing, 1024)
        matrix = index.load_embeddings(collection.id)
"""

from .collections import check_model, check_name
from .errors import (
    CollectionExistsError,
    DatabaseError,
    DatabaseFullError,
    DatabaseOpenError,
    InvalidNameError,
    ModelMismatchError,
    NotAnIndexError,
    NotFoundError,
    ReadOnlyDatabaseError,
    RunInProgressError,
    SchemaTooNewError,
)
from .index import Index
from .migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from .records import (
    Collection,
    DbStats,
    EmbeddingMatrix,
    FrameRefs,
    FrameRegions,
    FrameResults,
    ImageAdded,
    ImageRecord,
    IndexFailure,
    LibraryVideo,
    NewImage,
    RunRecord,
    SearchableVideo,
    Segment,
    VectorChanges,
    VectorIndexRecord,
    VideoRecord,
)
from .runs import RUN_STATUSES
from .store import DEFAULT_BUSY_TIMEOUT_MS

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Collection",
    "CollectionExistsError",
    "DatabaseError",
    "DatabaseFullError",
    "DatabaseOpenError",
    "InvalidNameError",
    "NotAnIndexError",
    "ReadOnlyDatabaseError",
    "DbStats",
    "EmbeddingMatrix",
    "FrameRegions",
    "FrameRefs",
    "FrameResults",
    "ImageAdded",
    "ImageRecord",
    "Index",
    "IndexFailure",
    "LibraryVideo",
    "ModelMismatchError",
    "NewImage",
    "NotFoundError",
    "RUN_STATUSES",
    "RunInProgressError",
    "RunRecord",
    "SchemaTooNewError",
    "SearchableVideo",
    "Segment",
    "VectorChanges",
    "VectorIndexRecord",
    "VideoRecord",
    "check_model",
    "check_name",
    "migrate",
]
