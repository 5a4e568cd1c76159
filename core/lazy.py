"""Heavy modules imported on first use, not when a module that uses them is imported.

The dashboard shows collections and runs without PyTorch: importing it costs about 180 MB of
the server's memory and 1-2 s, and only a model or an exact search needs it (scikit-learn's
PCA likewise, for the feature maps; PyAV for video, which the dashboard's first page does not
need). Modules of the core write ``from core.lazy import torch`` and use ``torch`` as usual;
the first attribute read imports it (Python's import lock makes that safe from several threads).
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class LazyModule(types.ModuleType):
    """Stands for the module ``name`` and imports it when an attribute is first read."""

    def __getattr__(self, attr: str) -> Any:
        module = self.__dict__.get("_module")
        if module is None:
            module = importlib.import_module(self.__name__)
            self.__dict__["_module"] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self.__dict__.get("_module") is not None else "not imported yet"
        return f"<lazy module {self.__name__!r} ({state})>"


torch: Any = LazyModule("torch")
functional: Any = LazyModule("torch.nn.functional")
decomposition: Any = LazyModule("sklearn.decomposition")  # with SciPy: about 50 MB
av: Any = LazyModule("av")  # PyAV with FFmpeg's libraries: the dashboard's Home page needs neither


def inference_mode(fn: F) -> F:
    """``@torch.inference_mode()`` without importing torch at definition time."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
