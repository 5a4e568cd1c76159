"""dashboard/segment_list.py: the segments list's script and the data it is sent."""

from __future__ import annotations

from pathlib import Path

from dashboard import segment_list
from dashboard.results import SegmentListSpec

JS = Path(segment_list.__file__).with_name("segment_list.js")


def test_the_script_reads_every_field_the_spec_sends():
    """segment_list.js and SegmentListSpec.to_data() agree on names: a renamed field would show
    nothing, or break the list."""
    spec = SegmentListSpec(
        images=((7, "a.jpg", "#1f77b4", "data:,"),),
        image=(0,),
        start_s=(0.0,),
        end_s=(1.0,),
        peak=(0.9,),
        mean=(0.8,),
        frames=(10,),
        start_frame=(0,),
        current=None,
    )
    script = JS.read_text()
    assert len(spec) == 1
    for field in spec.to_data():
        assert f"data.{field}" in script or f"d.{field}" in script, field
    for field in ("row_px", "visible_rows"):  # added by segment_list.segment_list
        assert f"data.{field}" in script, field
