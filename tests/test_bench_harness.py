"""bench.harness: how the benchmark runs a measurement, in a child process that gets the
settings as JSON, looked up by name across the measurement modules, with failures reported
with the child's own error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.harness import MEASUREMENT_MODULES, measure
from bench.settings import Settings


def test_every_module_lists_its_measurements():
    import importlib

    names = [set(importlib.import_module(m).MEASUREMENTS) for m in MEASUREMENT_MODULES]
    assert all(names), "a measurement module lists nothing"
    everything = set().union(*names)
    assert sum(len(n) for n in names) == len(everything), "a name is listed twice"
    assert {"ceiling", "match", "agreement", "regions_cost", "scale_writer"} <= everything


@pytest.mark.slow
def test_a_measurement_runs_in_its_own_process(tmp_path):
    settings = replace(Settings.for_mode("smoke"), inline=False, cache=str(tmp_path))
    result = measure(settings, "ceiling")
    assert "inline" not in result
    assert result["shape"] == [256, 1024, 1024]
    assert result["gflops"]["fp32"] > 0
    assert result["peak_rss_mb"] > 50  # the child's own peak: it imported PyTorch


def test_an_unknown_measurement_is_named(tmp_path):
    inline = replace(Settings.for_mode("smoke"), cache=str(tmp_path))
    with pytest.raises(KeyError, match="no measurement 'nonsense'"):
        measure(inline, "nonsense")


@pytest.mark.slow
def test_a_failed_child_reports_its_error(tmp_path):
    settings = replace(Settings.for_mode("smoke"), inline=False, cache=str(tmp_path))
    with pytest.raises(
        RuntimeError, match=r"measurement nonsense \{\} failed(.|\n)*no measurement 'nonsense'"
    ):
        measure(settings, "nonsense")
