"""core.matching.runs: a stored run re-labelled from its scores; re-matching from the cache."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PARAMS, TEST_THRESHOLD
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import CacheMissError, load_run, rematch
from core.matching.sampling import Sampling
from db import ModelMismatchError


def test_relabel_from_stored_scores(indexed, extractor, shots_video):
    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS)
    view = load_run(indexed, s.run_id)
    strict = view.relabel(threshold=0.9999)
    loose = view.relabel(threshold=-1.0)
    assert strict.matched().sum() < view.matched().sum() <= loose.matched().sum() == 40
    assert len(loose.segments) >= 1
    assert view.relabel(min_duration_s=0.85).segments == tuple(
        s for s in view.segments if s.duration_s >= 0.85
    )


def test_views_of_the_same_results_share_their_best_matches(indexed, extractor, shots_video):
    """Re-labelling or adding paths (every rerun of the Match page) does not recompute each
    frame's best match and region (80 ms for a 2-hour region run); other results or regions do."""
    from dataclasses import replace

    from db import FrameRegions

    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS)
    view = load_run(indexed, s.run_id)
    again = view.relabel(threshold=0.5).with_paths({10**9: "/elsewhere/x.png"})
    assert again.best_image is view.best_image and again.region_wins is view.region_wins
    res = view.results
    region = FrameRegions(
        res.frame_index[:1].copy(), np.array([7]), np.array([2.0], np.float32), np.zeros((1, 4), np.float32)
    )
    other = replace(view, regions=region)
    assert other.best_image is not view.best_image and other.best_image[0] == 7 and other.region_wins[0]
    assert replace(other, regions=view.regions).best_image.tolist() == view.best_image.tolist()


def test_rematch_uses_only_the_cache(indexed, extractor, shots_video, image_folder):
    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.auto(), params=PARAMS)
    index_images(indexed, "two", image_folder.paths[:2], extractor)
    new = rematch(indexed, s.run_id, collection="two", params=MatchParams(threshold=TEST_THRESHOLD, top_k=2))
    assert load_run(indexed, new.run.id).segments == new.segments
    old = load_run(indexed, s.run_id)
    assert new.run.collection_name == "two" and new.results.k == 2
    np.testing.assert_array_equal(new.results.source_frame, old.results.source_frame)
    names = {new.image_name(seg.image_id) for seg in new.segments}
    assert names == {"alpha.jpg", "beta.png"}
    indexed.clear_frame_cache()
    with pytest.raises(CacheMissError, match="match the video again"):
        rematch(indexed, s.run_id)


def test_rematch_brings_a_run_up_to_date_with_its_changed_collection(
    index, extractor, shots_video, image_folder
):
    """A run made before an image was indexed never looked for it; ``rematch`` of the run (what
    ``runs`` suggests) searches the collection as it is now, from the cached frames only."""
    index_images(index, "shots", image_folder.paths[:2], extractor)
    s = match_video(index, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS)
    assert {s.view.image_name(seg.image_id) for seg in s.view.segments} == {"alpha.jpg", "beta.png"}
    index_images(index, "shots", image_folder.paths[2:3], extractor)  # gamma, shown from frame 28
    assert index.get_run(s.run_id).collection_changed
    new = rematch(index, s.run_id)
    assert {new.image_name(seg.image_id) for seg in new.segments} == {"alpha.jpg", "beta.png", "gamma.jpg"}
    assert not new.run.collection_changed and new.run.collection_name == "shots"


def test_rematch_refuses_a_collection_with_other_preprocessing(indexed, extractor, shots_video):
    """One compatibility rule: re-matching compares preprocessing too, not only the model id."""
    from dataclasses import replace

    from db import NewImage

    s = match_video(indexed, shots_video.path, "shots", extractor, sampling=Sampling.every(), params=PARAMS)
    other = replace(extractor.preprocessing, crop_hw=(196, 196)).to_json()
    coll = indexed.create_collection("cropped", extractor.model_id, other, extractor.hidden_size)
    vec = np.ones(extractor.hidden_size, np.float32)
    indexed.add_images(coll.id, [NewImage("/x.jpg", "0" * 64, 1, 1, b"", vec)])
    with pytest.raises(ModelMismatchError, match="preprocessing"):
        rematch(indexed, s.run_id, collection="cropped")


