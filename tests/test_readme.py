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
