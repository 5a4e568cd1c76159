"""Domain exceptions. Each carries a message that tells the user what to do.

Callers at the edge (CLI, dashboard pages, the dashboard's job worker) catch
:data:`USER_ERRORS` and show ``str(err)``; everything else is a bug and is allowed to surface
as a traceback.
"""

from __future__ import annotations

from db.errors import DatabaseError


class WebSSLError(Exception):
    """Base class for expected, user-facing failures of the core."""


class ModelLoadError(WebSSLError):
    """The model weights or its preprocessing settings could not be loaded."""


class ImageLoadError(WebSSLError):
    """An image file could not be read or decoded."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class VideoOpenError(WebSSLError):
    """A video could not be opened or has no decodable video stream."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot open video {path}: {reason}")


class InvalidArgumentError(WebSSLError, ValueError):
    """An option has a value outside its allowed range."""


USER_ERRORS: tuple[type[Exception], ...] = (WebSSLError, DatabaseError)
"""Expected failures with a message for the user: the core's and the database's."""
