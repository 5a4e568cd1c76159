"""core.matching.params: MatchParams, validated and round-tripped."""

from __future__ import annotations

import pytest

from core.errors import InvalidArgumentError
from core.matching.params import MatchParams


def test_params_are_validated_and_round_trip():
    p = MatchParams(threshold=0.7, top_k=3, gap_tolerance_s=1.0, min_duration_s=0.5)
    assert MatchParams.from_dict({**p.to_dict(), "extra": 1}) == p
    with pytest.raises(InvalidArgumentError, match="threshold"):
        MatchParams(threshold=1.5)
    with pytest.raises(InvalidArgumentError, match="top-k"):
        MatchParams(top_k=0)
    with pytest.raises(InvalidArgumentError):
        MatchParams(gap_tolerance_s=-1)