def test_a_view_for_browsing_loads_only_the_paths_it_shows(tmp_path):
    """A 2-hour run's best matches named 60,094 images of a 1M collection: loading all their
    paths read 184 MB of the database into the dashboard's memory. Segments' images come first;
    any other is fetched when shown."""
    from bench.scale_data import build
    from db import Index

    data = build(tmp_path / "s", images=300, frames=450, shown=7)
    index = Index(data.db_path)
    full = load_run(index, data.run_id)
    light = load_run(index, data.run_id, all_paths=False)
    in_segments = {s.image_id for s in light.segments}
    best = {int(i) for i in light.best_image if i >= 0}
    assert best - in_segments  # the case: best matches outside any segment
    assert set(light.image_paths) == in_segments
    assert light.segments == full.segments
    named = light.with_paths(index.image_paths(light.missing_paths(light.best_image)))
    assert {i: named.image_name(i) for i in best} == {i: full.image_name(i) for i in best}


def test_the_runs_of_a_changed_collection_are_brought_up_to_date_without_their_videos(
    index, extractor, shots_video, image_folder
):
    """``runs --refresh``: every done run whose collection changed, searched again from its cached
    frames, with its video on a drive that is not mounted; a region run is listed, to match again."""
    from core.matching.refresh import refresh_runs
    from core.matching.regions import RegionSettings

    index_images(index, "shots", image_folder.paths[:2], extractor)
    plain = match_video(index, shots_video.path, "shots", extractor, params=PARAMS).run_id
    regions = match_video(
        index, shots_video.path, "shots", extractor, params=PARAMS, regions=RegionSettings(short_side=224)
    ).run_id
    assert refresh_runs(index) == []  # nothing changed
    index_images(index, "shots", image_folder.paths[2:3], extractor)
    shots_video.path.rename(shots_video.path.with_suffix(".offline"))
    assert [r.id for r in index.list_runs(changed_only=True)] == [regions, plain]
    done = refresh_runs(index, "shots")
    assert [(d.run_id, d.status) for d in done] == [(regions, "needs the video"), (plain, "searched again")]
    assert "--regions" in done[0].reason
    assert not index.get_run(plain).collection_changed and index.get_run(regions).collection_changed
    view = load_run(index, plain)
    assert "gamma.jpg" in {view.image_name(s.image_id) for s in view.segments}
    assert refresh_runs(index, "shots") == [done[0]]  # the region run is still out of date


def test_a_run_whose_results_the_change_does_not_touch_is_only_marked_current(
    indexed, extractor, shots_video
):
    """Most new pictures are not in most videos: when searching again gives every frame the same
    top-k, the run's results are not written again (216,000 rows for a 2-hour run), it is only
    marked as having searched the collection as it is now."""
    from core.matching.runs import search_again
    from db import NewImage

    run_id = match_video(indexed, shots_video.path, "shots", extractor, params=PARAMS).run_id
    before = load_run(indexed, run_id)
    coll = indexed.get_collection("shots")
    unlike = -indexed.load_embeddings(coll.id).vectors.mean(axis=0)  # in no frame's top 3
    indexed.add_images(coll.id, [NewImage("/elsewhere.png", "e" * 64, 8, 8, b"", unlike)])
    assert indexed.get_run(run_id).collection_changed
    indexed.add_frame_results = lambda *a, **k: pytest.fail("unchanged results were written again")
    try:
        after = search_again(indexed, run_id)
    finally:
        del indexed.add_frame_results
    assert not indexed.get_run(run_id).collection_changed and after.run.stats["searched_again"] == 1
    np.testing.assert_array_equal(after.results.image_ids, before.results.image_ids)
    assert after.segments == before.segments


