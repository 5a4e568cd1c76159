"""The layout's rules, checked on the source: each rule lives in one place (issue 8).

- ``db`` never imports ``core``; ``core`` never imports Streamlit; SQL lives in ``db``.
- The threshold is applied in one function (``core.matching.params.matched_mask``).
- The model-compatibility rule is one function (``db.check_model``).
- A segment is one type; a file is hashed by one function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "db", "dashboard", "bench")


def sources(*packages: str) -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_db_never_imports_core_and_core_never_imports_streamlit():
    for path, src in sources("db").items():
        assert not any(m == "core" or m.startswith("core.") for m in imported_modules(src)), path
    for path, src in sources("core").items():
        assert not any(m.split(".")[0] == "streamlit" for m in imported_modules(src)), path


def test_sql_lives_in_db():
    sql = re.compile(
        r"\b(SELECT\s+\S+.*\bFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+TABLE)\b"
    )
    for path, src in sources("core", "dashboard", "bench").items():
        assert not sql.search(src), f"SQL outside db/: {path}"


def test_the_threshold_is_applied_in_one_place():
    compare = re.compile(r"(>=|<=|>|<)\s*(self\.)?(thr|threshold)\b|\b(thr|threshold)\s*(>=|<=|>|<)")
    offenders = [
        f"{path}:{n}"
        for path, src in sources(*PACKAGES).items()
        for n, line in enumerate(src.splitlines(), 1)
        if compare.search(line) and path != "core/matching/params.py"
    ]
    assert offenders == []


def test_the_model_compatibility_rule_is_one_function():
    raisers = [path for path, src in sources(*PACKAGES).items() if "raise ModelMismatchError" in src]
    assert raisers == ["db/collections.py"]
    definitions = [
        path for path, src in sources(*PACKAGES).items() if re.search(r"def check_\w*model\w*\(", src)
    ]
    assert definitions == ["db/collections.py"]


def test_one_segment_type_and_one_file_hasher():
    import db
    from core.matching.segments import Segment

    assert Segment is db.Segment
    hashers = [path for path, src in sources(*PACKAGES).items() if re.search(r"def \w*sha256\w*\(", src)]
    assert hashers == ["core/media/files.py"]
