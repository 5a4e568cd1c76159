"""Import what the pages need in the background, once per server process, then read ahead
what the first clicks need.

A page's first visit in a fresh server used to pay for importing its modules (the run explorer
and its visualisations: about 1 s on 2 cores) on top of its own work. The router starts one
thread, once the first page has run (started before it, its imports slowed that page down),
that imports every module the page scripts import, while the user reads the first page;
a page that needs a module still being imported waits for that import only (Python's per-module
import locks). The list is read from the page scripts themselves, so it cannot drift from them.

The same thread then reads ahead what the first clicks need (:func:`read_ahead`): the newest
run, which the Match page opens first (a 2-hour run took 0.28 s from a cold page cache), the
square thumbnails of Browse's first page (their first making loaded OpenCV's code from disk),
and the search index of a large collection, which Browse's first neighbours search opens (1.3 s
cold at 1M images).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

VIEWS = Path(__file__).resolve().parent / "views"
LAZY = ("av",)
"""Modules the core imports on first use (:mod:`core.lazy`) that the pages soon need: the video
decoder (the Match page's first frame). Not PyTorch: the pages run without it until a model is
used."""


def view_modules(views: Path = VIEWS) -> list[str]:
    """The modules the page scripts import (``from dashboard import run_explorer`` counts as
    ``dashboard.run_explorer``), in a stable order."""
    names: set[str] = set()
    for path in sorted(views.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    try:
                        if importlib.util.find_spec(candidate) is not None:
                            names.add(candidate)
                    except (ImportError, ValueError):  # an attribute, not a submodule
                        pass
    names.discard("__future__")
    return sorted(names)


def read_ahead() -> None:
    """Load the run the Match page shows first, make the thumbnails Browse shows first, and open
    the search Browse needs first (see :func:`dashboard.state.preload_newest_run`,
    :func:`~dashboard.state.preload_grid_previews` and :func:`~dashboard.state.preload_collection_search`)."""
    from dashboard.state import (  # imported by now
        preload_collection_search,
        preload_grid_previews,
        preload_newest_run,
    )

    preload_newest_run()
    preload_grid_previews()
    preload_collection_search()


def warm_up(modules: list[str] | None = None, *, then: Callable[[], None] | None = None) -> threading.Thread:
    """Start a daemon thread importing ``modules`` (default: :func:`view_modules`, worked out in
    that thread too: finding submodules imports their packages, and :data:`LAZY`), then calling
    ``then``."""

    def work() -> None:
        start = time.perf_counter()
        wanted = [*view_modules(), *LAZY] if modules is None else modules
        for name in wanted:
            try:
                importlib.import_module(name)
            except ImportError as err:  # a page will report it when it runs
                logger.warning("warm-up could not import %s: %s", name, err)
        logger.info("warm-up: %d modules imported in %.1f s", len(wanted), time.perf_counter() - start)
        if then is not None:
            then()

    thread = threading.Thread(target=work, name="page-warm-up", daemon=True)
    thread.start()
    return thread
