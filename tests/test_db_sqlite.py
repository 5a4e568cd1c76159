"""db.sqlite: sqlite-utils without pandas (fresh processes: an import happens once per process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_db_layer_imports_without_pandas_and_works(tmp_path):
    """sqlite-utils imports pandas when installed (0.2 s, for every CLI command and the
    dashboard's first page); the db layer never writes pandas values."""
    out = run(
        f"""
        import sys
        import db
        from db import Index
        assert "pandas" not in sys.modules, "importing db imported pandas"
        with Index({str(tmp_path / "i.sqlite")!r}) as index:
            c = index.create_collection("c", "m", "{{}}", 4)
            assert [x.name for x in index.list_collections()] == ["c"]
        assert "pandas" not in sys.modules
        import pandas  # still importable afterwards, as usual
        print("ok", pandas.__name__)
        """
    )
    assert out.split() == ["ok", "pandas"]


def test_pandas_already_imported_is_left_alone():
    out = run(
        """
        import pandas
        import sqlite_utils.db
        import db
        print(sqlite_utils.db.pd is pandas)
        """
    )
    assert out.strip() == "True"


def test_pandas_is_hidden_from_the_importing_thread_only():
    """Another thread that imports pandas meanwhile gets it: the server's threads import while
    a page imports the db layer."""
    out = run(
        """
        import threading
        from db.sqlite import hidden
        seen = {}
        with hidden("pandas"):
            try:
                import pandas
                seen["main"] = "imported"
            except ModuleNotFoundError:
                seen["main"] = "hidden"
            def other():
                import pandas
                seen["other"] = pandas.__name__
            t = threading.Thread(target=other)
            t.start()
            t.join()
        import pandas
        print(seen["main"], seen["other"], pandas.__name__)
        """
    )
    assert out.split() == ["hidden", "pandas", "pandas"]
