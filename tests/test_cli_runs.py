"""core.cli.runs: python -m core match / runs / export / rematch."""

from __future__ import annotations

import io
import json

import pytest

from conftest import TEST_THRESHOLD
from core.cli import main


def test_index_match_export_round_trip(cli_env, image_folder, shots_video, tmp_path, capsys):
    (image_folder.folder / "broken.jpg").write_text("nope")
    assert main(["index", str(image_folder.folder), "--collection", "shots", "-q"]) == 0
    out = capsys.readouterr().out
    assert "4 added, 0 already indexed, 1 failed" in out and "broken.jpg: not an image" in out

    assert main(["index", str(image_folder.folder), "-c", "shots", "-q"]) == 0
    assert "0 added, 4 already indexed" in capsys.readouterr().out

    assert main(["collections", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "shots" and listed[0]["images"] == 4 and listed[0]["failures"] == 1

    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(
        [
            "match",
            str(shots_video.path),
            "-c",
            "shots",
            "--threshold",
            str(TEST_THRESHOLD),
            "--top-k",
            "2",
            "--every-frame",
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "-q",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "run 1: 40 frames (every frame)" in out
    assert "alpha.jpg from 0:00.0 to 0:01.2"  # 12 frames at 10 fps: the last one ends at 1.2 s in out
    doc = json.loads(out_json.read_text())
    assert doc["top_k"] == 2 and len(doc["frames"]) == 40
    assert out_csv.read_text().count("\n") == 1 + 40 * 2

    assert main(["runs"]) == 0
    assert "shots.mp4" in capsys.readouterr().out
    assert main(["export", "1", "--json", str(tmp_path / "again.json"), "--threshold", "0.999"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["threshold"] == 0.999
    assert main(["rematch", "1", "--top-k", "1"]) == 0
    assert "re-matched from run 1 without the model" in capsys.readouterr().out


def test_sampling_options(cli_env, image_folder, shots_video, capsys):
    main(["index", str(image_folder.folder), "-c", "s", "-q"])
    capsys.readouterr()
    assert main(["match", str(shots_video.path), "-c", "s", "--stride", "10", "-q"]) == 0
    assert "4 frames (every 10th frame)" in capsys.readouterr().out
    assert main(["match", str(shots_video.path), "-c", "s", "--fps", "1", "-q"]) == 0
    assert "4 frames (1 frames per second)" in capsys.readouterr().out
    assert main(["match", str(shots_video.path), "-c", "s", "-q"]) == 0
    assert "change-driven" in capsys.readouterr().out


# -- issue 8: one rule in one place -----------------------------------------------------------------


def test_export_figures_describe_the_exports_own_threshold(
    cli_env, image_folder, shots_video, tmp_path, capsys
):
    """Every figure of an export at another threshold describes that threshold (stats included)."""
    main(["index", str(image_folder.folder), "-c", "shots", "-q"])
    main(["match", str(shots_video.path), "-c", "shots", "--every-frame", "-t", "0.5", "-q"])
    capsys.readouterr()
    for threshold, gap in (("0.97", "0"), ("0.5", "0.5")):
        out = tmp_path / f"e{threshold}.json"
        assert main(["export", "1", "--json", str(out), "--threshold", threshold, "--gap", gap]) == 0
        doc = json.loads(out.read_text())
        assert doc["threshold"] == float(threshold) and doc["gap_tolerance_s"] == float(gap)
        assert doc["stats"]["matched"] == sum(f["matched"] for f in doc["frames"])
        assert doc["stats"]["segments"] == len(doc["segments"])
        assert doc["stats"]["recorded"] == len(doc["frames"])


def test_match_reports_a_truncated_video(cli_env, image_folder, shots_video, tmp_path, capsys):
    """An MP4 cut in half used to give exit 0, part of the frames and no warning."""
    main(["index", str(image_folder.folder), "-c", "shots", "-q"])
    cut = tmp_path / "cut.mp4"
    data = shots_video.path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    capsys.readouterr()
    assert (
        main(["match", str(cut), "-c", "shots", "--every-frame", "-q", "--json", str(tmp_path / "r.json")])
        == 0
    )
    out = capsys.readouterr().out
    assert "warning:" in out and "ended early" in out and "of the 40" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    decode = doc["stats"]["decode"]
    assert decode["ended_early"] and decode["frames"] == len(doc["frames"]) < 40
    assert doc["video"]["frame_count"] == decode["frames"]  # the record says what the file holds


def test_match_a_folder_of_videos_is_a_batch_with_a_summary(
    cli_env, image_folder, shots_video, tmp_path, capsys
):
    from conftest import shot_frames, write_video

    folder = tmp_path / "many"
    write_video(folder / "one.mp4", shot_frames(image_folder.arrays, [(1, 8)]), fps=10)
    (folder / "broken.mp4").write_bytes(b"not a video")
    assert main(["index", str(image_folder.folder), "-c", "shots", "-q"]) == 0
    capsys.readouterr()
    exports = tmp_path / "exports"
    exports.mkdir()
    args = ["match", str(shots_video.path), str(folder), "-c", "shots", "-t", str(TEST_THRESHOLD), "-q"]
    assert main([*args, "--json", str(exports)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["video", "status", "run"]
    assert lines[1].startswith("shots.mp4") and "matched" in lines[1]
    assert "broken.mp4" in lines[2] and "failed" in lines[2]
    assert "3 videos: 2 matched, 0 done before, 1 failed" in out
    assert sorted(p.name for p in exports.iterdir()) == ["one.run2.json", "shots.run1.json"]
    import core.model.loading as loading

    with pytest.MonkeyPatch.context() as patch:  # again: nothing to do, and no weights to read for it
        patch.setattr(loading, "apply_precision", lambda *a, **k: pytest.fail("weights loaded"))
        assert main(args) == 0
    assert "0 matched, 2 done before, 1 failed" in capsys.readouterr().out
    assert main([*args, "--csv", str(tmp_path / "x.csv")]) == 2
    assert "name folders" in capsys.readouterr().err


def test_match_on_ray_without_ray_says_how_to_install_it(
    cli_env, image_folder, shots_video, capsys, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["index", str(image_folder.folder), "-c", "shots", "-q"]) == 0
    assert main(["match", str(shots_video.path), "-c", "shots", "--ray", "-q"]) == 2
    assert "webssl-lens[cluster]" in capsys.readouterr().err


def test_a_batch_exports_every_format_per_run(cli_env, image_folder, shots_video, tmp_path, capsys):
    assert main(["index", str(image_folder.folder), "-c", "shots", "-q"]) == 0
    folder = tmp_path / "out"
    args = ["match", str(shots_video.path), str(shots_video.path), "-c", "shots", "-q"]
    assert main([*args, "--max-frames", "8", "--vtt", str(folder), "--edl", str(folder)]) == 0
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["shots.run1.edl", "shots.run1.vtt"], written


def test_runs_are_deleted_from_the_command_line(cli_env, monkeypatch, capsys):
    from conftest import synthetic_run
    from db import Index

    with Index(cli_env) as index:
        first = synthetic_run(index, [0, 0, 1], [0.9, 0.9, 0.8]).run.id
        second = index.create_run(video_id=1, collection_id=1, model_id="m", params={})
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal to ask on
    assert main(["runs", "--delete", str(first)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["runs", "--delete", str(first), "99", "--yes"]) == 2  # all or nothing
    assert "No run with id 99" in capsys.readouterr().err
    assert main(["runs", "--delete", str(first), "--yes"]) == 0
    assert f"deleted run {first} (talk.mp4 against posters)" in capsys.readouterr().out
    assert main(["runs"]) == 0
    listed = capsys.readouterr().out
    assert f"{second:>5}  " in listed and f"{first:>5}  " not in listed
    assert main(["runs", "--delete", str(second), "--yes"]) == 2  # its writer (this process) is alive
    assert f"Run {second} is still being written" in capsys.readouterr().err


def test_runs_are_listed_as_json_and_by_collection(cli_env, capsys):
    from conftest import synthetic_run
    from db import Index

    with Index(cli_env) as index:
        run_id = synthetic_run(index, [0, 0, 1], [0.9, 0.9, 0.8]).run.id
        index.create_collection("other", "m", "{}", 4)
    assert main(["runs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == run_id and listed["collection"] == "posters" and listed["status"] == "done"
    assert listed["video"] == "/videos/talk.mp4" and listed["threshold"] == 0.5
    assert main(["runs", "--collection", "other"]) == 0
    assert "no match runs of other" in capsys.readouterr().out
    assert main(["runs", "--collection", "posters", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run_id]
    assert main(["runs", "--collection", "nope"]) == 2
    assert "No collection named 'nope'" in capsys.readouterr().err
    with Index(cli_env) as index:
        stopped = index.create_run(video_id=1, collection_id=1, model_id="m", params={"threshold": 0.5})
        index.finish_run(stopped, status="cancelled", stats={"decoded": 120})
    assert main(["runs"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{stopped:>5}")][0]
    assert "cancelled" in line and "unfinished: 120 frames decoded; match the video again" in line


def test_runs_say_when_their_collection_changed_since(cli_env, capsys):
    from conftest import new_image, synthetic_run
    from db import Index

    with Index(cli_env) as index:
        run_id = synthetic_run(index, [0, 0, 1], [0.9, 0.9, 0.8]).run.id
    assert main(["runs"]) == 0
    assert "changed since" not in capsys.readouterr().out
    with Index(cli_env) as index:
        index.add_images(index.get_collection("posters").id, [new_image(50)])
    assert main(["runs"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{run_id:>5}")][0]
    assert "the collection changed since: runs --refresh brings it up to date (no model)" in line
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["collection_changed"] is True


def test_runs_refresh_brings_out_of_date_runs_up_to_date(cli_env, image_folder, shots_video, capsys):
    assert main(["index", str(image_folder.paths[0]), "-c", "shots", "-q"]) == 0
    assert main(["match", str(shots_video.path), "-c", "shots", "-q"]) == 0
    assert main(["runs", "--refresh", "-q"]) == 0
    assert "no run is out of date" in capsys.readouterr().out
    assert main(["index", str(image_folder.paths[1]), "-c", "shots", "-q"]) == 0
    capsys.readouterr()
    assert main(["runs", "--refresh", "--collection", "shots", "-q"]) == 0
    out = capsys.readouterr().out
    assert (
        "    1  searched again    shots.mp4" in out and "1 of 1 out-of-date run(s) brought up to date" in out
    )
    assert main(["runs"]) == 0
    assert "changed since" not in capsys.readouterr().out
    # changed again, and the video matched again with the same options: the new results take the
    # old run's place (a region run, or one whose frames are gone, is brought up to date this way)
    assert main(["index", str(image_folder.paths[2]), "-c", "shots", "-q"]) == 0
    capsys.readouterr()
    assert main(["match", str(shots_video.path), "-c", "shots", "-q"]) == 0
    assert capsys.readouterr().out.startswith("run 1:")
    assert main(["runs"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x[:5].strip().isdigit()]
    assert len(lines) == 1 and lines[0].startswith("    1 ") and "changed since" not in lines[0]
    assert main(["runs", "--refresh", "-q"]) == 0
    assert "no run is out of date" in capsys.readouterr().out
    assert main(["runs", "--refresh", "--collection", "nope"]) == 2
    assert "No collection named 'nope'" in capsys.readouterr().err


def test_runs_refresh_videos_matches_again_the_runs_that_need_their_video(
    cli_env, image_folder, shots_video, capsys
):
    """A region run (and one whose frames are gone) needs its video to be brought up to date:
    `runs --refresh` says so; `runs --refresh --videos` matches it again with its own options,
    and the run keeps its id."""
    from db import Index

    assert main(["index", str(image_folder.paths[0]), "-c", "shots", "-q"]) == 0
    assert main(["match", str(shots_video.path), "-c", "shots", "--regions", "--threshold", "0.9", "-q"]) == 0
    assert main(["index", str(image_folder.paths[1]), "-c", "shots", "-q"]) == 0
    capsys.readouterr()
    assert main(["runs"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("    1 ")][0]
    assert "runs --refresh --videos matches it again from its video" in line and "(no model)" not in line
    assert main(["runs", "--refresh", "-q"]) == 0
    out = capsys.readouterr().out
    assert "needs the video" in out and "runs --refresh --videos" in out
    assert "0 of 1 out-of-date run(s) brought up to date" in out
    assert main(["runs", "--videos"]) == 2
    assert "--videos goes with --refresh" in capsys.readouterr().err
    assert main(["runs", "--refresh", "--videos", "-q"]) == 0
    out = capsys.readouterr().out
    assert "    1  matched again" in out and "1 of 1 out-of-date run(s) brought up to date" in out
    with Index(cli_env) as index:
        (run,) = index.list_runs()
        assert run.id == 1 and not run.collection_changed and run.revision == 1
        assert run.params["threshold"] == 0.9 and run.params["regions"]  # its own options
        assert len(index.load_frame_regions(1)) > 0
    assert main(["runs", "--refresh", "--videos", "-q"]) == 0
    assert "no run is out of date" in capsys.readouterr().out
