"""core.model.config_files: a model described from its config files as JSON, with the same answer
as transformers gives, and transformers' answer wherever the files leave something to it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import ModelLoadError
from core.model.config_files import read_shape
from core.model.loading import _read_shape_with_transformers, describe_model, load_model
from core.model.source import ModelSource, resolve_source

REPO = Path(__file__).resolve().parents[1]


def _copy(tiny_model_dir: Path, folder: Path, *, config=None, processor=None) -> Path:
    """The tiny model's files in ``folder``, with its JSON files edited by ``config``/``processor``."""
    shutil.copytree(tiny_model_dir, folder)
    for name, edit in (("config.json", config), ("preprocessor_config.json", processor)):
        if edit is not None:
            path = folder / name
            data = json.loads(path.read_text())
            edit(data)
            path.write_text(json.dumps(data))
    return folder


def _both(folder: Path):
    source = resolve_source(folder)
    return read_shape(source), _read_shape_with_transformers(source, "--model")


def test_a_saved_model_is_described_without_importing_transformers(tiny_model_dir):
    """The point of it: a batch of done videos no longer pays for importing transformers."""
    code = (
        "import sys, json\n"
        "from core.model.loading import describe_model\n"
        f"s = describe_model({str(tiny_model_dir)!r}, device='cpu', precision='fp32')\n"
        "print(json.dumps(['transformers' in sys.modules, s.embed_key(), s.hidden_size, s.num_layers]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    imported, key, hidden, layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert not imported
    loaded = load_model(tiny_model_dir, device="cpu", precision="fp32").setup
    assert (key, hidden, layers) == (loaded.embed_key(), loaded.hidden_size, loaded.num_layers)


def _ints(p):
    p["size"] = 210
    p["crop_size"] = 196


def _no_crop(p):
    p["do_center_crop"] = False
    p.pop("crop_size")


def _no_normalize(p):
    p["do_normalize"] = False
    p.pop("image_mean")
    p.pop("image_std")


def _square_resize(p):
    p["size"] = {"height": 240, "width": 240}
    p["resample"] = 2


@pytest.mark.parametrize("edit", [None, _ints, _no_crop, _no_normalize, _square_resize])
def test_the_files_read_as_json_say_what_transformers_reads(tmp_path, tiny_model_dir, edit):
    mine, theirs = _both(_copy(tiny_model_dir, tmp_path / "m", processor=edit))
    assert mine is not None
    assert mine == theirs


def test_a_model_with_registers_is_read_with_its_register_count(tmp_path):
    from conftest import build_registers_model

    folder = build_registers_model(tmp_path / "reg", registers=2)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_resize": True,
                "size": {"shortest_edge": 256},
                "resample": 3,
                "do_center_crop": True,
                "crop_size": {"height": 224, "width": 224},
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "image_processor_type": "BitImageProcessor",
            }
        )
    )
    mine, theirs = _both(folder)
    assert mine is not None and mine.num_register_tokens == 2
    assert mine == theirs


def _no_mean(p):
    p.pop("image_mean")  # the processor class's default, which only transformers knows


@pytest.mark.parametrize("config, processor", [(None, _no_mean), (lambda c: c.pop("patch_size"), None)])
def test_files_that_leave_a_value_to_a_default_are_read_through_transformers(
    tmp_path, tiny_model_dir, config, processor
):
    folder = _copy(tiny_model_dir, tmp_path / "m", config=config, processor=processor)
    mine, theirs = _both(folder)
    assert mine is None
    setup = describe_model(folder, device="cpu", precision="fp32")
    assert setup.preprocessing == theirs.preprocessing and setup.patch_size == theirs.patch_size


def test_a_folder_without_a_processor_file_gets_dinov2_defaults_through_transformers(
    tmp_path, tiny_model_dir, caplog
):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    (folder / "preprocessor_config.json").unlink()
    assert read_shape(resolve_source(folder)) is None
    setup = describe_model(folder, device="cpu", precision="fp32")
    assert setup.preprocessing.crop_hw == (224, 224) and "defaults" in caplog.text


def test_damaged_or_foreign_files_are_explained_by_transformers(tmp_path, tiny_model_dir):
    broken = _copy(tiny_model_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{ not json")
    assert read_shape(resolve_source(broken)) is None
    with pytest.raises(ModelLoadError, match="Cannot load model"):
        describe_model(broken, device="cpu")
    untyped = _copy(tiny_model_dir, tmp_path / "untyped", config=lambda c: c.pop("model_type"))
    assert read_shape(resolve_source(untyped)) is None
    with pytest.raises(ModelLoadError, match="model_type"):
        describe_model(untyped, device="cpu")
    vit = _copy(tiny_model_dir, tmp_path / "vit", config=lambda c: c.update(model_type="vit"))
    assert read_shape(resolve_source(vit)) is None
    with pytest.raises(ModelLoadError, match="DINOv2-family"):
        describe_model(vit, device="cpu")


def test_a_hub_model_is_read_from_the_cache_for_its_revision(tmp_path, tiny_model_dir, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--someone--tiny"
    snapshot = repo / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    shape = read_shape(ModelSource("someone/tiny", None, False))
    assert shape == read_shape(resolve_source(tiny_model_dir))
    assert read_shape(ModelSource("someone/tiny", "v2", False)) is None  # that revision is not cached
    assert read_shape(ModelSource("someone/other", None, False)) is None


def test_loading_uses_the_files_as_they_are_when_they_changed_after_describing(tiny_model_dir, caplog):
    """A setup read from out-of-date files (a Hub cache updated since) is not trusted blindly."""
    setup = describe_model(tiny_model_dir, device="cpu", precision="fp32")
    stale = replace(
        setup, shape=replace(setup.shape, preprocessing=replace(setup.preprocessing, shortest_edge=300))
    )
    loaded = load_model(setup=stale)
    assert loaded.setup == setup and "changed since it was described" in caplog.text
