"""core.cli.library: python -m core index-videos / find."""

from __future__ import annotations

import json

from conftest import TEST_THRESHOLD
from core.cli import main


def test_index_videos_then_find(cli_env, image_folder, shots_video, tmp_path, capsys):
    assert main(["index-videos", str(shots_video.path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 indexed, 0 already indexed, 0 failed" in out and "shots.mp4: 40 frames" in out
    out_json = tmp_path / "found.json"
    paths = [str(image_folder.paths[0]), str(image_folder.paths[3])]
    assert main(["find", *paths, "--threshold", str(TEST_THRESHOLD), "--json", str(out_json), "-q"]) == 0
    out = capsys.readouterr().out
    assert "alpha.jpg: 1 video(s)" in out and "shots.mp4: 0:00.0–0:01.1" in out
    assert "delta.png: 0 video(s)" in out
    doc = json.loads(out_json.read_text())
    assert doc[0]["query"] == "alpha.jpg" and doc[0]["videos"][0]["segments"][0]["start_frame"] == 0
    assert doc[1]["videos"] == []


def test_find_before_any_video_is_indexed_says_what_to_do(cli_env, image_folder, capsys):
    assert main(["index", str(image_folder.folder), "-c", "s", "-q"]) == 0  # creates the database
    capsys.readouterr()
    assert main(["find", str(image_folder.paths[0]), "-q"]) == 0
    assert "index-videos FOLDER" in capsys.readouterr().out


def test_find_refuses_a_query_that_is_not_an_image(cli_env, shots_video, tmp_path, capsys):
    main(["index-videos", str(shots_video.path), "-q"])
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    assert main(["find", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
