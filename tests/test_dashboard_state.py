"""dashboard.state: the model's status (are the weights on this machine)."""

from __future__ import annotations


def test_model_status_of_folders_and_hub_ids(tiny_model_dir, tmp_path):
    from core.model.source import split_label
    from dashboard.state import model_status

    ok = model_status(str(tiny_model_dir))
    assert ok.available and ok.fix == ""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    bad = model_status(str(empty))
    assert not bad.available and "config.json" in bad.detail and "WEBSSL_MODEL" in bad.fix
    missing = model_status(str(tmp_path / "nope"))
    assert not missing.available and "does not exist" in missing.detail
    hub = model_status("someone/never-downloaded")
    assert not hub.available and "hf download someone/never-downloaded" in hub.fix
    assert split_label("org/name@v1") == ("org/name", "v1")
    assert split_label(str(tiny_model_dir)) == (str(tiny_model_dir), None)
