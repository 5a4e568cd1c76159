"""db.runs: runs, frame results and segments."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import DIM, MODEL, _segment, add_video, count_rows, new_image
from db import NotFoundError, RunInProgressError


def test_run_round_trip(index, collection, video):
    params = {"top_k": 3, "threshold": np.float32(0.5), "stride": np.int64(2)}
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params=params)
    run = index.get_run(run_id)
    assert (run.status, run.finished, run.stats) == ("running", None, {})
    assert run.params == {"top_k": 3, "threshold": 0.5, "stride": 2}
    assert (run.collection_name, run.video_path, run.model_id) == ("posters", "/videos/clip.mp4", MODEL)
    index.finish_run(run_id, stats={"frames": 10, "seconds": 1.5})
    run = index.get_run(run_id)
    assert run.status == "done" and run.finished is not None
    assert run.stats == {"frames": 10, "seconds": 1.5}
    index.finish_run(run_id, status="failed")
    assert index.get_run(run_id).stats == {"frames": 10, "seconds": 1.5}
    with pytest.raises(ValueError, match="status"):
        index.finish_run(run_id, status="paused")
    with pytest.raises(NotFoundError, match="No run with id 999"):
        index.get_run(999)
    with pytest.raises(NotFoundError):
        index.finish_run(999)


def test_run_without_collection(index, video):
    run_id = index.create_run(video_id=video.id, collection_id=None, model_id=MODEL, params={})
    run = index.get_run(run_id)
    assert run.collection_id is None and run.collection_name is None


def test_create_run_unknown_video(index, collection):
    with pytest.raises(NotFoundError, match="No video with id 5"):
        index.create_run(video_id=5, collection_id=collection.id, model_id=MODEL, params={})


def test_frame_results_round_trip(index, collection, video, statements):
    a, b, c = index.add_images(collection.id, [new_image(i) for i in range(3)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    # Frame 2 has fewer than k matches, frame 4 none; frame 3 inherits frame 2's result.
    index.add_frame_results(
        run_id,
        [0, 2, 3],
        [0.0, 0.08, 0.12],
        [0, 2, 2],
        np.array([[a, b, c], [c, -1, -1], [c, -1, -1]]),
        np.array([[0.9, 0.8, 0.7], [0.6, np.nan, np.nan], [0.6, np.nan, np.nan]], dtype=np.float32),
    )
    index.add_frame_results(run_id, [4], [0.16], [4], np.full((1, 3), -1), np.full((1, 3), np.nan))
    statements.clear()
    results = index.load_frame_results(run_id)
    assert len([s for s in statements if "run_chunks" in s]) == 1  # one read of the chunks, no per-frame rows
    assert len(results) == 4 and results.k == 3
    assert results.frame_index.tolist() == [0, 2, 3, 4]
    np.testing.assert_allclose(results.time_s, [0.0, 0.08, 0.12, 0.16])
    assert results.source_frame.tolist() == [0, 2, 2, 4]
    assert results.image_ids.tolist() == [[a, b, c], [c, -1, -1], [c, -1, -1], [-1, -1, -1]]
    assert results.image_ids.dtype == np.int64 and results.scores.dtype == np.float32
    np.testing.assert_allclose(
        results.scores,
        [[0.9, 0.8, 0.7], [0.6, np.nan, np.nan], [0.6, np.nan, np.nan], [np.nan] * 3],
        rtol=1e-6,
    )


def test_frame_results_replaced_and_compacted(index, collection, video):
    a, b, c = index.add_images(collection.id, [new_image(i) for i in range(3)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_results(run_id, [0, 1], [0, 0.04], [0, 1], np.array([[a, b], [b, c]]), np.ones((2, 2)))
    index.add_frame_results(run_id, [1], [0.04], [1], np.array([[c, -1]]), np.array([[0.5, np.nan]]))
    assert index.load_frame_results(run_id).image_ids.tolist() == [[a, b], [c, -1]]
    # Removing an image drops its matches; the ones behind it move up.
    index.remove_images(collection.id, [a])
    assert index.load_frame_results(run_id).image_ids.tolist() == [[b], [c]]


def test_frame_results_empty_run(index, collection, video):
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    results = index.load_frame_results(run_id)
    assert len(results) == 0 and results.image_ids.shape == (0, 0)
    with pytest.raises(ValueError, match="Expected N frame indices"):
        index.add_frame_results(run_id, [0, 1], [0, 1], [0, 1], np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(NotFoundError):
        index.load_frame_results(999)


def test_frame_regions_round_trip(index, collection, video, statements):
    a, b = index.add_images(collection.id, [new_image(1), new_image(2)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    assert len(index.load_frame_regions(run_id)) == 0  # a run without regions
    boxes = np.array([[10, 20, 110, 80], [0, 0, 1, 1], [12, 22, 112, 82]], np.float32)
    # frame 1 found nothing (-1): not stored
    index.add_frame_regions(run_id, [0, 1, 2], [a, -1, b], [0.9, np.nan, 0.7], boxes)
    index.add_frame_regions(run_id, [2], [a], [0.8], boxes[2:])  # replaces frame 2
    statements.clear()
    regions = index.load_frame_regions(run_id)
    # one query of a few chunks, not a row per frame (a 2-hour run: 216,000 rows took 0.45 s)
    assert [s for s in statements if "run_region" in s] == [s for s in statements if "run_region_chunks" in s]
    assert len([s for s in statements if "run_region_chunks" in s]) == 1
    assert regions.frame_index.tolist() == [0, 2] and regions.image_ids.tolist() == [a, a]
    np.testing.assert_allclose(regions.scores, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(regions.boxes, boxes[[0, 2]])
    assert regions.boxes.dtype == np.float32 and regions.image_ids.dtype == np.int64
    with pytest.raises(ValueError, match=r"\(N, 4\) boxes"):
        index.add_frame_regions(run_id, [0], [a], [0.5], np.zeros((1, 3)))
    with pytest.raises(NotFoundError):
        index.add_frame_regions(999, [0], [a], [0.5], boxes[:1])
    index.finish_run(run_id)
    index.delete_run(run_id)
    assert count_rows(index, "run_regions") == 0 and count_rows(index, "run_region_chunks") == 0


def test_regions_of_a_removed_image_leave_the_runs(index, collection, video):
    a, b = index.add_images(collection.id, [new_image(1), new_image(2)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    boxes = np.zeros((3, 4), np.float32)
    index.add_frame_regions(run_id, [0, 1, 2], [a, b, a], [0.9, 0.8, 0.7], boxes)
    index.remove_images(collection.id, [a])
    regions = index.load_frame_regions(run_id)
    assert regions.frame_index.tolist() == [1] and regions.image_ids.tolist() == [b]
    index.remove_images(collection.id, [b])
    assert len(index.load_frame_regions(run_id)) == 0 and count_rows(index, "run_regions") == 0


def test_a_rewritten_region_of_a_removed_image_does_not_bring_back_the_older_one(index, collection, video):
    """A resumed run wrote frame 0's region twice (image a, then b); removing b leaves frame 0
    without a region, as its row is gone, not with the older a."""
    a, b = index.add_images(collection.id, [new_image(1), new_image(2)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_regions(run_id, [0, 1], [a, a], [0.9, 0.8], np.zeros((2, 4), np.float32))
    index.add_frame_regions(run_id, [0], [b], [0.7], np.zeros((1, 4), np.float32))
    index.remove_images(collection.id, [b])
    regions = index.load_frame_regions(run_id)
    assert regions.frame_index.tolist() == [1] and regions.image_ids.tolist() == [a]
    assert count_rows(index, "run_regions") == 1


def test_segments(index, collection, video):
    a, b = index.add_images(collection.id, [new_image(1), new_image(2)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.replace_segments(run_id, [_segment(b, 50, 80), _segment(a, 0, 24)])
    segments = index.list_segments(run_id)
    assert [(s.image_id, s.start_frame, s.end_frame, s.frames) for s in segments] == [
        (a, 0, 24, 25),
        (b, 50, 80, 31),
    ]
    assert segments[1].start_s == pytest.approx(2.0) and segments[1].peak_score == pytest.approx(0.9)
    index.replace_segments(run_id, [_segment(a, 100, 110)])
    assert [s.start_frame for s in index.list_segments(run_id)] == [100]
    index.replace_segments(run_id, [])
    assert index.list_segments(run_id) == []


def test_list_runs_newest_first_and_filters(index, collection, video):
    other_video = add_video(index, "/b.mp4", "b" * 64)
    other = index.create_collection("other", MODEL, "{}", DIM)
    first = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    second = index.create_run(video_id=other_video.id, collection_id=collection.id, model_id=MODEL, params={})
    third = index.create_run(video_id=video.id, collection_id=other.id, model_id=MODEL, params={})
    assert [r.id for r in index.list_runs()] == [third, second, first]
    assert [r.id for r in index.list_runs(video_id=video.id)] == [third, first]
    assert [r.id for r in index.list_runs(collection_id=collection.id)] == [second, first]
    assert [r.id for r in index.list_runs(video_id=video.id, collection_id=collection.id)] == [first]
    assert [r.id for r in index.list_runs(limit=1)] == [third]


def test_delete_run(index, collection, video):
    (a,) = index.add_images(collection.id, [new_image(1)])
    run_id = index.create_run(video_id=video.id, collection_id=collection.id, model_id=MODEL, params={})
    index.add_frame_results(run_id, [0], [0.0], [0], np.array([[a]]), np.array([[0.9]]))
    index.replace_segments(run_id, [_segment(a, 0, 0)])
    # a run still being written is not deleted under its writer (here: this live process)
    with pytest.raises(
        RunInProgressError, match=f"Run {run_id} is still being written by process {os.getpid()}"
    ):
        index.delete_run(run_id)
    index.finish_run(run_id, status="cancelled")
    index.delete_run(run_id)
    assert index.list_runs() == []
    for table in ("run_frames", "frame_matches", "segments"):
        assert count_rows(index, table) == 0
    assert index.count_images(collection.id) == 1
    with pytest.raises(NotFoundError):
        index.delete_run(run_id)


def test_a_run_knows_when_its_collection_changed_since_it_searched_it(index, collection, video):
    """Adding an image or removing one makes every run of the collection out of date; moving a file or renaming the collection does not. A resumed run
    searches the collection as it is then."""
    from conftest import new_image

    index.add_images(collection.id, [new_image(1)])
    run = index.create_run(video_id=video.id, collection_id=collection.id, model_id="m", params={})
    assert not index.get_run(run).collection_changed
    image_id = index.list_images(collection.id)[0].id
    index.move_images(collection.id, [(image_id, "/elsewhere/1.jpg")])
    index.rename_collection(collection.name, "renamed")
    assert not index.get_run(run).collection_changed
    index.add_images(collection.id, [new_image(2)])
    assert index.get_run(run).collection_changed
    index.restart_run(run)  # resumed: it searches every frame again, against the images of now
    assert not index.get_run(run).collection_changed
    index.remove_images(collection.id, [image_id])
    assert index.get_run(run).collection_changed
    other = index.create_run(video_id=video.id, collection_id=collection.id, model_id="m", params={})
    assert not index.get_run(other).collection_changed


def test_a_done_run_is_refreshed_in_place(index):
    """``refresh_run`` opens a done run to be searched again: its results and segments go, its
    regions stay, it is running (by this process) and searches its collection as it is now."""
    from conftest import new_image, synthetic_run
    from db import NotFoundError

    view = synthetic_run(index, [0, 0, 1], [0.9, 0.9, 0.8])
    run_id = view.run.id
    index.add_frame_regions(
        run_id, np.array([1]), np.array([view.results.image_ids[0, 0]]), np.array([0.7]), np.zeros((1, 4))
    )
    index.add_images(view.run.collection_id, [new_image(7)])
    assert index.get_run(run_id).collection_changed
    index.refresh_run(run_id)
    run = index.get_run(run_id)
    assert run.status == "running" and not run.collection_changed and run.finished is None
    assert len(index.load_frame_results(run_id)) == 0 and index.list_segments(run_id) == []
    assert len(index.load_frame_regions(run_id)) == 1
    with pytest.raises(NotFoundError, match="No done run"):
        index.refresh_run(run_id)  # running now: not done


def test_a_runs_revision_moves_whenever_its_results_change_in_place(index, collection, video):
    """A viewer caches a finished run by its id and revision: the revision moves when the run is
    searched again or resumed, and when an image of its collection is removed (its results lose
    the image), and not for what leaves its results as they are."""
    from conftest import new_image

    ids = index.add_images(collection.id, [new_image(1), new_image(2)])
    run = index.create_run(video_id=video.id, collection_id=collection.id, model_id="m", params={})
    other_coll = index.create_collection("other", MODEL, "{}", DIM)
    (other_image,) = index.add_images(other_coll.id, [new_image(3)])
    other = index.create_run(video_id=video.id, collection_id=other_coll.id, model_id="m", params={})
    index.finish_run(run)
    assert index.get_run(run).revision == 0
    index.add_images(collection.id, [new_image(4)])  # its stored results stay as they are
    index.mark_current(run, {})
    index.move_images(collection.id, [(ids[0], "/elsewhere/1.jpg")])
    assert index.get_run(run).revision == 0
    index.remove_images(collection.id, [ids[1]])
    assert index.get_run(run).revision == 1 and index.get_run(other).revision == 0
    index.refresh_run(run)
    assert index.get_run(run).revision == 2
    index.finish_run(run, status="cancelled")
    index.restart_run(run)
    assert index.get_run(run).revision == 3
    index.remove_images(other_coll.id, [other_image])
    assert index.get_run(run).revision == 3 and index.get_run(other).revision == 1


def test_a_new_run_takes_an_older_runs_place(index):
    """A run matched again from the video (region mode, or frames no longer cached) replaces the
    run it brings up to date: the old id holds the new results, regions and segments."""
    from conftest import new_image, synthetic_run
    from db.runs import _RESULT_TABLES

    view = synthetic_run(index, [0, 0, 1], [0.9, 0.9, 0.8])
    old = view.run
    index.add_frame_regions(
        old.id, np.array([1]), np.array([view.results.image_ids[0, 0]]), np.array([0.7]), np.zeros((1, 4))
    )
    index.add_images(old.collection_id, [new_image(7)])
    new = index.create_run(
        video_id=old.video_id, collection_id=old.collection_id, model_id=old.model_id, params={"n": 2}
    )
    ids = np.array([[view.results.image_ids[2, 0]]] * 2)
    index.add_frame_results(new, [0, 1], [0.0, 0.04], [0, 1], ids, np.array([[0.6], [0.5]]))
    index.add_frame_regions(new, np.array([0, 1]), ids[:, 0], np.array([0.8, 0.7]), np.ones((2, 4)))
    index.replace_segments(new, [_segment(int(ids[0, 0]), 0, 1)])
    with pytest.raises(NotFoundError, match="no done run"):
        index.take_over_run(old.id, new)  # still running
    index.finish_run(new, stats={"frames": 2})
    index.take_over_run(old.id, new)
    run = index.get_run(old.id)
    assert run.params == {"n": 2} and run.stats == {"frames": 2} and run.revision == 1
    assert run.created == old.created and run.status == "done" and not run.collection_changed
    assert index.load_frame_results(old.id).frame_index.tolist() == [0, 1]
    assert index.load_frame_regions(old.id).scores.tolist() == pytest.approx([0.8, 0.7])
    assert [s.image_id for s in index.list_segments(old.id)] == [int(ids[0, 0])]
    assert [r.id for r in index.list_runs()] == [old.id]
    for table in _RESULT_TABLES:
        assert index.db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (new,)).fetchone()[0] == 0
    with pytest.raises(ValueError, match="its own place"):
        index.take_over_run(old.id, old.id)


def test_every_table_of_a_runs_results_moves_with_it(index):
    """The list of tables a run's results live in is the schema's: a table added later that
    refers to runs must be in it, or a run taking another's place would leave rows behind."""
    from db.runs import _RESULT_TABLES

    tables = {
        name
        for name, sql in index.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
        if "REFERENCES runs" in (sql or "")
    }
    assert tables == set(_RESULT_TABLES)
