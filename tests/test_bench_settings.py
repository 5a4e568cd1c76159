"""bench.settings: a benchmark mode's counts, and their way to a measurement's process and back."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from bench.settings import Settings


@pytest.mark.parametrize("mode", ["full", "quick", "smoke"])
def test_settings_come_back_from_json_unchanged(mode):
    settings = replace(Settings.for_mode(mode), cache="/somewhere")
    raw = json.loads(json.dumps(asdict(settings)))  # tuples arrive as lists
    assert Settings.from_dict(raw) == settings


def test_modes_shrink_the_counts_and_an_unknown_mode_is_refused():
    full, quick, smoke = (Settings.for_mode(m) for m in ("full", "quick", "smoke"))
    assert smoke.inline and not quick.inline and not full.inline  # only the smoke run stays in process
    assert smoke.big_model == smoke.small_model == "tiny" and full.big_model == "vitl"
    assert max(smoke.search_sizes) < max(quick.search_sizes) <= max(full.search_sizes)
    assert quick.search_sqlite_max < full.search_sqlite_max
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        Settings.for_mode("fast")
