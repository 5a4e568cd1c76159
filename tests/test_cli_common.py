"""core.cli.common: the parser, the error edge, help, and what every command shares (database, model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize("command", [["runs"], ["collections"]])
def test_output_into_a_closed_pipe_stops_quietly(tmp_path, command):
    """``python -m core runs | head -1``: when the reader of the output goes away, the command
    stops without a traceback, with the shell's exit status for SIGPIPE."""
    from core.cli.common import EXIT_BROKEN_PIPE
    from db import Index

    db_path = tmp_path / "index.sqlite"
    Index(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", *command, "--db", str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the command writes (its imports take longer)
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == EXIT_BROKEN_PIPE == 141


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


# -- issue 9: names, output and databases at the edge ------------------------------------------------
@pytest.mark.parametrize("name", ["", " ", "\t"])
def test_blank_collection_names_fail_before_any_work(
    cli_env, image_folder, shots_video, name, capsys, monkeypatch
):
    import core.model.loading

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model must not be loaded for a blank name")

    monkeypatch.setattr(core.model.loading, "load_model", no_model)
    assert main(["index", str(image_folder.paths[0]), "-c", name, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "blank" in err and len(err.strip().splitlines()) == 1
    main(["collections"])  # the database exists from here on
    capsys.readouterr()
    assert main(["match", str(shots_video.path), "-c", name, "-q"]) == 2
    assert "blank" in capsys.readouterr().err


def test_file_names_cannot_forge_output_lines(cli_env, tmp_path, capsys):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "a.jpg\n  failed: evil.jpg: it is fine.jpg").write_bytes(b"not an image")
    assert main(["index", str(folder), "-c", "x", "-q"]) == 0
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.lstrip().startswith("failed:")]
    assert len(failed) == 1 and "\\n" in failed[0]


def _db_file(tmp_path, kind: str) -> Path:
    import sqlite3

    path = tmp_path / f"{kind}.sqlite"
    if kind == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "folder":
        path.mkdir()
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    elif kind == "negative":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE collections (id INTEGER)")
        conn.execute("PRAGMA user_version = -1")
        conn.commit()
        conn.close()
    return path


@pytest.mark.parametrize("kind", ["random", "folder", "foreign", "negative"])
@pytest.mark.parametrize(
    "command", [["collections"], ["runs"], ["export", "1", "--json", "x.json"], ["index", "."]]
)
def test_bad_database_files_are_one_line_and_left_alone(tmp_path, kind, command, image_folder, capsys):
    path = _db_file(tmp_path, kind)
    before = path.read_bytes() if path.is_file() else None
    argv = [*command, "--db", str(path), "-q"]
    if command[0] == "index":
        argv = ["index", str(image_folder.paths[0]), "-c", "c", "--db", str(path), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    if before is not None:
        assert path.read_bytes() == before


def test_read_commands_work_on_a_read_only_database(
    cli_env, image_folder, shots_video, tmp_path, capsys, monkeypatch
):
    import sqlite3

    main(["index", str(image_folder.folder), "-c", "shots", "-q"])
    main(["match", str(shots_video.path), "-c", "shots", "--every-frame", "-q"])
    conn = sqlite3.connect(cli_env)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    before = cli_env.read_bytes()
    real_connect = sqlite3.connect

    def read_only_mount(database, *args, **kwargs):
        kwargs["uri"] = True
        if str(database).startswith("file:"):
            return real_connect(database, *args, **kwargs)
        return real_connect(f"file:{database}?mode=ro", *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only_mount)
    capsys.readouterr()
    assert main(["collections"]) == 0 and "shots" in capsys.readouterr().out
    assert main(["runs"]) == 0 and "done" in capsys.readouterr().out
    assert main(["export", "1", "--json", str(tmp_path / "r.json")]) == 0
    assert main(["search", str(image_folder.paths[0]), "-c", "shots", "-k", "1"]) == 0
    assert main(["prune", "-c", "shots"]) == 2  # writes: a clear refusal
    assert "read-only" in capsys.readouterr().err
    assert cli_env.read_bytes() == before


def test_progress_bar_per_stage_and_a_line_for_stages_without_a_count(capsys):
    from core.cli.common import TqdmProgress
    from core.progress import ProgressEvent

    bar = TqdmProgress()
    bar(ProgressEvent("reading video", 1, 2, "MB"))
    bar(ProgressEvent("reading video", 2, 2, "MB"))
    bar(ProgressEvent("loading collection", 0, None, "", "3 embeddings of c"))
    bar(ProgressEvent("matching", 5, 10, "frames"))
    bar.close()
    err = capsys.readouterr().err
    assert "reading video" in err and "2/2" in err
    assert "Loading collection… · 3 embeddings of c" in err
    assert "matching" in err and "5/10" in err


@pytest.mark.parametrize(
    "verbose, own, libraries",
    [
        (0, "WARNING", "WARNING"),
        (1, "INFO", "WARNING"),
        (2, "DEBUG", "INFO"),
        (3, "DEBUG", "DEBUG"),
    ],
)
def test_verbosity_raises_our_logs_before_the_libraries(verbose, own, libraries):
    """``-vv`` is the project's debug output, not matplotlib's font search or pydot's start-up
    (which flooded ``visualize -vv``); libraries' debug lines need a third ``-v``."""
    script = (
        "import logging\n"
        "from core.cli.common import configure_logging\n"
        f"configure_logging({verbose})\n"
        "for name in ('core.model', 'db.store', 'dashboard.state', 'matplotlib.font_manager', 'pydot'):\n"
        "    for level in ('DEBUG', 'INFO', 'WARNING'):\n"
        "        logging.getLogger(name).log(getattr(logging, level), 'mark')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = set(proc.stderr.splitlines())
    order = ["DEBUG", "INFO", "WARNING"]
    for name in ("core.model", "db.store", "dashboard.state"):
        shown = {level for level in order if f"{level} {name}: mark" in lines}
        assert shown == set(order[order.index(own) :]), (name, proc.stderr)
    for name in ("matplotlib.font_manager", "pydot"):
        shown = {level for level in order if f"{level} {name}: mark" in lines}
        assert shown == set(order[order.index(libraries) :]), (name, proc.stderr)
