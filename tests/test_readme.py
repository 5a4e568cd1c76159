"""README.md stays true: the defaults it states, the modules it lists, the commands it gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.matching.params import DEFAULTS
from core.matching.sampling import DEFAULT_SAMPLING
from core.model.preprocess import FULL_SHORT_SIDE
from core.visual.pca_video import FIT_SAMPLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def stated_default(option: str) -> float:
    """The number after "default:" in the README sentence that documents ``option``."""
    match = re.search(rf"`{re.escape(option)}`[^`]*?default: ([0-9.]+)", README)
    assert match, f"README does not state the default of {option}"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--threshold", DEFAULTS.threshold),
        ("--top-k", DEFAULTS.top_k),
        ("--gap", DEFAULTS.gap_tolerance_s),
        ("--min-duration", DEFAULTS.min_duration_s),
        ("--max-interval", DEFAULT_SAMPLING.max_interval_s),
        ("--short-side", FULL_SHORT_SIDE),
        ("--fit-samples", FIT_SAMPLES),
    ],
)
def test_stated_defaults_are_the_codes(option, value):
    assert stated_default(option) == value


def test_layout_lists_every_module():
    layout = README[README.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    for package in ("core", "db", "dashboard"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py") or "views" in path.parts:
                continue
            assert re.search(rf"^\s+{re.escape(path.name)}\s", layout, re.M), f"README layout lacks {path}"
            folder = path.parent.relative_to(ROOT)
            if len(folder.parts) > 1:
                assert f"  {folder.name}/" in layout, f"README layout lacks {folder}/"


def test_the_set_up_and_test_commands_exist():
    assert "./run " in README and ".ci/run " in README
    for script in ("run", ".ci/run", ".ci/install"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    test_command = re.search(r"## Tests\s+```bash\n(.+?)\n```", README, re.S).group(1).strip()
    assert test_command == "python -m pytest"
    assert f"\n{test_command} " in (ROOT / ".ci" / "run").read_text()


def test_the_python_example_runs(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """README's "Use it from Python" example, as written, with the tiny model on demo media."""
    from PIL import Image

    from core.media.demo import write_demo_media

    code = re.search(r"## Use it from Python.+?```python\n(.+?)\n```", README, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 11
    media = write_demo_media(tmp_path / "demo", images=2, shot_frames=4)
    (tmp_path / "posters").mkdir()
    for path, name in zip(media.images, ("astronaut.jpg", "other.jpg"), strict=True):
        Image.open(path).save(tmp_path / "posters" / name, quality=95)
    Image.open(media.images[0]).save(tmp_path / "query.jpg")
    media.video.rename(tmp_path / "talk.mp4")
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "posters: 2 added" in out and "mean_score" in out and "image='astronaut.jpg'" in out
    assert (tmp_path / "astronaut_maps.png").is_file() and (tmp_path / "talk_pca.mp4").is_file()
