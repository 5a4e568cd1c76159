"""core.matching.pipeline: matching a video against a collection (match_video), sampling, the cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PARAMS, TEST_THRESHOLD
from core.errors import VideoOpenError
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import EmptyCollectionError, load_run
from core.matching.sampling import Sampling
from core.media.video import iter_frames
from core.model.features import FeatureExtractor
from core.progress import Cancelled
from db import ModelMismatchError, NotFoundError


def _image_no(view, image_folder, image_id):
    path = view.image_paths[int(image_id)]
    return [str(p.resolve()) for p in image_folder.paths].index(path)


def test_every_frame_finds_the_right_images_and_segments(indexed, extractor, shots_video, image_folder):
    summary = match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS
    )
    assert summary.frames_recorded == shots_video.frame_count == summary.frames_computed
    view = load_run(indexed, summary.run_id)
    res = view.results
    assert res.k == 3 and len(res) == 40
    for row in range(len(res)):
        expected = shots_video.expected_image(int(res.frame_index[row]))
        if expected >= 0:
            assert view.matched()[row]
            assert _image_no(view, image_folder, res.image_ids[row, 0]) == expected
        else:
            assert not view.matched()[row]
    segs = [(_image_no(view, image_folder, s.image_id), s.start_frame, s.end_frame) for s in view.segments]
    assert segs == [(0, 0, 11), (1, 18, 27), (2, 28, 35)]
    first = view.segments[0]
    assert first.start_s == pytest.approx(0.0) and first.end_s == pytest.approx(
        1.2, abs=0.01
    )  # the end of its last frame
    assert first.peak_score >= first.mean_score >= TEST_THRESHOLD
    run = indexed.get_run(summary.run_id)
    assert run.status == "done" and run.params["sampling"]["mode"] == "every"


def test_parity_with_the_plain_reference_loop(indexed, extractor, shots_video, image_folder, tiny_model_dir):
    """Plain algorithm: HF image processor + model per frame, CLS, normalise, argmax."""
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()

    def embed(rgb):
        with torch.inference_mode():
            x = processor(images=Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
            v = model(pixel_values=x).last_hidden_state[0, 0].numpy()
        return v / np.linalg.norm(v)

    db = np.stack([embed(np.asarray(Image.open(p).convert("RGB"))) for p in image_folder.paths])
    summary = match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS
    )
    view = load_run(indexed, summary.run_id)
    for frame in iter_frames(shots_video.path):
        ref_scores = db @ embed(frame.rgb)
        row = int(np.flatnonzero(view.results.frame_index == frame.index)[0])
        assert _image_no(view, image_folder, view.results.image_ids[row, 0]) == int(ref_scores.argmax())
        assert view.results.scores[row, 0] == pytest.approx(ref_scores.max(), abs=1e-4)


def test_second_match_runs_no_model_pass(indexed, extractor, shots_video, monkeypatch):
    first = match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS
    )

    def forbidden(*args, **kwargs):
        raise AssertionError("the model ran although every frame embedding is cached")

    monkeypatch.setattr(extractor, "forward", forbidden)
    again = match_video(
        indexed,
        shots_video.path,
        "shots",
        extractor,
        sampling=Sampling.every(),
        params=MatchParams(threshold=0.5, top_k=2),
    )
    assert again.frames_computed == 0 and again.frames_from_cache == 40
    a, b = load_run(indexed, first.run_id).results, load_run(indexed, again.run_id).results
    np.testing.assert_array_equal(a.image_ids[:, :2], b.image_ids)
    np.testing.assert_allclose(a.scores[:, :2], b.scores, atol=1e-6)


def test_stride_and_fps_sampling_record_only_sampled_frames(indexed, extractor, shots_video):
    s = match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every_nth(5), params=PARAMS
    )
    view = load_run(indexed, s.run_id)
    assert view.results.frame_index.tolist() == list(range(0, 40, 5))
    assert s.frames_decoded == 40
    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.rate(2), params=PARAMS)
    assert load_run(indexed, s.run_id).results.frame_index.tolist() == list(range(0, 40, 5))


def test_auto_sampling_inherits_results_of_unchanged_frames(indexed, extractor, shots_video, image_folder):
    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.auto(), params=PARAMS)
    view = load_run(indexed, s.run_id)
    res = view.results
    assert len(res) == 40 and s.frames_inherited > 0 and s.frames_computed < 40
    inherited = res.source_frame != res.frame_index
    assert inherited.sum() == s.frames_inherited
    # an inherited frame carries exactly its source frame's result
    for row in np.flatnonzero(inherited):
        src_row = int(np.flatnonzero(res.frame_index == res.source_frame[row])[0])
        np.testing.assert_array_equal(res.image_ids[row], res.image_ids[src_row])
        assert res.source_frame[row] < res.frame_index[row]
    # shot cuts are analysed: the first frame of every shot has its own embedding
    for start in (0, 12, 18, 28, 36):
        assert res.source_frame[start] == start
    best = [
        _image_no(view, image_folder, i) if m else -1
        for i, m in zip(res.image_ids[:, 0], view.matched(), strict=True)
    ]
    expected = [shots_video.expected_image(i) for i in range(40)]
    assert np.mean(np.array(best) == np.array(expected)) >= 0.95


def test_errors_are_clear_and_store_nothing_wrong(index, indexed, extractor, shots_video, tmp_path):
    with pytest.raises(NotFoundError, match="nope"):
        match_video(indexed, shots_video.path, "nope", extractor)
    indexed.create_collection("empty", extractor.model_id, extractor.preprocessing.to_json(), 48)
    with pytest.raises(EmptyCollectionError, match="index some first"):
        match_video(indexed, shots_video.path, "empty", extractor)
    indexed.create_collection("other-model", "someone/else", extractor.preprocessing.to_json(), 48)
    with pytest.raises(ModelMismatchError, match="someone/else"):
        match_video(indexed, shots_video.path, "other-model", extractor)
    bad = tmp_path / "broken.mp4"
    bad.write_text("garbage" * 100)
    with pytest.raises(VideoOpenError):
        match_video(indexed, bad, "shots", extractor)
    assert indexed.list_runs() == []


@pytest.mark.parametrize("how", ["cancel", "ctrl-c"])
def test_a_stopped_run_is_kept_cancelled_with_the_cache(indexed, extractor, shots_video, how):
    """Stopped from the dashboard (the cancel event) or with Ctrl-C: the run is `cancelled` (a
    Ctrl-C made it `failed`, as if something had broken) and resumes from the cache."""
    cancel = threading.Event()

    def progress(event):
        if event.done >= 16:
            if how == "ctrl-c":
                raise KeyboardInterrupt
            cancel.set()

    with pytest.raises(KeyboardInterrupt if how == "ctrl-c" else Cancelled):
        match_video(
            indexed,
            shots_video.path,
            "shots",
            extractor,
            sampling=Sampling.every(),
            params=PARAMS,
            batch_size=8,
            progress=progress,
            cancel=cancel,
        )
    runs = indexed.list_runs()
    assert runs[0].status == "cancelled"
    video = indexed.get_video(runs[0].video_id)
    assert len(indexed.cached_frame_indices(video.sha256, extractor.embed_key())) >= 8
    resumed = match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS
    )
    assert resumed.frames_from_cache >= 8 and resumed.frames_computed <= 32


def test_progress_tells_every_stage_from_the_start(indexed, extractor, shots_video):
    """The first match showed only "Starting…" while the video was hashed and the collection loaded."""
    events = []
    match_video(
        indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), progress=events.append
    )
    stages = list(dict.fromkeys(e.stage for e in events))
    assert stages == ["reading video", "loading collection", "matching"]
    assert events[0].message == shots_video.path.name
    reading = [e for e in events if e.stage == "reading video"]
    assert reading[-1].done == reading[-1].total  # hashed to the end (in MB, at least 1)
    assert "embeddings of shots" in next(e.message for e in events if e.stage == "loading collection")
    assert events[-1].stage == "matching" and events[-1].done == 40


def test_max_frames_limits_the_run(indexed, extractor, shots_video):
    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), max_frames=10)
    assert s.frames_recorded == 10


def test_auto_run_stores_its_decisions_and_analyses_every_cut(indexed, extractor, shots_video):
    summary = match_video(indexed, shots_video.path, "shots", extractor, params=PARAMS)  # default sampling
    run = indexed.get_run(summary.run_id)
    decisions = run.stats["decisions"]
    assert sum(decisions.values()) == summary.frames_recorded == shots_video.frame_count
    assert decisions.get("static", 0) == summary.frames_inherited > 0
    assert run.params["sampling"]["mode"] == "auto"
    assert run.params["sampling"]["max_interval_s"] == Sampling().max_interval_s
    res = load_run(indexed, summary.run_id).results
    analysed = set(res.frame_index[res.source_frame == res.frame_index].tolist())
    cuts = np.cumsum([n for _, n in shots_video.plan])[:-1]
    assert set(cuts.tolist()) <= analysed
    # an inherited frame carries exactly its source frame's matches
    row_of = {int(f): r for r, f in enumerate(res.frame_index)}
    for r in np.flatnonzero(res.source_frame != res.frame_index):
        src = row_of[int(res.source_frame[r])]
        np.testing.assert_array_equal(res.image_ids[r], res.image_ids[src])


# -- issue 9: a killed match is interrupted, resumable, and never passed off as done --------------------
def _killed_match(db, tiny_model_dir, video, after_frames: int) -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import os
        from core.model.features import FeatureExtractor
        from core.matching.params import MatchParams
        from core.matching.pipeline import match_video
        from core.matching.sampling import Sampling
        from db import Index
        fx = FeatureExtractor.load({str(tiny_model_dir)!r}, device="cpu")
        def progress(ev):
            if ev.done >= {after_frames}:
                os._exit(9)  # killed without cleanup, mid-run
        with Index({str(db)!r}) as index:
            match_video(index, {str(video)!r}, "shots", fx, sampling=Sampling.every(), batch_size=4,
                        params=MatchParams(threshold=0.95, top_k=3), progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr


def test_a_killed_match_is_interrupted_and_resumes_exactly(
    tmp_path, tiny_model_dir, image_folder, shots_video
):
    from core.matching.runs import IncompleteRunError, load_run, rematch
    from db import Index

    db = tmp_path / "kill.sqlite"
    params = MatchParams(threshold=0.95, top_k=3)
    with Index(db) as index:
        fx = FeatureExtractor.load(tiny_model_dir, device="cpu")
        index_images(index, "shots", [image_folder.folder], fx)
    _killed_match(db, tiny_model_dir, shots_video.path, after_frames=12)
    with Index(db) as index:
        (run,) = index.list_runs()
        assert run.status == "interrupted"  # its process is gone: not "running" forever
        view = load_run(index, run.id)
        assert not view.complete and 0 < len(view.results) < shots_video.frame_count
        with pytest.raises(IncompleteRunError, match="interrupted"):
            rematch(index, run.id)
        resumed = match_video(index, shots_video.path, "shots", fx, sampling=Sampling.every(), params=params)
        assert resumed.run_id == run.id and index.get_run(run.id).status == "done"
        assert resumed.frames_from_cache >= 12  # frames analysed before the kill are not analysed again
        fresh = match_video(index, shots_video.path, "shots", fx, sampling=Sampling.every(), params=params)
        assert fresh.run_id != run.id  # a done run is never resumed: a new one
        a, b = load_run(index, run.id).results, load_run(index, fresh.run_id).results
        np.testing.assert_array_equal(a.frame_index, b.frame_index)
        np.testing.assert_array_equal(a.image_ids, b.image_ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
