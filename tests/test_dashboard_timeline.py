"""dashboard/timeline.py: the timeline component's click value and its script."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import timeline

JS = Path(timeline.__file__).with_name("timeline.js")


@pytest.mark.parametrize(
    ("state", "frame"),
    [
        (None, None),
        ({}, None),
        ({"frame": None}, None),
        ({"frame": 12}, 12),
        ({"frame": 12.0}, 12),
        ({"frame": "7"}, 7),
        ({"frame": "seven"}, None),
        ({"frame": True}, None),
    ],
)
def test_clicked_frame(state, frame):
    assert timeline.clicked_frame(state) == frame


def test_clicked_frame_reads_a_component_result():
    class Result:
        frame = 5

    assert timeline.clicked_frame(Result()) == 5


def test_the_script_reads_every_field_the_spec_sends():
    """timeline.js and TimelineSpec.to_data() agree on names: a renamed field would draw nothing."""
    import numpy as np

    from dashboard import charts

    t = np.arange(10) / 10
    score = np.linspace(0.5, 1.0, 10)
    spec = charts.timeline_spec(charts.decimate(t, np.arange(10), score, np.arange(10), score > 0.7), {}, 0.7)
    script = JS.read_text()
    for field in spec.to_data():
        assert f"data.{field}" in script, field
    for name in ("threshold", "selected", "band_fill", "band_line"):
        assert f"data.style.{name}" in script, name
