"""sqlite-utils, imported without pandas.

sqlite-utils imports pandas at import time when it is installed (it is: Streamlit depends on
it), only to store pandas' ``Timestamp`` as TEXT; this package never writes pandas values.
Importing pandas (with pyarrow and dateutil) took about 0.25 s of the 0.54 s that the
dashboard's first page spent importing after a server start, and as much at the start of every
CLI command (AMD EPYC, Zen 4). So the first import of sqlite-utils in a process is made with
pandas hidden from the importing thread only (:func:`hidden`): other threads import pandas as
usual meanwhile, and where pandas is already imported nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _HiddenFromThread(importlib.abc.MetaPathFinder):
    """Makes ``import name`` fail in one thread (first on ``sys.meta_path``, it is asked first)."""

    def __init__(self, name: str) -> None:
        self.name, self.thread = name, threading.get_ident()

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 - importlib's protocol
        if fullname == self.name and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (hidden from this import)", name=fullname
            )
        return None


@contextmanager
def hidden(name: str) -> Iterator[None]:
    """Within the block, ``import name`` raises ModuleNotFoundError in this thread only, unless
    the module is imported already."""
    finder = _HiddenFromThread(name)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


if "sqlite_utils" not in sys.modules:
    with hidden("pandas"):
        importlib.import_module("sqlite_utils")

from sqlite_utils import Database  # noqa: E402 - after the import above

__all__ = ["Database", "hidden"]
