"""core.cli.quality: python -m core evaluate / explain (and export's editor formats)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD
from core.cli import main


@pytest.fixture
def matched(cli_env, image_folder, shots_video, capsys):
    """Run 1: the shots video, every frame, against the four test images."""
    assert main(["index", str(image_folder.folder), "-c", "shots", "-q"]) == 0
    args = ["match", str(shots_video.path), "-c", "shots", "--every-frame", "-q"]
    assert main([*args, "--threshold", str(TEST_THRESHOLD)]) == 0
    capsys.readouterr()
    return shots_video


def test_evaluate_against_segments(matched, tmp_path, capsys):
    # the shots video: alpha frames 0-11, noise, beta 18-27, gamma 28-35, noise (10 fps)
    truth = tmp_path / "truth.csv"
    truth.write_text("image,start_s,end_s\nalpha.jpg,0,1.2\nbeta.png,1.8,2.8\ngamma.jpg,2.8,3.6\n")
    out, plot = tmp_path / "q.json", tmp_path / "pr.png"
    assert main(["evaluate", "1", "--truth", str(truth), "--json", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "frame accuracy 100.0%" in text and "alpha.jpg: AP" in text
    doc = json.loads(out.read_text())
    assert list(doc) == ["frame_accuracy", "micro_ap", "per_image", "pr_curve", "threshold_at_p90"]
    assert doc["frame_accuracy"] == 1.0 and doc["micro_ap"] > 0.9
    assert set(doc["per_image"]) == {"alpha.jpg", "beta.png", "gamma.jpg"}
    assert doc["threshold_at_p90"] is not None and doc["pr_curve"][0]["precision"] == 1.0
    assert Image.open(plot).size[0] > 200
    # at a threshold above every score nothing is found: frames showing an image are wrong
    assert main(["evaluate", "1", "--truth", str(truth), "--threshold", "1.0"]) == 0
    assert "frame accuracy 25.0%" in capsys.readouterr().out  # the 10 noise frames of 40


def test_evaluate_refuses_bad_truth_and_plot_names(matched, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("what,ever\n1,2\n")
    assert main(["evaluate", "1", "--truth", str(bad)]) == 2
    assert "error: " in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_text("frame_index,image\n0,alpha.jpg\n")
    assert main(["evaluate", "1", "--truth", str(good), "--plot", str(tmp_path / "pr.jpg")]) == 2
    assert "ending in .png" in capsys.readouterr().err


def test_explain_writes_frame_heat_map_and_image(matched, tmp_path, capsys):
    out = tmp_path / "why.png"
    assert main(["explain", "1", "20", "--out", str(out), "-q"]) == 0
    assert "frame 20 of run 1: beta.png" in capsys.readouterr().out
    picture = np.asarray(Image.open(out))
    assert picture.shape[0] == 360 and picture.shape[1] == 3 * round(360 * 320 / 240)
    assert main(["explain", "1", "20", "--out", str(tmp_path / "why.jpg")]) == 2
    assert "ending in .png" in capsys.readouterr().err
    # a noise frame's best candidate can be explained too; --image picks another image
    assert main(["explain", "1", "20", "--image", "1", "--out", str(out), "-q"]) == 0


def test_export_editor_formats(matched, tmp_path, capsys):
    edl, otio, vtt = tmp_path / "r.edl", tmp_path / "r.otio", tmp_path / "r.vtt"
    assert main(["export", "1", "--edl", str(edl), "--otio", str(otio), "--vtt", str(vtt)]) == 0
    out = capsys.readouterr().out
    assert "EDL:" in out and "OTIO:" in out and "WebVTT:" in out
    assert edl.read_text().count("* LOC:") == 3
    assert vtt.read_text().startswith("WEBVTT") and json.loads(otio.read_text())["OTIO_SCHEMA"].startswith(
        "Timeline"
    )
    assert main(["export", "1"]) == 2
    assert "--edl OUT.edl" in capsys.readouterr().err
