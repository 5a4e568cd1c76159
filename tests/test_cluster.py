"""core.matching.cluster: a batch on a local Ray instance (2 CPUs); workers embed, the driver writes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PARAMS, shot_frames, write_video
from core.matching.batch import match_batch
from core.matching.cluster import RayMissingError, import_ray, match_on_ray


def test_a_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayMissingError, match=r"pip install 'webssl-lens\[cluster\]'"):
        import_ray()


@pytest.mark.ray
def test_a_batch_on_ray_stores_the_same_runs_as_on_one_machine(index, extractor, image_folder, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install 'webssl-lens[cluster]')")
    from core.matching.indexing import index_images
    from core.matching.regions import RegionSettings
    from db import Index

    folder = tmp_path / "batch"
    write_video(folder / "a.mp4", shot_frames(image_folder.arrays, [(0, 8), (1, 8)]), fps=10)
    # long enough for sampling by certainty to decide a frame (the planner must hear the scores)
    plan = [(0, 60), (-1, 30), (1, 80), (2, 50), (-1, 40), (3, 60)]
    write_video(folder / "b.mp4", shot_frames(image_folder.arrays, plan), fps=10)
    (folder / "broken.mp4").write_bytes(b"not a video")
    regions = RegionSettings(short_side=224)
    # a threshold just below the first shot's score: its result is unsure, so sampling by
    # certainty looks again sooner than the change-driven rule would
    from core.matching.pipeline import match_video
    from core.matching.sampling import Sampling

    with Index(tmp_path / "probe.sqlite") as probe:
        index_images(probe, "shots", [image_folder.folder], extractor)
        first = match_video(
            probe,
            folder / "b.mp4",
            "shots",
            extractor,
            sampling=Sampling.every(),
            params=PARAMS,
            max_frames=1,
        )
    params = PARAMS.updated(threshold=float(first.view.results.scores[0, 0]) - 0.01)
    index_images(index, "shots", [image_folder.folder], extractor)
    root = str(Path(__file__).resolve().parents[1])  # workers import this checkout's code
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": root}},
    )
    try:
        report = match_on_ray(index, [folder], "shots", extractor, workers=2, params=params)
        in_regions = match_on_ray(
            index, [folder / "a.mp4"], "shots", extractor, params=params, regions=regions
        )
    finally:
        ray.shutdown()
    assert [item.status for item in report.items] == ["matched", "matched", "failed"]
    assert report.workers == 2
    certain = index.get_run(report.items[1].run_id).stats["decisions"]
    assert {"sure", "unsure"} & set(certain), certain
    # the same videos on one machine, in another database: the same frames and matches
    with Index(tmp_path / "local.sqlite") as local:
        index_images(local, "shots", [image_folder.folder], extractor)
        alone = match_batch(local, [folder], "shots", extractor, params=params)
        for on_ray, here in zip(report.items, alone.items, strict=True):
            if on_ray.run_id is not None:  # the same sampling: the same frames analysed, for the same reasons
                ray_stats, local_stats = index.get_run(on_ray.run_id).stats, local.get_run(here.run_id).stats
                assert ray_stats["decisions"] == local_stats["decisions"]
                assert ray_stats["worker"] == "ray" and "worker" not in local_stats
            if on_ray.run_id is None:
                continue
            a, b = index.load_frame_results(on_ray.run_id), local.load_frame_results(here.run_id)
            np.testing.assert_array_equal(a.frame_index, b.frame_index)
            np.testing.assert_array_equal(a.source_frame, b.source_frame)
            names = {i: r.name for i, r in index.get_images(a.image_ids[:, 0].tolist()).items()}
            local_names = {i: r.name for i, r in local.get_images(b.image_ids[:, 0].tolist()).items()}
            assert [names[i] for i in a.image_ids[:, 0]] == [local_names[i] for i in b.image_ids[:, 0]]
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        # region mode: the same regions as on one machine
        (here,) = match_batch(
            local, [folder / "a.mp4"], "shots", extractor, params=params, regions=regions
        ).items
        a, b = index.load_frame_regions(in_regions.items[0].run_id), local.load_frame_regions(here.run_id)
        assert len(a) == len(b) > 0 and a.frame_index.tolist() == b.frame_index.tolist()
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        assert index.get_run(in_regions.items[0].run_id).params["regions"] == regions.to_dict()
    # run again: nothing to embed, every video done before
    again = match_on_ray(index, [folder], "shots", extractor, params=params)
    assert [item.status for item in again.items] == ["done before", "done before", "failed"]
