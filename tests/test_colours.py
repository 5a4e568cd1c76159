"""One colour per image, everywhere and at every threshold (issue 8, defect 2)."""

from __future__ import annotations

import numpy as np

from core.matching.params import matched_mask
from core.visual.colours import NO_MATCH, PALETTE, image_colour, image_rgb
from dashboard import charts, timeline_data


def test_colour_follows_the_image_id_alone():
    assert image_colour(7) == image_colour(7 + len(PALETTE))
    assert len({image_colour(i) for i in range(len(PALETTE))}) == len(PALETTE)  # neighbours differ
    assert NO_MATCH not in PALETTE
    assert image_rgb(0) == tuple(int(PALETTE[0][i : i + 2], 16) for i in (1, 3, 5))


def _trace_colours(fig) -> dict[str, str]:
    return {
        tr.name: tr.marker.color
        for tr in fig.data
        if tr.mode == "markers" and isinstance(tr.marker.color, str)
    }


def test_timeline_colours_do_not_depend_on_the_threshold():
    """Moving the threshold used to swap colours (they followed the order of matched images)."""
    n = 60
    t = np.arange(n) / 10
    img = np.repeat([3, 8, 5], 20)  # three images, each shown for 2 s
    score = np.concatenate([np.full(20, 0.65), np.full(20, 0.95), np.full(20, 0.75)])
    names = {3: "me_dark.png", 8: "guy.jpg", 5: "godzilla.jpg"}
    seen = {}
    for threshold in (0.6, 0.7, 0.9):
        line = timeline_data.decimate(t, np.arange(n), score, img, matched_mask(score, threshold))
        fig = charts.timeline_figure(line, names, threshold)
        for name, colour in _trace_colours(fig).items():
            if name in names.values():
                seen.setdefault(name, set()).add(colour)
    assert seen == {name: {image_colour(i)} for i, name in names.items()}
