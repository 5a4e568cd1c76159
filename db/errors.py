"""Exceptions raised by the index database.

All of them subclass :class:`core.errors.WebSSLError`, so the CLI and the dashboard can show
``str(err)`` to the user; each message says what went wrong and, where it can, what to do.
"""

from __future__ import annotations

from core.errors import WebSSLError


class DatabaseError(WebSSLError):
    "Base for index errors"


class NotFoundError(DatabaseError):
    "A collection, image, video or run does not exist"


class CollectionExistsError(DatabaseError):
    "A collection with that name already exists"


class ModelMismatchError(DatabaseError):
    "The collection was indexed with a different model or preprocessing"


class SchemaTooNewError(DatabaseError):
    "The database file was written by a newer version of this program"
