"""core.matching.batch: many videos against one collection, one run each, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PARAMS, shot_frames, write_video
from core.matching.batch import match_batch
from core.matching.sampling import Sampling
from core.progress import Cancelled


@pytest.fixture
def videos(tmp_path, image_folder, shots_video):
    folder = tmp_path / "batch"
    write_video(folder / "b.mp4", shot_frames(image_folder.arrays, [(1, 10), (2, 6)]), fps=10)
    write_video(folder / "sub" / "c.mp4", shot_frames(image_folder.arrays, [(2, 8)]), fps=10)
    (folder / "broken.mp4").write_bytes(b"not a video")
    return folder


def test_a_batch_gives_one_run_per_video_and_reports_failures(indexed, extractor, videos, shots_video):
    report = match_batch(indexed, [shots_video.path, videos], "shots", extractor, params=PARAMS)
    assert [item.status for item in report.items] == ["matched", "matched", "failed", "matched"]
    assert report.items[2].path.endswith("broken.mp4") and report.items[2].reason
    runs = {r.id for r in indexed.list_runs()}
    assert {item.run_id for item in report.items if item.run_id} == runs and len(runs) == 3
    shots = report.items[0]
    assert shots.frames == shots_video.frame_count and shots.segments >= 3 and shots.matched > 0
    assert "3 matched, 0 done before, 1 failed" in report.summary()


def test_a_batch_run_again_skips_what_is_done(indexed, extractor, videos):
    first = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    again = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    assert [i.status for i in again.items] == ["done before", "failed", "done before"]
    assert [i.run_id for i in again.items] == [i.run_id for i in first.items]
    import core.media.video as video

    real = video.file_sha256
    try:  # done videos, unchanged since, are known by path, size and time: not read whole again
        video.file_sha256 = lambda *a: pytest.fail("a video known unchanged was hashed again")
        assert [
            i.status for i in match_batch(indexed, [videos], "shots", extractor, params=PARAMS).items
        ] == [
            "done before",
            "failed",
            "done before",
        ]
    finally:
        video.file_sha256 = real
    # what a run done before found comes from its record: a 2-hour run's 216,000 frame results
    # took 0.4-0.7 s to load, for each video of a nightly batch over an archive
    loads = []
    real_load = indexed.load_frame_results
    indexed.load_frame_results = lambda run_id: loads.append(run_id) or real_load(run_id)
    try:
        skipped = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    finally:
        del indexed.load_frame_results
    assert loads == [] and skipped.items == again.items
    assert [(i.frames, i.matched, i.segments) for i in skipped.items] == [
        (i.frames, i.matched, i.segments) for i in first.items
    ]
    other = match_batch(indexed, [videos], "shots", extractor, params=PARAMS, sampling=Sampling.every())
    assert [i.status for i in other.items] == ["matched", "failed", "matched"]  # other options: new runs


def test_a_cancelled_batch_resumes(indexed, extractor, videos):
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        match_batch(indexed, [videos], "shots", extractor, params=PARAMS, cancel=cancel)
    report = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    assert report.count("matched") == 2


def test_a_batch_in_region_mode_stores_regions_and_is_told_apart(indexed, extractor, videos):
    from core.matching.regions import RegionSettings

    fast = RegionSettings(short_side=224)
    first = match_batch(indexed, [videos], "shots", extractor, params=PARAMS, regions=fast)
    assert [i.status for i in first.items] == ["matched", "failed", "matched"]
    for item in first.items:
        if item.run_id is not None:
            assert indexed.get_run(item.run_id).params["regions"] == fast.to_dict()
            assert len(indexed.load_frame_regions(item.run_id)) > 0
    again = match_batch(indexed, [videos], "shots", extractor, params=PARAMS, regions=fast)
    assert [i.status for i in again.items] == ["done before", "failed", "done before"]
    plain = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)  # whole frames only: new runs
    assert [i.status for i in plain.items] == ["matched", "failed", "matched"]
    # a new image's regions are in the frames' pixels: region runs are matched again from the video
    from PIL import Image

    from conftest import pattern_image
    from core.matching.indexing import index_images

    Image.fromarray(pattern_image(97)).save(videos / "poster.png")
    index_images(indexed, "shots", [videos / "poster.png"], extractor)
    runs_before = len(indexed.list_runs())
    changed = match_batch(indexed, [videos], "shots", extractor, params=PARAMS, regions=fast)
    assert [i.status for i in changed.items] == ["matched", "failed", "matched"]
    assert all(i.computed > 0 for i in changed.items if i.run_id is not None)
    # the new analysis takes the old run's place: a nightly region batch keeps one run per video
    assert [i.run_id for i in changed.items] == [i.run_id for i in first.items]
    assert len(indexed.list_runs()) == runs_before
    for item in changed.items:
        if item.run_id is not None:
            run = indexed.get_run(item.run_id)
            assert run.status == "done" and not run.collection_changed and run.revision == 1
            assert "matched again from the video" in item.reason
            assert len(indexed.load_frame_regions(item.run_id)) > 0


def test_a_batch_matches_again_the_videos_whose_collection_changed(indexed, extractor, videos, tmp_path):
    """A run done before is skipped only while its collection has the same images: a poster added
    since (or one removed) would otherwise never be looked for in the videos matched before."""
    from PIL import Image

    from conftest import pattern_image
    from core.matching.indexing import index_images

    first = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    extra = tmp_path / "new-posters"
    extra.mkdir()
    Image.fromarray(pattern_image(99)).save(extra / "new.png")
    index_images(indexed, "shots", [extra], extractor)
    # searched again from the cached frames: no video is decoded, no model loaded (a batch over an
    # archive of hour-long videos would decode every hour again for one new poster)
    import core.matching.analysis as analysis
    from core.model.on_demand import ModelOnDemand

    never = ModelOnDemand(extractor.setup, lambda: pytest.fail("the model was loaded"))
    real = analysis.frame_batches
    analysis.frame_batches = lambda *a, **k: pytest.fail("a video was decoded")
    try:
        again = match_batch(indexed, [videos], "shots", never, params=PARAMS)
    finally:
        analysis.frame_batches = real
    assert [i.status for i in again.items] == ["matched", "failed", "matched"]
    # the runs themselves are brought up to date: a nightly batch over an archive, with images
    # added every day, must not pile up a new run per video per night
    runs = [i.run_id for i in again.items if i.run_id is not None]
    assert runs == [i.run_id for i in first.items if i.run_id is not None] and len(indexed.list_runs()) == 2
    assert all("collection changed since the run" in i.reason for i in again.items if i.run_id is not None)
    for old, new in zip(first.items, again.items, strict=True):
        if new.run_id is not None:
            run = indexed.get_run(new.run_id)
            assert not run.collection_changed and run.status == "done" and run.stats["searched_again"] == 1
            assert new.frames == old.frames and new.computed == 0
            assert len(indexed.load_frame_results(new.run_id)) == new.frames  # replaced, not added to
    steady = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    assert [i.status for i in steady.items] == ["done before", "failed", "done before"]
    assert [i.run_id for i in steady.items if i.run_id] == runs
    coll = indexed.get_collection("shots")
    removed = indexed.list_images(coll.id, limit=1)[0]
    indexed.remove_images(coll.id, [removed.id])  # one image fewer: stale as well
    assert [i.status for i in match_batch(indexed, [videos], "shots", extractor, params=PARAMS).items] == [
        "matched",
        "failed",
        "matched",
    ]
    unchanged = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    assert unchanged.count("done before") == 2
    # frames no longer cached: matched again from the video
    indexed.clear_frame_cache()
    Image.fromarray(pattern_image(98)).save(extra / "newer.png")
    index_images(indexed, "shots", [extra], extractor)  # another new poster: changed again
    decoded = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    assert [i.status for i in decoded.items] == ["matched", "failed", "matched"]
    assert [i.run_id for i in decoded.items if i.run_id] == runs and len(indexed.list_runs()) == 2
    for item in decoded.items:
        if item.run_id is not None:
            assert item.computed > 0 and "matched again from the video" in item.reason
            assert "searched again" not in item.reason
            assert not indexed.get_run(item.run_id).collection_changed


def test_a_batch_done_before_does_not_load_the_model(indexed, extractor, videos, tmp_path):
    """Matching a folder again whose videos are all done needs the model's setup only; a new video
    loads the weights once, and a setup whose precision the loaded model does not confirm (auto's
    int8 falling back) is planned again with the loaded model's keys."""
    from dataclasses import replace

    from core.model.on_demand import ModelOnDemand

    first = match_batch(indexed, [videos], "shots", extractor, params=PARAMS)
    never = ModelOnDemand(extractor.setup, lambda: pytest.fail("the model was loaded with nothing to match"))
    again = match_batch(indexed, [videos], "shots", never, params=PARAMS)
    assert [i.status for i in again.items] == ["done before", "failed", "done before"]
    fallback = ModelOnDemand(replace(extractor.setup, precision="int8"), lambda: extractor)
    planned_again = match_batch(indexed, [videos], "shots", fallback, params=PARAMS)
    assert [i.status for i in planned_again.items] == ["done before", "failed", "done before"]
    assert [i.run_id for i in planned_again.items] == [i.run_id for i in first.items]
    write_video(videos / "new.mp4", shot_frames([np.full((240, 320, 3), 60, np.uint8)], [(0, 6)]), fps=10)
    loads = []
    model = ModelOnDemand(extractor.setup, lambda: loads.append(1) or extractor)
    report = match_batch(indexed, [videos], "shots", model, params=PARAMS)
    assert report.count("matched") == 1 and report.count("done before") == 2 and loads == [1]
