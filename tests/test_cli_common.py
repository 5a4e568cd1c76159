"""core.cli.common: the parser, the error edge, help, and what every command shares (database, model)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.cli import main


@pytest.mark.parametrize(
    "args, message",
    [
        (["match", "missing.mp4", "-c", "nope"], "No collection named 'nope'"),
        (["index", "/definitely/not/here", "-c", "x"], "not/here"),
        (["match", "{video}", "-c", "s", "--threshold", "3"], "threshold must be between"),
        (["match", "{bad}", "-c", "s"], "Cannot open video"),
        (["export", "99", "--json", "x.json"], "99"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(
    cli_env, image_folder, shots_video, tmp_path, capsys, args, message
):
    main(["index", str(image_folder.paths[0]), "-c", "s", "-q"])
    capsys.readouterr()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    args = [a.format(video=shots_video.path, bad=bad) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_wrong_model_id_is_one_clear_line(cli_env, image_folder, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["index", str(image_folder.folder), "-c", "x", "--model", "nobody/no-such-model", "-q"]) == 2
    err = capsys.readouterr().err
    assert "nobody/no-such-model" in err and "HF_HUB_OFFLINE" in err
    assert len(err.strip().splitlines()) == 1


def test_collection_of_another_model_is_refused_before_loading(cli_env, image_folder, shots_video, capsys):
    main(["index", str(image_folder.paths[0]), "-c", "s", "-q"])
    capsys.readouterr()
    assert main(["match", str(shots_video.path), "-c", "s", "--model", "facebook/some-other-model"]) == 2
    err = capsys.readouterr().err
    assert "is bound to model" in err and "facebook/some-other-model" in err
    assert len(err.strip().splitlines()) == 1


def test_help_for_every_command():
    for cmd in ["index", "match", "collections", "runs", "export", "rematch", "search", "prune"]:
        proc = subprocess.run(
            [sys.executable, "-m", "core", cmd, "--help"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0 and "usage:" in proc.stdout


def test_read_commands_do_not_create_a_database(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "typo.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(missing))
    for args in (["collections"], ["runs"], ["export", "1", "--json", "x.json"], ["prune", "-c", "x"]):
        assert main(args) == 2
        assert "No index database" in capsys.readouterr().err
    assert not missing.exists()


# -- issue 8: one rule in one place -----------------------------------------------------------------


def test_a_collection_is_matched_with_its_own_model(
    tmp_path, tiny_model_dir, image_folder, shots_video, monkeypatch, capsys
):
    """Without --model, match/search/index use the collection's model, whatever the default is."""
    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "own.sqlite"))
    monkeypatch.delenv("WEBSSL_MODEL", raising=False)  # the default is the Hub model, not on this machine
    assert main(["index", str(image_folder.paths[0]), "-c", "own", "--model", str(tiny_model_dir), "-q"]) == 0
    assert main(["index", str(image_folder.paths[1]), "-c", "own", "-q"]) == 0  # no --model: the collection's
    assert "1 added" in capsys.readouterr().out
    assert main(["match", str(shots_video.path), "-c", "own", "--every-frame", "-q"]) == 0
    assert "run 1:" in capsys.readouterr().out
    assert main(["search", str(image_folder.paths[1]), "-c", "own", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["image"] == image_folder.paths[1].name
    # an explicit, different model is refused before it is loaded
    assert main(["match", str(shots_video.path), "-c", "own", "--model", "facebook/dinov2-small", "-q"]) == 2
    err = capsys.readouterr().err
    assert "is bound to model" in err and "facebook/dinov2-small" in err


def test_cli_defaults_come_from_the_core_types():
    from core.cli.common import build_parser
    from core.matching.params import DEFAULTS
    from core.matching.sampling import DEFAULT_SAMPLING

    args = build_parser().parse_args(["match", "v.mp4", "-c", "x"])
    assert (args.threshold, args.top_k, args.gap, args.min_duration) == (
        DEFAULTS.threshold,
        DEFAULTS.top_k,
        DEFAULTS.gap_tolerance_s,
        DEFAULTS.min_duration_s,
    )
    assert args.max_interval == DEFAULT_SAMPLING.max_interval_s
    assert build_parser().parse_args(["search", "q.jpg", "-c", "x"]).top_k == DEFAULTS.top_k
