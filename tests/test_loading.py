"""core.model.loading: local folders through from_pretrained, DINOv2-family checks, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import ModelLoadError
from core.model.loading import load_model


def test_local_folder_loads_through_from_pretrained(tiny_model_dir):
    loaded = load_model(tiny_model_dir, device="cpu")
    assert loaded.setup.source.is_local
    assert loaded.setup.source.model_id == str(tiny_model_dir.resolve())
    assert loaded.setup.hidden_size == 48 and loaded.setup.num_layers == 3 and loaded.setup.patch_size == 14
    assert loaded.setup.precision == "fp32"
    assert not loaded.model.training
    assert loaded.setup.preprocessing.shortest_edge == 256


def test_missing_folder_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope", device="cpu")


def test_folder_without_weights_is_explained(tmp_path, tiny_model_dir):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError) as info:
        load_model(folder, device="cpu")
    assert "Cannot load model" in str(info.value)
    assert "--model" in str(info.value)


def test_unknown_hub_id_offline_gives_one_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_model("someone/does-not-exist-model", device="cpu")
    msg = str(info.value)
    assert "someone/does-not-exist-model" in msg
    assert "HF_HUB_OFFLINE" in msg and "hf download" in msg


def test_no_network_fails_fast_with_the_fix(monkeypatch):
    import core.model.loading as model_mod

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(model_mod, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model("facebook/webssl-dino300m-full2b-224", device="cpu")


def test_non_dinov2_models_are_refused(tmp_path):
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ViTModel(cfg).save_pretrained(tmp_path / "vit")
    with pytest.raises(ModelLoadError, match="DINOv2-family"):
        load_model(tmp_path / "vit", device="cpu")


def test_pickled_weights_are_never_loaded(tmp_path, tiny_model_dir):
    from transformers import Dinov2Model

    folder = tmp_path / "bin"
    folder.mkdir()
    model = Dinov2Model.from_pretrained(tiny_model_dir)
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="Cannot load model"):
        load_model(folder, device="cpu")


def test_missing_preprocessor_config_falls_back_to_dinov2_defaults(tmp_path, tiny_model_dir, caplog):
    from transformers import Dinov2Model

    Dinov2Model.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert loaded.setup.preprocessing.crop_hw == (224, 224)
    assert "defaults" in caplog.text


def test_registers_model_loads(tmp_path):
    from conftest import build_registers_model

    build_registers_model(tmp_path / "reg", registers=4)
    loaded = load_model(tmp_path / "reg", device="cpu")
    assert loaded.setup.num_register_tokens == 4


def test_processor_config_is_read_not_hard_coded(tmp_path, tiny_model_dir):
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    cfg_path = folder / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["crop_size"] = {"height": 196, "width": 196}
    cfg["size"] = {"shortest_edge": 210}
    cfg_path.write_text(json.dumps(cfg))
    loaded = load_model(folder, device="cpu")
    assert loaded.setup.preprocessing.crop_hw == (196, 196)
    assert loaded.setup.preprocessing.shortest_edge == 210


def test_a_model_is_described_from_its_config_files_without_its_weights(tmp_path, tiny_model_dir):
    """What a model is (cache keys, shapes, preprocessing) comes from its config files: a folder
    without weights is described, and fails only when the weights are loaded."""
    from core.model.loading import describe_model

    folder = tmp_path / "config-only"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_text((tiny_model_dir / name).read_text())
    setup = describe_model(folder, device="cpu", precision="fp32")
    loaded = load_model(tiny_model_dir, device="cpu", precision="fp32").setup
    assert (setup.hidden_size, setup.num_layers, setup.patch_size) == (48, 3, 14)
    assert setup.preprocessing == loaded.preprocessing and setup.precision == "fp32"
    assert setup.embed_key() != loaded.embed_key()  # another folder: another model
    with pytest.raises(ModelLoadError, match="Cannot load model"):
        load_model(setup=setup)
    with pytest.raises(ModelLoadError, match="does not exist"):
        describe_model(tmp_path / "nope", device="cpu")


def test_a_broken_folder_is_told_how_to_fix_the_folder_not_to_download_it(tmp_path, tiny_model_dir):
    """`hf download /some/folder` is no fix for a folder: the message says what the folder needs."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 48}))  # no model_type
    with pytest.raises(ModelLoadError) as info:
        load_model(folder, device="cpu")
    msg = str(info.value)
    assert "hf download" not in msg and str(folder) in msg
    assert "config.json" in msg and "model.safetensors" in msg and "save_pretrained" in msg
