"""Which folders of the server the dashboard may read (no Streamlit).

"Index a folder on the server" and "path on the server" read files with the server process's
rights: anyone who can open the dashboard could otherwise read any folder it can. Only paths
inside the allowed folders are accepted: ``WEBSSL_ALLOWED_DIRS`` (folders separated by
``os.pathsep``, ``:`` on Linux and macOS), by default the user's home and the data folder. The
command line is not restricted.
"""

from __future__ import annotations

import os
from pathlib import Path

from core import config
from core.errors import WebSSLError

ENV = "WEBSSL_ALLOWED_DIRS"


class ForbiddenPathError(WebSSLError):
    """A server path outside the folders the dashboard may read."""


def allowed_roots() -> tuple[Path, ...]:
    """The folders the dashboard may read, resolved (symbolic links followed)."""
    text = os.environ.get(ENV, "").strip()
    folders = [p for p in text.split(os.pathsep) if p.strip()] if text else [Path.home(), config.data_dir()]
    return tuple(Path(p).expanduser().resolve() for p in folders)


def resolve_allowed(text: str | os.PathLike) -> Path:
    """The path, resolved, if it lies inside an allowed folder.

    Raises:
        ForbiddenPathError: it does not; the message names the allowed folders and the setting.
    """
    path = Path(text).expanduser().resolve()
    roots = allowed_roots()
    if any(path == root or path.is_relative_to(root) for root in roots):
        return path
    listed = ", ".join(str(r) for r in roots)
    raise ForbiddenPathError(
        f"The dashboard may only read inside {listed}; {path} is outside. Move the files there, "
        f"or start the dashboard with {ENV} set to the folders it may read (separated by "
        f"{os.pathsep!r})."
    )
