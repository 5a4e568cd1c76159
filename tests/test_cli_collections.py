"""core.cli.collections: python -m core index / collections / search / prune."""

from __future__ import annotations

import json
import os

from core.cli import main


def test_prune_removes_missing_files(cli_env, image_folder, capsys):
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    image_folder.paths[0].unlink()
    assert main(["prune", "-c", "p"]) == 0
    assert "removed 1 image" in capsys.readouterr().out
    assert main(["collections", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["images"] == 3


def test_cli_search(tmp_path, tiny_model_dir, image_folder, monkeypatch, capsys):
    monkeypatch.setenv("WEBSSL_DB", str(tmp_path / "s.sqlite"))
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    main(["index", str(image_folder.folder), "-c", "c", "-q"])
    capsys.readouterr()
    assert main(["search", str(image_folder.paths[1]), "-c", "c", "-k", "2", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image"] == "beta.png" and len(rows) == 2
    bad = tmp_path / "bad.jpg"
    bad.write_text("x")
    assert main(["search", str(bad), "-c", "c"]) == 2
    assert "not an image" in capsys.readouterr().err


def test_index_skips_special_files_with_a_reason(cli_env, image_folder, tmp_path, capsys):
    fifo = image_folder.folder / "x.jpg"
    os.mkfifo(fifo)
    assert main(["index", str(fifo), "/dev/zero", str(image_folder.paths[0]), "-c", "c", "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "2 failed" in out
    assert (
        "x.jpg: not a regular file (a FIFO" in out
        and "/dev/zero: not a regular file (a character device)" in out
    )
    assert main(["index", str(image_folder.folder), "-c", "c", "-q"]) == 0  # the FIFO in a folder is skipped
    assert "3 added" in capsys.readouterr().out
