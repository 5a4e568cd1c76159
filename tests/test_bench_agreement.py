"""bench.agreement's bound: the best agreement any sampler could reach with a number of
analyses, if it knew every frame's answer (each frame keeps the last analysed frame's answer)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.agreement import Reference, best_possible, uniform


def _held(labels: np.ndarray, analysed: tuple[int, ...]) -> np.ndarray:
    """Each frame's answer when the frames in ``analysed`` are analysed (a plain loop)."""
    out, current = [], None
    for i, label in enumerate(labels):
        if i in analysed:
            current = label
        out.append(current)
    return np.array(out)


def _brute_force(labels: np.ndarray, weight: np.ndarray, analyses: int) -> float:
    n = len(labels)
    best = 0.0
    for rest in itertools.combinations(range(1, n), min(analyses, n) - 1):
        held = _held(labels, (0, *rest))
        best = max(best, float(np.sum(weight * (held == labels))))
    return best


def test_hand_worked_cases():
    a_b_a = np.array([1, 1, 2, 2, 1, 1])
    ones = np.ones(6)
    # one analysis (frame 0) holds 1 over all: frames 0, 1, 4, 5 agree
    assert best_possible(a_b_a, ones, 1) == 4
    # two: {0, 2} gives 1 1 2 2 2 2 (4 agree); {0, 4} gives 1 everywhere (4): still 4
    assert best_possible(a_b_a, ones, 2) == 4
    assert best_possible(a_b_a, ones, 3) == 6
    assert best_possible(a_b_a, ones, 9) == 6  # more analyses than runs
    # frames that do not count (top-1 counts only frames showing a collection picture)
    assert best_possible(a_b_a, np.array([1, 1, 0, 0, 1, 1]), 1) == 4
    # flicker, 1 2 1 2 ...: a stretch of length l held from its start gets ceil(l / 2) right,
    # so k stretches over 10 frames get at most floor((10 + k) / 2)
    flicker = np.array([1, 2] * 5)
    assert [best_possible(flicker, np.ones(10), k) for k in (1, 2, 3, 4, 10)] == [5, 6, 6, 7, 10]
    assert best_possible(np.array([], np.int64), np.array([]), 3) == 0.0
    assert best_possible(a_b_a, ones, 0) == 0.0


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_every_choice_of_frames(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 11))
    labels = rng.integers(-1, 3, n)  # -1: no match, as matched agreement's labels
    weight = rng.integers(0, 2, n).astype(float)
    for analyses in (1, 2, 3, 4):
        assert best_possible(labels, weight, analyses) == _brute_force(labels, weight, analyses)


def test_uniform_sampling_holds_every_nth_frames_answer():
    """Ten frames at 10 fps; the picture (image 7) shows in frames 0-5, image 9 after; frames 4
    and 5 are matched to image 8 by the model. One analysis in 3: frames 0, 3, 6, 9."""
    best_id = np.array([7, 7, 7, 7, 8, 8, 9, 9, 9, 9])
    ref = Reference(
        name="hand",
        fps=10.0,
        times=np.arange(10) / 10,
        thumbs=np.zeros((10, 1), np.float32),
        best_id=best_id,
        best=np.full(10, 0.9, np.float32),
        runner_up=np.full(10, 0.5, np.float32),
        shows_member=np.array([True] * 6 + [False] * 4),
        threshold=0.8,
        fp32_accuracy=1.0,
    )
    (v,) = uniform([ref], 3)["videos"]
    assert v["analysed"] == 4 and v["analysed_per_video_s"] == pytest.approx(4.0)
    # held answers: 7 7 7 7 7 7 9 9 9 9; frames 4 and 5 (showing a member) disagree
    assert v["agreement_top1"] == pytest.approx(4 / 6)
    assert v["agreement_matched"] == pytest.approx(8 / 10)


def test_a_reference_is_cached_per_model_weights(tmp_path):
    # the every-frame results are kept on disk: a model rebuilt from another recipe (a changed
    # proxy training) under the same folder must not reuse the old model's results
    from bench import synthetic as syn
    from bench.agreement import reference_path

    plan, folder = syn.random_plan(101), tmp_path / "small-trained"
    folder.mkdir()
    (folder / "bench-config.json").write_text('{"training": {"steps": 150}}')
    first = reference_path(plan, folder, tmp_path)
    assert reference_path(plan, folder, tmp_path) == first
    assert reference_path(syn.random_plan(102), folder, tmp_path) != first
    (folder / "bench-config.json").write_text('{"training": {"steps": 300}}')
    assert reference_path(plan, folder, tmp_path) != first
    assert first.parent == tmp_path / "references" and first.suffix == ".npz"
