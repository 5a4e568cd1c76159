"""Project-wide defaults and where files live.

Environment variables (all optional):

- ``WEBSSL_DATA_DIR``: folder for the database, uploads and rendered videos
  (default ``~/.local/share/webssl-lens``, or ``$XDG_DATA_HOME/webssl-lens``).
- ``WEBSSL_DB``: the SQLite index file (default ``<data dir>/index.sqlite``).
- ``WEBSSL_MODEL``: model id or local folder (default :data:`DEFAULT_MODEL_ID`).
- ``WEBSSL_DEVICE`` / ``WEBSSL_PRECISION``: defaults for ``--device`` / ``--precision``.
- ``WEBSSL_LINEAR``: the fp32/bf16 CPU linear kernel, ``auto`` (default), ``onednn`` or ``torch``
  (:mod:`core.model.linear`).
- ``WEBSSL_HEAP``: ``keep`` (default) lets a forward pass on the CPU reuse the memory the last
  one freed, ``system`` leaves glibc's malloc as it is (:mod:`core.model.heap`).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_ID = "facebook/webssl-dino300m-full2b-224"
MATCH_PRECISION = "auto"
"""The precision matching loads a model with when none is given (indexing: fp32, exact)."""


def data_dir() -> Path:
    """The folder for the database, uploads and renders (not created here)."""
    if env := os.environ.get("WEBSSL_DATA_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "webssl-lens"


def default_db_path() -> Path:
    """The index file used when no ``--db`` is given."""
    if env := os.environ.get("WEBSSL_DB"):
        return Path(env).expanduser()
    return data_dir() / "index.sqlite"


def default_model_id() -> str:
    return os.environ.get("WEBSSL_MODEL") or DEFAULT_MODEL_ID


def default_device() -> str:
    return os.environ.get("WEBSSL_DEVICE") or "auto"


def default_precision() -> str:
    return os.environ.get("WEBSSL_PRECISION") or "fp32"


def default_linear_kernel() -> str:
    """Which kernel fp32 and bf16 linear layers use on the CPU (:mod:`core.model.linear`)."""
    return os.environ.get("WEBSSL_LINEAR") or "auto"


def default_heap_policy() -> str:
    """How the C heap treats the memory a forward pass frees (:mod:`core.model.heap`)."""
    return os.environ.get("WEBSSL_HEAP") or "keep"
