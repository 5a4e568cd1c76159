"""What a click in one of the Match page's components chose.

The timeline and the segments list send what a click chose as a trigger value: it is in
``st.session_state[key]`` for the one rerun the click starts, as a mapping or an object with one
attribute per value, and gone after it. One reader serves both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def trigger_value(state: Any, name: str) -> Any:
    """The component state's value ``name`` (None where there is none)."""
    return state.get(name) if isinstance(state, Mapping) else getattr(state, name, None)


def chosen_frame(state: Any) -> int | None:
    """The frame a click chose (the component's one-rerun ``frame`` value), if any."""
    value = trigger_value(state, "frame")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
