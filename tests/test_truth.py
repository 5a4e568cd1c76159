"""core/matching/truth.py: truth files (segments or labelled frames) and a run evaluated against them.

The runs are written through the db API (tests/conftest.py: ``synthetic_run``), 10 frames per
second, so every expected number below can be worked out by hand.
"""

from __future__ import annotations

import json

import pytest

from conftest import synthetic_run
from core.matching.export import EXPORT_FORMATS
from core.matching.truth import TruthFileError, evaluate_run, parse_truth, read_truth

FPS = 10.0
A, P = 0, 1  # astronaut.jpg, poster.png


@pytest.fixture
def view(index):
    # 10 frames: astronaut 0..3 (0.9, 0.8, 0.8, 0.7), poster 4..5 (0.6, 0.4), nothing 6..9 (0.3)
    best = [A, A, A, A, P, P, A, A, -1, -1]
    scores = [0.9, 0.8, 0.8, 0.7, 0.6, 0.4, 0.3, 0.3, 0, 0]
    return synthetic_run(index, best, scores, fps=FPS, threshold=0.5)


def test_read_segments_and_frames(tmp_path):
    seg = tmp_path / "seg.csv"
    seg.write_text("image,start_s,end_s\nastronaut.jpg,0,0.3\n\nposter.png, 0.4 ,0.5\n")
    truth = read_truth(seg)
    assert truth.kind == "segments" and [s.image for s in truth.segments] == ["astronaut.jpg", "poster.png"]
    assert truth.segments[1].start_s == 0.4
    frames = parse_truth("frame_index,image,notes\n0,astronaut.jpg,x\n7,,nothing there\n")
    assert frames.kind == "frames" and [(f.frame_index, f.image) for f in frames.frames] == [
        (0, "astronaut.jpg"),
        (7, ""),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,start\nx,1\n", "header must name the columns image,start_s,end_s"),
        ("image,start_s,end_s\n", "no rows below the header"),
        ("image,start_s,end_s\na.jpg,1,oops\n", "line 2: end_s must be a number"),
        ("image,start_s,end_s\na.jpg,2,1\n", "line 2: a segment needs 0 ≤ start_s ≤ end_s"),
        ("image,start_s,end_s\n,0,1\n", "line 2: a segment needs an image name"),
        ("frame_index,image\n1.5,a.jpg\n", "frame_index must be a whole number"),
        ("frame_index,image\nnan,a.jpg\n", "frame_index must be a number"),
    ],
)
def test_bad_truth_says_what_is_wrong(text, message):
    with pytest.raises(TruthFileError, match=message):
        parse_truth(text)


def test_missing_truth_file(tmp_path):
    with pytest.raises(TruthFileError, match="No truth file"):
        read_truth(tmp_path / "nope.csv")


def test_a_runs_own_segments_are_a_perfect_truth(view, tmp_path):
    """Its segments export (last frame included) as truth: every figure is 1."""
    rows = ["image,start_s,end_s"] + [
        f"{view.image_name(s.image_id)},{s.start_s},{s.end_s}" for s in view.segments
    ]
    result = evaluate_run(view, parse_truth("\n".join(rows)))
    # matched at 0.5: astronaut 0..3, poster 4; frame 5..9 unmatched, and nothing is on screen there
    assert result.frame_accuracy == 1.0
    assert result.precision == pytest.approx(1.0) and result.recall == pytest.approx(1.0)
    # but below 0.5 the run predicts more (poster 0.4, astronaut 0.3): the curve goes on below 1
    assert result.curve.precision[-1] < 1.0
    assert result.threshold_at_p90 == pytest.approx(0.6)  # the lowest score still ≥ 90% precise


def test_segments_truth_by_hand(view):
    # astronaut on screen in frames 0-5 ([0, 0.6) s: end_s is where the last frame ends, as in the
    # exports), poster in frames 6-7 ([0.6, 0.8) s)
    truth = parse_truth("image,start_s,end_s\nastronaut.jpg,0,0.6\nposter.png,0.6,0.8\n")
    result = evaluate_run(view, truth)
    # labels at 0.5: A A A A P - - - - -; truth: A A A A A A P P - -
    # right: frames 0-3 and 8-9 -> 6 / 10
    assert result.frame_accuracy == pytest.approx(0.6)
    # micro curve (0.1 s per frame, 0.8 s of truth):
    #   0.9: A f0 right                    P 1,     R 1/8
    #   0.8: A f1, f2 right                P 1,     R 3/8
    #   0.7: A f3 right                    P 1,     R 4/8
    #   0.6: P f4 wrong                    P 4/5,   R 4/8
    #   0.4: P f5 wrong                    P 4/6,   R 4/8
    #   0.3: A f6, f7 wrong                P 4/8,   R 4/8
    # AP = 1 × 4/8 = 0.5
    assert result.micro_ap == pytest.approx(0.5)
    assert result.curve.thresholds.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    assert result.threshold_at_p90 == pytest.approx(0.7)
    per = {q.image: q for q in result.per_image}
    # astronaut: 4 of its 6 frames, all predictions right until 0.3 -> AP 4/6; at 0.5 P 1, R 4/6
    assert per["astronaut.jpg"].ap == pytest.approx(4 / 6)
    assert (per["astronaut.jpg"].precision, per["astronaut.jpg"].recall) == (1.0, pytest.approx(4 / 6))
    # poster: predicted at f4 (and f5 below 0.5), never right -> AP 0, precision 0 at 0.5
    assert per["poster.png"].ap == 0.0 and per["poster.png"].precision == 0.0
    doc = result.to_dict()
    assert list(doc) == ["frame_accuracy", "micro_ap", "per_image", "pr_curve", "threshold_at_p90"]
    assert doc["pr_curve"][0] == {"threshold": 0.9, "precision": 1.0, "recall": 0.125}
    json.dumps(doc, allow_nan=False)  # valid JSON: no NaN anywhere


def test_frame_labels_evaluate_only_the_listed_frames(view):
    # frames 0 (astronaut: right), 4 (astronaut, predicted poster: wrong), 9 (none: right)
    truth = parse_truth("frame_index,image\n0,astronaut.jpg\n4,astronaut.jpg\n9,\n")
    result = evaluate_run(view, truth)
    assert result.units == 3
    assert result.frame_accuracy == pytest.approx(2 / 3)
    # truth 0.2 s of astronaut; 0.9: f0 right (P 1, R 1/2); 0.6: f4 poster wrong (P 1/2) -> AP 1/2
    assert result.micro_ap == pytest.approx(0.5)


def test_paths_in_truth_are_compared_with_paths(view):
    truth = parse_truth(
        "image,start_s,end_s\n/photos/astronaut.jpg,0,0.3\n/elsewhere/astronaut.jpg,0.4,0.5\n"
    )
    per = {q.image: q for q in evaluate_run(view, truth).per_image}
    assert per["/photos/astronaut.jpg"].recall == pytest.approx(1.0)
    assert per["/elsewhere/astronaut.jpg"].recall == 0.0  # same file name, another file


def test_threshold_changes_the_labels_not_the_curve(view):
    truth = parse_truth("image,start_s,end_s\nastronaut.jpg,0,0.5\n")
    loose, strict = evaluate_run(view.relabel(threshold=0.25), truth), evaluate_run(view, truth)
    assert loose.micro_ap == strict.micro_ap
    assert loose.frame_accuracy != strict.frame_accuracy


def test_every_export_format_is_listed_once():
    keys = [f.key for f in EXPORT_FORMATS]
    assert keys == ["json", "csv", "edl", "otio", "vtt"] and len(set(f.suffix for f in EXPORT_FORMATS)) == 5
