"""core.cli.library: python -m core index-videos / find."""

from __future__ import annotations

import io
import json
import re

import pytest

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
    assert main(["find", "-c", "s", "-q"]) == 0
    assert "index-videos FOLDER" in capsys.readouterr().out


def test_find_refuses_a_query_that_is_not_an_image(cli_env, shots_video, tmp_path, capsys):
    main(["index-videos", str(shots_video.path), "-q"])
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    assert main(["find", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err


def test_find_a_collections_images_without_the_model(cli_env, image_folder, shots_video, tmp_path, capsys):
    """``find --collection C``: the collection's images by their stored embeddings, the ones
    found listed with a count; ``--name`` picks some; the model is never loaded."""
    from core.model.features import FeatureExtractor

    assert main(["index", str(image_folder.folder), "-c", "posters", "-q"]) == 0
    assert main(["index-videos", str(shots_video.path), "-q"]) == 0
    capsys.readouterr()
    out_json = tmp_path / "found.json"
    loads = []
    original = FeatureExtractor.load
    FeatureExtractor.load = classmethod(
        lambda cls, *a, **k: loads.append(a) or original.__func__(cls, *a, **k)
    )
    try:
        assert (
            main(["find", "-c", "posters", "--threshold", str(TEST_THRESHOLD), "--json", str(out_json)]) == 0
        )
        out = capsys.readouterr().out
        assert main(["find", "-c", "posters", "--name", "DELTA", "--threshold", str(TEST_THRESHOLD)]) == 0
        only_delta = capsys.readouterr().out
    finally:
        FeatureExtractor.load = original
    assert loads == []
    assert "alpha.jpg: 1 video(s)" in out and "shots.mp4: 0:00.0–0:01.1" in out
    assert "delta.png" not in out  # in no video: left out of the list, counted below
    assert "of 4 images appear in 1 video(s)" in out
    doc = json.loads(out_json.read_text())
    assert [d["query"] for d in doc] == ["alpha.jpg", "beta.png", "delta.png", "gamma.jpg"]
    assert only_delta.strip() == "0 of 1 images appear in 0 video(s)"


def test_find_needs_files_or_a_collection(cli_env, image_folder, capsys):
    assert main(["find"]) == 2
    assert "--collection NAME" in capsys.readouterr().err
    assert main(["find", str(image_folder.paths[0]), "--name", "x"]) == 2
    assert "--name picks images of a --collection" in capsys.readouterr().err
    assert main(["index", str(image_folder.folder), "-c", "posters", "-q"]) == 0
    assert main(["find", "-c", "nope"]) == 2
    assert "No collection named 'nope'" in capsys.readouterr().err


def test_videos_lists_what_find_searches_and_removes_videos_from_it(
    cli_env, image_folder, shots_video, tmp_path, monkeypatch, capsys
):
    """Frames cached by index-videos and by match runs are both searched: ``videos`` lists both,
    and ``videos --remove`` takes a video out (its cached frames; its runs stay)."""
    import shutil

    copy = tmp_path / "copy.mp4"
    shutil.copy(shots_video.path, copy)
    with open(copy, "ab") as f:  # other content: another video
        f.write(b"\0")
    assert main(["index", str(image_folder.folder), "-c", "s", "-q"]) == 0
    assert main(["match", str(copy), "-c", "s", "--every-frame", "-q"]) == 0
    assert main(["index-videos", str(shots_video.path), "-q"]) == 0
    analysed = int(re.search(r"shots.mp4: 40 frames, (\d+) analysed", capsys.readouterr().out)[1])
    assert main(["videos"]) == 0
    out = capsys.readouterr().out
    assert "copy.mp4" in out and "matched" in out and "shots.mp4" in out and "indexed" in out
    assert "2 video(s), 0:08.0 of video" in out
    assert main(["videos", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["path"], v["source"], v["frames"]) for v in listed] == [
        (str(copy), "matched", 40),
        (str(shots_video.path), "indexed", analysed),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["videos", "--remove", str(shots_video.path)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["videos", "--remove", str(tmp_path / "nope.mp4"), "--yes"]) == 2
    assert "not in the library" in capsys.readouterr().err
    vid = listed[1]["id"]
    assert main(["videos", "--remove", str(vid), "--yes"]) == 0  # by id, as listed
    assert f"removed 1 video(s) from the library ({analysed} cached frames)" in capsys.readouterr().out
    assert main(["find", str(image_folder.paths[0]), "--threshold", str(TEST_THRESHOLD), "-q"]) == 0
    out = capsys.readouterr().out
    assert "copy.mp4" in out and "shots.mp4" not in out
    # a file that is gone: --missing finds it; the run stays
    copy.unlink()
    assert main(["videos", "--missing", "--yes"]) == 0
    assert "removed 1 video(s)" in capsys.readouterr().out
    assert main(["videos"]) == 0
    assert "no videos in the library yet" in capsys.readouterr().out
    assert main(["runs"]) == 0
    assert "copy.mp4" in capsys.readouterr().out


def test_index_videos_again_reads_no_weights(cli_env, shots_video, capsys, monkeypatch):
    import core.model.loading as loading

    assert main(["index-videos", str(shots_video.path), "-q"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(loading, "apply_precision", lambda *a, **k: pytest.fail("weights loaded"))
    assert main(["index-videos", str(shots_video.path), "-q"]) == 0
    assert "0 indexed, 1 already indexed, 0 failed" in capsys.readouterr().out


def test_a_video_replaced_in_place_is_flagged_and_pruned(cli_env, image_folder, tmp_path, capsys):
    """A re-cut saved over a video's path: ``find`` and ``videos`` say the earlier content's frames
    no longer fit the file, and ``videos --missing`` takes them out with the files that are gone."""
    import os

    from conftest import shot_frames, write_video

    path = tmp_path / "v" / "clip.mp4"
    write_video(path, shot_frames(image_folder.arrays, [(0, 10), (-1, 6)]), fps=10)
    assert main(["index-videos", str(path), "-q"]) == 0
    write_video(path, shot_frames(image_folder.arrays, [(-1, 6), (1, 12)]), fps=10)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert main(["index-videos", str(path), "-q"]) == 0
    capsys.readouterr()
    out_json = tmp_path / "found.json"
    args = [
        "find",
        str(image_folder.paths[0]),
        "--threshold",
        str(TEST_THRESHOLD),
        "-q",
        "--json",
        str(out_json),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "clip.mp4" in out and "note: the file holds other content now" in out
    assert json.loads(out_json.read_text())[0]["videos"][0]["file"] == "replaced"
    assert main(["videos"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "clip.mp4" in x]
    assert len(lines) == 2 and sum("(replaced:" in x for x in lines) == 1
    assert main(["videos", "--missing", "--yes"]) == 0
    assert "removed 1 video(s)" in capsys.readouterr().out
    assert main(["videos", "--json"]) == 0
    assert [v["file"] for v in json.loads(capsys.readouterr().out)] == ["ok"]
