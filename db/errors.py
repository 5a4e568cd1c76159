"""Exceptions raised by the index database.

Each message says what went wrong and, where it can, what to do. They do not derive from the
core's error type (``db`` never imports ``core``); the edges (CLI, dashboard) catch both, see
``core.errors.USER_ERRORS``.
"""

from __future__ import annotations


class DatabaseError(Exception):
    "Base for index errors"


class NotFoundError(DatabaseError):
    "A collection, image, video or run does not exist"


class RunInProgressError(DatabaseError):
    """A run that a live process is still writing cannot be deleted under it."""


class CollectionExistsError(DatabaseError):
    "A collection with that name already exists"


class ModelMismatchError(DatabaseError):
    "The collection was indexed with a different model or preprocessing"


class SchemaTooNewError(DatabaseError):
    "The database file was written by a newer version of this program"


class DatabaseOpenError(DatabaseError):
    "The index file cannot be opened (missing, a folder, unreadable)"


class NotAnIndexError(DatabaseOpenError):
    "The file is not a webssl-lens index (not SQLite, or another application's database)"


class ReadOnlyDatabaseError(DatabaseError):
    "The index cannot be written (read-only file, folder or file system, or opened read-only)"


class DatabaseFullError(DatabaseError):
    "The disk holding the index is full"


class InvalidNameError(DatabaseError, ValueError):
    "A collection name is empty or blank"
