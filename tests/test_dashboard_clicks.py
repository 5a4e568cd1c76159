"""dashboard/clicks.py: what a click in a component chose (the timeline's and the list's)."""

from __future__ import annotations

import pytest

from dashboard.clicks import chosen_frame, trigger_value


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
def test_chosen_frame(state, frame):
    assert chosen_frame(state) == frame


def test_a_component_result_is_read_by_attribute():
    class Result:
        frame = 5
        window = (1.0, 2.0)

    assert chosen_frame(Result()) == 5
    assert trigger_value(Result(), "window") == (1.0, 2.0)
    assert trigger_value(Result(), "nothing") is None
