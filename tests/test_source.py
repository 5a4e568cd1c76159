"""core.model.source: Hub ids and local folders told apart."""

from __future__ import annotations

import pytest

from core.errors import ModelLoadError
from core.model.source import resolve_source


def test_hub_ids_and_paths_are_told_apart(tmp_path, tiny_model_dir):
    assert not resolve_source("facebook/webssl-dino300m-full2b-224").is_local
    assert resolve_source("facebook/x", "v1").label == "facebook/x@v1"
    assert resolve_source(str(tiny_model_dir)).is_local
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source("./models/missing")
