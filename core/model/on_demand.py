"""A model known by its setup and loaded the first time its weights are needed.

Indexing a folder of videos again, or matching a batch whose videos are all done, needs only to
know which model, precision and preprocessing the work would use (the keys that cached frames
and runs are stored under): :class:`ModelOnDemand` answers that from the config files
(:func:`core.model.loading.describe_model`, about a second) and loads the weights (8 s and
2.8 GB for ViT-L in int8) only when a video is left to embed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.model.features import FeatureExtractor
from core.model.setup import ModelSetup
from core.progress import ProgressCallback, announce


class ModelOnDemand:
    """A model's setup now, its weights when :meth:`get` is first called (once, thread-safe)."""

    def __init__(self, setup: ModelSetup, load: Callable[[], FeatureExtractor]) -> None:
        self._setup = setup
        self._load = load
        self._loaded: FeatureExtractor | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: FeatureExtractor | ModelOnDemand) -> ModelOnDemand:
        """``model`` as a ModelOnDemand (a loaded extractor is wrapped, already loaded)."""
        if isinstance(model, ModelOnDemand):
            return model
        wrapped = cls(model.setup, lambda: model)
        wrapped._loaded = model
        return wrapped

    @property
    def setup(self) -> ModelSetup:
        """The loaded model's setup once loaded (an int8 that ``auto`` chose is then confirmed, or
        has fallen back to a float precision); until then, the one its config files describe."""
        return self._loaded.setup if self._loaded is not None else self._setup

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def get(self, progress: ProgressCallback | None = None) -> FeatureExtractor:
        """The loaded model, loading it now if it is not yet (a stage told to ``progress``)."""
        with self._lock:
            if self._loaded is None:
                announce(progress, "loading model", "the first time takes a few seconds")
                self._loaded = self._load()
            return self._loaded
