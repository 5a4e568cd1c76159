"""The index: one SQLite file holding collections, videos, cached frame embeddings and runs.

Open it with ``Index(path)``; the schema is created or upgraded on open (see
:mod:`db.migrations`). The file is a plain SQLite database that Datasette or the ``sqlite3``
shell can open while the program runs (it uses WAL mode).

Every write of several rows happens in one transaction, so a crash or a killed process loses
at most the batch that was being written, never half of it. Bulk reads (a collection's
embedding matrix, cached frame embeddings, run results) are one query each, turned into numpy
arrays with a single copy.

Threads: an ``Index`` may be shared between threads (Streamlit reruns a script in different
threads); its connection is opened with ``check_same_thread=False`` and every method holds a
lock. Opening one ``Index`` per thread or per process on the same file is fine too: WAL lets
readers run beside one writer, and writers wait up to ``busy_timeout_ms`` for each other.

The methods live in one module per kind of data: :mod:`db.collections` (collections, images,
thumbnails, embeddings, failures), :mod:`db.videos` (videos, the frame-embedding cache and
the video library), :mod:`db.runs` (runs, frame results, segments) and :mod:`db.vectors`
(vector sets for approximate search, their index files and change logs).
"""

from __future__ import annotations

from .collections import Collections
from .runs import Runs
from .vectors import VectorSets
from .videos import Videos


class Index(Collections, Videos, Runs, VectorSets):
    """A connection to an index file (see :class:`db.store.Store` for opening options)."""