def test_an_out_of_date_run_matched_again_since_is_not_listed_as_out_of_date(
    index, extractor, shots_video, image_folder
):
    """A region run out of date needs its video; matched again with the same options, the new
    results take the run's place (its id stays, nothing piles up). An older twin made while the
    run was current is superseded by it and no longer asks to be brought up to date."""
    from core.matching.refresh import refresh_runs
    from core.matching.regions import RegionSettings
    from core.matching.runs import out_of_date_runs

    regions = RegionSettings(short_side=224)
    index_images(index, "shots", image_folder.paths[:2], extractor)
    twin = match_video(index, shots_video.path, "shots", extractor, params=PARAMS, regions=regions).run_id
    old = match_video(index, shots_video.path, "shots", extractor, params=PARAMS, regions=regions).run_id
    assert old != twin  # matched again explicitly while current: a run of its own
    index_images(index, "shots", image_folder.paths[2:3], extractor)
    assert [r.id for r in out_of_date_runs(index)] == [old, twin]
    new = match_video(index, shots_video.path, "shots", extractor, params=PARAMS, regions=regions)
    assert new.run_id == old and index.get_run(old).revision == 1 and not new.view.run.collection_changed
    assert len(index.load_frame_regions(old)) == len(new.view.regions) > 0
    assert sorted(r.id for r in index.list_runs()) == sorted([twin, old])
    assert out_of_date_runs(index) == [] and refresh_runs(index) == []
    assert index.get_run(twin).collection_changed  # still there, and still out of date itself


def test_runs_that_need_their_video_are_matched_again_from_it(
    tmp_path, index, extractor, shots_video, image_folder
):
    """refresh_runs with a model loader: a run whose frames are gone is matched again from its video
    (the model of its collection, loaded once, in the run's precision), keeping its id; a run
    whose video cannot be opened says so and stays as it was."""
    from conftest import shot_frames, write_video
    from core.matching.refresh import refresh_runs

    index_images(index, "shots", image_folder.paths[:2], extractor)
    moved = tmp_path / "moved.mp4"
    write_video(moved, shot_frames(image_folder.arrays, [(1, 6)]), fps=10)
    sampling = Sampling.every_nth(2)
    kept = match_video(index, shots_video.path, "shots", extractor, params=PARAMS, sampling=sampling).run_id
    gone = match_video(index, moved, "shots", extractor, params=PARAMS, max_frames=8).run_id
    index_images(index, "shots", image_folder.paths[2:3], extractor)
    index.clear_frame_cache()
    moved.unlink()
    loads = []

    def load(model, precision):
        loads.append((model, precision))
        return extractor

    done = refresh_runs(index, load=load)
    assert {d.run_id: d.status for d in done} == {kept: "matched again", gone: "video unreadable"}
    assert loads == [(extractor.model_id, extractor.setup.precision)]
    assert (
        not index.get_run(kept).collection_changed
        and index.get_run(kept).params["sampling"] == sampling.to_dict()
    )
    assert index.get_run(gone).collection_changed and index.get_run(gone).revision == 0
    assert sorted(r.id for r in index.list_runs()) == sorted([kept, gone])


def test_a_cancelled_match_again_leaves_the_old_run_and_its_resumption_takes_its_place(
    index, extractor, shots_video, image_folder
):
    """Matching a run's video again after its collection changed, stopped half-way: the old run is
    as it was (done, its results whole); the next match resumes the attempt and then takes the
    old run's place."""
    import threading

    from core.matching.regions import RegionSettings
    from core.progress import Cancelled

    regions = RegionSettings(short_side=224)
    options = {"params": PARAMS, "regions": regions, "sampling": Sampling.every()}
    index_images(index, "shots", image_folder.paths[:2], extractor)
    old = match_video(index, shots_video.path, "shots", extractor, **options)
    index_images(index, "shots", image_folder.paths[2:3], extractor)
    cancel = threading.Event()

    def progress(event):
        if event.done >= 8:
            cancel.set()

    with pytest.raises(Cancelled):
        match_video(
            index,
            shots_video.path,
            "shots",
            extractor,
            batch_size=4,
            progress=progress,
            cancel=cancel,
            **options,
        )
    kept = index.get_run(old.run_id)
    assert kept.status == "done" and kept.collection_changed and kept.revision == 0
    assert len(index.load_frame_results(old.run_id)) == len(old.view.results)
    assert [r.status for r in index.list_runs()] == ["cancelled", "done"]
    again = match_video(index, shots_video.path, "shots", extractor, **options)
    assert again.run_id == old.run_id and [r.id for r in index.list_runs()] == [old.run_id]
    assert not index.get_run(old.run_id).collection_changed
