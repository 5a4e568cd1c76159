"""examples/webssl_examples.ipynb: runs top to bottom with a tiny model and demo media (nbclient),
shows pictures, videos, tables and the timeline, and is committed without outputs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import TEST_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "webssl_examples.ipynb"


def test_the_committed_notebook_has_no_outputs():
    doc = json.loads(NOTEBOOK.read_text())
    code = [c for c in doc["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_the_notebook_runs_top_to_bottom(tiny_model_dir, tmp_path, monkeypatch):
    import nbclient
    import nbformat

    out = tmp_path / "out"
    # the kernel imports this checkout's code (not another editable install's)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("WEBSSL_OUT", str(out))
    monkeypatch.setenv("WEBSSL_THRESHOLD", str(TEST_THRESHOLD))
    monkeypatch.setenv("WEBSSL_MAX_FRAMES", "12")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    elapsed = time.perf_counter() - started
    print(f"notebook ran in {elapsed:.1f} s")

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    data = [o.get("data", {}) for o in outputs]
    assert sum("image/png" in d for d in data) >= 3  # the maps figure, the arrays, the layer strip
    videos = [d["text/html"] for d in data if "<video" in d.get("text/html", "")]
    assert len(videos) == 4 and all("data:video/mp4;base64," in v for v in videos)
    assert any("application/vnd.plotly.v1+json" in d for d in data)  # the timeline
    tables = [d["text/html"] for d in data if "<table" in d.get("text/html", "")]
    assert any("peak_score" in t for t in tables) and any("frame_index" in t for t in tables)
    # everything was written under WEBSSL_OUT (the database included), nothing beside the notebook
    for name in ("layers.mp4", "pca.mp4", "side_by_side.mp4", "match.mp4", "examples.sqlite", "run.json"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "webssl-examples").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["threshold"] == TEST_THRESHOLD and run["segments"]
