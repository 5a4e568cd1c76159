"""Frame sampling modes and change-driven decisions."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import pattern_image
from core.errors import InvalidArgumentError
from core.sampling import Sampling


def _wanted(sampling, n=60, fps=30.0):
    planner = sampling.planner()
    return [i for i in range(n) if planner.wants(i, i / fps)]


def test_every_stride_and_rate():
    assert _wanted(Sampling.every(), 10) == list(range(10))
    assert _wanted(Sampling.every_nth(4), 10) == [0, 4, 8]
    assert _wanted(Sampling.rate(2), 60) == [0, 15, 30, 45]
    # a rate above the video's fps keeps every frame
    assert _wanted(Sampling.rate(100), 10) == list(range(10))


def test_rate_handles_irregular_timestamps():
    planner = Sampling.rate(1).planner()
    times = [0.0, 0.4, 0.95, 1.02, 1.5, 2.7, 2.9, 3.0]
    picked = [t for i, t in enumerate(times) if planner.wants(i, t)]
    assert picked == [0.0, 1.02, 2.7, 3.0]


def test_invalid_options():
    with pytest.raises(InvalidArgumentError):
        Sampling.every_nth(0)
    with pytest.raises(InvalidArgumentError):
        Sampling.rate(-1)
    with pytest.raises(InvalidArgumentError):
        Sampling.auto(change_threshold=0.5, cut_threshold=0.1)


def test_auto_analyses_cuts_changes_and_refreshes():
    planner = Sampling.auto(max_interval_s=1.0).planner()
    a, b = pattern_image(1), pattern_image(2)
    decisions = []
    fps = 10
    for i in range(30):
        frame = a if i < 15 else b  # a cut at frame 15
        decisions.append(planner.decide(i, i / fps, frame))
    analysed = [i for i, d in enumerate(decisions) if d.analyse]
    assert analysed == [0, 10, 15, 25]
    assert decisions[0].reason == "first" and decisions[10].reason == "refresh" and decisions[15].reason == "cut"
    assert decisions[12].source == 10 and not decisions[12].analyse


def test_auto_notices_gradual_change():
    planner = Sampling.auto(change_threshold=0.05, max_interval_s=100).planner()
    base = pattern_image(3).astype(np.int16)
    analysed = []
    for i in range(20):
        frame = np.clip(base + i * 6, 0, 255).astype(np.uint8)  # a slow fade
        if planner.decide(i, i / 10, frame).analyse:
            analysed.append(i)
    assert analysed[0] == 0 and 2 <= len(analysed) <= 10


def test_describe_and_round_trip():
    for s in (Sampling.every(), Sampling.every_nth(3), Sampling.rate(2.5), Sampling.auto()):
        d = s.to_dict()
        assert d["description"] == s.describe()
        assert Sampling.from_dict(d) == s
