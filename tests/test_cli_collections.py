"""core.cli.collections: python -m core index / collections / search / prune."""

from __future__ import annotations

import io
import json
import os

from core.cli import main


def test_prune_removes_missing_files(cli_env, image_folder, monkeypatch, capsys):
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    capsys.readouterr()
    assert main(["prune", "-c", "p"]) == 0
    assert "all 4 files of p are still there: nothing removed" in capsys.readouterr().out
    image_folder.paths[0].unlink()
    assert main(["prune", "-c", "p", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 of 4 images" in out and str(image_folder.paths[0].resolve()) in out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal to ask on
    assert main(["prune", "-c", "p"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["prune", "-c", "p", "--yes"]) == 0
    assert "removed 1 image" in capsys.readouterr().out
    assert main(["collections", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["images"] == 3


def test_prune_refuses_to_empty_a_collection_whose_files_are_all_gone(cli_env, image_folder, capsys):
    """An unmounted drive looks like every file deleted: pruning it would drop every image and
    every match of the collection."""
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    capsys.readouterr()
    image_folder.folder.rename(image_folder.folder.with_name("unmounted"))
    assert main(["prune", "-c", "p", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "none of the 4 files of p exist" in err and "mounted" in err and "--all" in err
    assert main(["collections", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["images"] == 4
    assert main(["prune", "-c", "p", "--all", "--yes"]) == 0
    assert "removed 4 image" in capsys.readouterr().out


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


def test_a_collection_is_renamed_and_deleted_from_the_command_line(
    cli_env, image_folder, monkeypatch, capsys
):
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    capsys.readouterr()
    assert main(["collections", "--rename", "p", "posters"]) == 0
    assert "renamed p to posters" in capsys.readouterr().out
    assert main(["collections", "--rename", "p", "x"]) == 2
    assert "No collection named 'p'" in capsys.readouterr().err
    # deleting asks first: with no terminal to ask on, --yes is needed and nothing goes
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["collections", "--delete", "posters"]) == 2
    assert "--yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main(["collections", "--delete", "posters"]) == 1
    out = capsys.readouterr().out
    assert "Delete collection posters (4 images, 0 runs)?" in out and "nothing deleted" in out
    assert main(["collections", "--json"]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)] == ["posters"]
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(["collections", "--delete", "posters"]) == 0
    assert "deleted collection posters: 4 images, 0 runs" in capsys.readouterr().out
    assert main(["collections", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_collections_takes_one_action_at_a_time(cli_env, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["collections", "--rename", "a", "b", "--delete", "c"])
    assert "not allowed with" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """Standard input that is a terminal, with the user's answers."""

    def isatty(self) -> bool:
        return True


def test_images_lists_a_collection_and_removes_images_from_it(cli_env, image_folder, monkeypatch, capsys):
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    capsys.readouterr()
    assert main(["images", "-c", "p"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("alpha.jpg", "beta.png", "gamma.jpg", "delta.png"))
    assert "4 of 4 images of p" in out
    assert main(["images", "-c", "p", "--name", "ALP", "--json"]) == 0
    (alpha,) = json.loads(capsys.readouterr().out)
    assert alpha["name"] == "alpha.jpg" and alpha["path"] == str(image_folder.paths[0].resolve())
    assert (alpha["width"], alpha["height"]) == (320, 240) and len(alpha["sha256"]) == 64
    # all named images are found, or nothing goes
    assert main(["images", "-c", "p", "--remove", "alpha.jpg", "nope.jpg", "--yes"]) == 2
    assert "nope.jpg is not an image of p" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["images", "-c", "p", "--remove", "alpha.jpg"]) == 2
    assert "--yes" in capsys.readouterr().err
    beta = str(image_folder.paths[1].resolve())
    assert main(["images", "-c", "p", "--remove", "alpha.jpg", beta, str(alpha["id"]), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 image(s) from p" in out and "alpha.jpg" in out and "beta.png" in out
    assert main(["images", "-c", "p", "--json"]) == 0
    assert sorted(r["name"] for r in json.loads(capsys.readouterr().out)) == ["delta.png", "gamma.jpg"]


def test_an_image_name_in_two_folders_must_be_told_apart(cli_env, image_folder, capsys):
    from PIL import Image

    from conftest import pattern_image

    Image.fromarray(pattern_image(777)).save(image_folder.folder / "sub" / "alpha.jpg")
    main(["index", str(image_folder.folder), "-c", "p", "-q"])
    capsys.readouterr()
    assert main(["images", "-c", "p", "--remove", "alpha.jpg", "--yes"]) == 2
    assert "alpha.jpg names 2 images of p: give its id or path" in capsys.readouterr().err
