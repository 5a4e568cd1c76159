"""Frame sampling modes and change-driven decisions."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import pattern_image
from core.errors import InvalidArgumentError
from core.matching.sampling import Sampling


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
    assert (
        decisions[0].reason == "first" and decisions[10].reason == "refresh" and decisions[15].reason == "cut"
    )
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


# -- the change measure (added with the speed benchmark) --------------------------------------
def _pan(n: int, step_px: int, seed: int = 9):
    """Frames of a camera panning over one picture, ``step_px`` pixels a frame."""
    big = pattern_image(seed, (280, 320 + n * step_px + 8))
    return [np.ascontiguousarray(big[20:260, i * step_px : i * step_px + 320]) for i in range(n)]


def test_defaults_are_the_benchmarked_ones():
    from core.matching.sampling import DEFAULT_CHANGE_THRESHOLD, DEFAULT_MAX_INTERVAL_S

    assert Sampling.auto() == Sampling()
    assert Sampling().change_threshold == DEFAULT_CHANGE_THRESHOLD
    assert Sampling().max_interval_s == DEFAULT_MAX_INTERVAL_S
    assert Sampling().cut_threshold >= Sampling().change_threshold


def test_change_measure_forgives_a_shift():
    from core.matching.sampling import change, change_thumbnail

    a = pattern_image(4)
    b = np.roll(a, 20, axis=1)  # the camera moved by 6 % of the width
    ta, tb = change_thumbnail(a), change_thumbnail(b)
    assert ta.shape == (48, 48, 3) and ta.dtype == np.float32
    plain = float(np.abs(ta - tb).mean())
    assert change(ta, tb) < plain / 3
    assert change(ta, ta) == 0.0
    assert change(ta, change_thumbnail(pattern_image(5))) > 0.15  # another picture


def test_change_measure_is_the_same_every_time():
    # the decisions of a run (and the benchmark's replays) rest on it: OpenCV's phaseCorrelate
    # with a window argument returned a different shift and response on every call (4.14 and
    # 5.0), so the same two frames could count as changed or not from one run to the next
    from core.matching.sampling import _estimated_shift, change, change_thumbnail

    frames = [pattern_image(4), np.roll(pattern_image(4), 9, axis=1), pattern_image(6)]
    thumbs = [change_thumbnail(f) for f in frames]
    greys = [np.ascontiguousarray(t[..., 1]) for t in thumbs]
    for a, ga in zip(thumbs, greys, strict=True):
        for b, gb in zip(thumbs, greys, strict=True):
            assert len({change(a, b) for _ in range(25)}) == 1
            assert len({_estimated_shift(ga, gb) for _ in range(25)}) == 1
    # and the shift it finds is the camera's: a whole-thumbnail shift of 3 right and 2 down
    moved = np.roll(greys[0], (2, 3), axis=(0, 1))
    (dx, dy), response = _estimated_shift(greys[0], moved)
    assert (round(dx), round(dy)) == (3, 2) and response > 0.3


def test_auto_pans_cost_few_passes_but_cuts_are_always_analysed():
    frames = _pan(20, 4) + [pattern_image(50)] * 5
    planner = Sampling.auto(max_interval_s=100).planner()
    decisions = [planner.decide(i, i / 10, f) for i, f in enumerate(frames)]
    analysed = [i for i, d in enumerate(decisions) if d.analyse]
    assert analysed[0] == 0 and decisions[20].reason == "cut"
    assert len([i for i in analysed if 0 < i < 20]) <= 3  # 80 px of pan: new content enters slowly
    assert all(d.source == max(a for a in analysed if a <= i) for i, d in enumerate(decisions))


def test_auto_looks_only_at_what_the_model_sees():
    from core.model.preprocess import Preprocessing

    prep = Preprocessing()  # centre crop: the model never sees the left and right quarters
    base = pattern_image(5, (180, 320))
    edge = base.copy()
    edge[:, :75] = 255 - edge[:, :75]
    whole = Sampling.auto(max_interval_s=100).planner()
    cropped = Sampling.auto(max_interval_s=100).planner(prep)
    assert [whole.decide(i, i / 10, f).analyse for i, f in enumerate([base, edge])] == [True, True]
    assert [cropped.decide(i, i / 10, f).analyse for i, f in enumerate([base, edge])] == [True, False]
    assert cropped.view_box(180, 320) == (81, 11, 238, 169)


def test_decisions_are_counted_and_replay_from_thumbnails():
    from core.matching.sampling import change_thumbnail

    frames = _pan(12, 6) + [pattern_image(60)] * 4 + _pan(8, 1, seed=61)
    live = Sampling.auto(max_interval_s=0.5).planner()
    replay = Sampling.auto(max_interval_s=0.5).planner()
    box = replay.view_box(240, 320)
    a = [live.decide(i, i / 10, f) for i, f in enumerate(frames)]
    b = [replay.decide_thumbnail(i, i / 10, change_thumbnail(f, box)) for i, f in enumerate(frames)]
    assert a == b
    assert sum(live.reasons.values()) == len(frames)
    assert live.reasons["first"] == 1 and live.reasons["cut"] >= 2 and live.reasons["refresh"] >= 1
    assert live.reasons["static"] == sum(not d.analyse for d in a)


# -- sampling by certainty (the pipeline reports each analysed frame's best and runner-up) -----
def _static_run(planner, n: int, fps: float, scores: dict[int, tuple[float, float]] | tuple[float, float]):
    """Decide ``n`` frames of one still picture, reporting ``scores`` (per analysed frame, or
    the same for all) right after each analysis, as the pipeline does."""
    frame = pattern_image(7)
    decisions = []
    for i in range(n):
        d = planner.decide(i, i / fps, frame)
        decisions.append(d)
        if d.analyse:
            best, runner_up = scores if isinstance(scores, tuple) else scores[i]
            planner.observe(i, best, runner_up)
    return decisions


_CERTAIN = {
    "sure_max_interval_s": 5.0,
    "unsure_max_interval_s": 0.5,
    "sure_margin": 0.1,
    "sure_lead": 0.1,
    "unsure_margin": 0.03,
    "unsure_lead": 0.03,
    "feedback_lag": 3,
}


def test_certainty_of_a_result():
    from core.matching.sampling import certainty

    s = Sampling.auto(**_CERTAIN)
    assert certainty(0.9, 0.5, 0.6, s) == "sure"  # far above, wide lead
    assert certainty(0.3, 0.29, 0.6, s) == "sure"  # far below: who leads does not matter
    assert certainty(0.61, 0.3, 0.6, s) == "unsure"  # near the threshold
    assert certainty(0.9, 0.89, 0.6, s) == "unsure"  # a close runner-up
    assert certainty(0.68, 0.5, 0.6, s) == "unknown"  # in between: the plain rule
    assert certainty(0.9, float("nan"), 0.6, s) == "unknown"  # no runner-up: lead unknown
    assert certainty(float("nan"), float("nan"), 0.6, s) == "unknown"


def test_a_sure_result_waits_longer_and_an_unsure_one_is_looked_at_sooner():
    s = Sampling.auto(max_interval_s=2.0, **_CERTAIN)
    fps, n = 10, 120
    plain = _static_run(s.planner(), n, fps, (0.9, 0.5))  # no threshold: no certainty
    sure = _static_run(s.planner(threshold=0.6), n, fps, (0.9, 0.5))
    unsure = _static_run(s.planner(threshold=0.6), n, fps, (0.61, 0.3))
    between = _static_run(s.planner(threshold=0.6), n, fps, (0.68, 0.5))  # neither: the plain rule

    def analysed(ds):
        return [i for i, d in enumerate(ds) if d.analyse]

    assert analysed(plain) == [0, 20, 40, 60, 80, 100] == analysed(between)
    assert analysed(sure) == [0, 50, 100]
    assert analysed(unsure)[:4] == [0, 5, 10, 15] and len(analysed(unsure)) == 24
    # every decision says why: inherited beyond the plain interval because the result was sure,
    # analysed before it because the result was not
    assert sure[20].reason == "sure" and not sure[20].analyse and sure[20].source == 0
    assert unsure[5].reason == "unsure" and unsure[5].analyse
    reasons = s.planner(threshold=0.6)
    _static_run(reasons, n, fps, (0.9, 0.5))
    assert reasons.reasons["first"] == 1 and reasons.reasons["refresh"] == 2
    assert reasons.reasons["sure"] > 0 and sum(reasons.reasons.values()) == n


def test_certainty_follows_each_result():
    """Scores change from sure to unsure: the next interval follows the newest result."""
    s = Sampling.auto(max_interval_s=2.0, **_CERTAIN)
    scores = {0: (0.9, 0.5), 50: (0.62, 0.5)}
    scores.update({i: (0.62, 0.5) for i in range(51, 120)})
    decisions = _static_run(s.planner(threshold=0.6), 80, 10, scores)
    assert [i for i, d in enumerate(decisions) if d.analyse][:4] == [0, 50, 55, 60]


def test_results_count_only_after_the_feedback_lag_whenever_they_arrive():
    """The decisions do not depend on when the results come in (the run is reproducible):
    before ``feedback_lag`` frames the plain rule applies; a due result is waited for."""
    import threading
    import time

    s = Sampling.auto(max_interval_s=0.5, **{**_CERTAIN, "feedback_lag": 4})
    fps, n = 10, 40
    frame = pattern_image(8)
    early = _static_run(s.planner(threshold=0.6), n, fps, (0.9, 0.5))

    late = s.planner(threshold=0.6)
    pending: list[int] = []
    decisions = []

    def reporter():
        done = 0
        while done < 1:
            if pending:
                time.sleep(0.05)  # the model is slow
                late.observe(pending.pop(0), 0.9, 0.5)
                done += 1
            time.sleep(0.01)

    thread = threading.Thread(target=reporter)
    thread.start()
    for i in range(n):
        d = late.decide(i, i / fps, frame)
        decisions.append(d)
        if d.analyse:
            pending.append(i)
    thread.join(timeout=10)
    assert decisions == early
    # from frame 4 on, the first (sure) result counts: the plain 0.5 s refresh becomes 5 s
    assert [i for i, d in enumerate(early) if d.analyse] == [0]
    assert early[4].reason == "static" and early[5].reason == "sure"


def test_close_releases_a_planner_waiting_for_a_result():
    import threading

    s = Sampling.auto(max_interval_s=0.2, **{**_CERTAIN, "feedback_lag": 2})
    planner = s.planner(threshold=0.6)
    frame = pattern_image(9)
    planner.decide(0, 0.0, frame)  # analysed; its result never comes
    planner.decide(1, 0.1, frame)
    threading.Timer(0.2, planner.close).start()
    d = planner.decide(2, 0.2, frame)  # needs frame 0's result: waits until closed
    assert d.analyse and d.reason == "refresh"  # the plain rule


def test_certainty_options_are_checked_and_stored():
    with pytest.raises(InvalidArgumentError, match="unknown sampling options"):
        Sampling.auto(sure_interval=3)
    with pytest.raises(InvalidArgumentError):
        Sampling.auto(sure_change_threshold=0.5)  # above the cut threshold
    with pytest.raises(InvalidArgumentError):
        Sampling.auto(feedback_lag=0)
    s = Sampling.auto(**_CERTAIN)
    assert Sampling.from_dict(s.to_dict()) == s
    assert "sure" in s.describe() and "sure_margin" not in Sampling.every().to_dict()
