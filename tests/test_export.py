"""JSON and CSV exports of a run."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import TEST_THRESHOLD
from core.matching.export import (
    CSV_COLUMNS,
    REGION_COLUMNS,
    csv_text,
    run_to_dict,
    write_csv,
    write_json,
)
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import load_run
from core.matching.sampling import Sampling
from db import FrameRegions


@pytest.fixture
def view(index, extractor, image_folder, shots_video):
    index_images(index, "shots", [image_folder.folder], extractor)
    s = match_video(
        index,
        shots_video.path,
        "shots",
        extractor,
        sampling=Sampling.auto(),
        params=MatchParams(threshold=TEST_THRESHOLD, top_k=3),
    )
    return load_run(index, s.run_id)


def test_json_has_the_documented_fields(view, tmp_path):
    path = write_json(view, tmp_path / "out" / "run.json")
    doc = json.loads(path.read_text())
    assert doc["run_id"] == view.run.id
    assert set(doc["video"]) >= {"path", "fps", "frame_count", "duration_s"}
    assert doc["video"]["frame_count"] == 40 and doc["video"]["fps"] == pytest.approx(10)
    assert doc["collection"] == "shots" and doc["model"] == view.run.model_id
    assert doc["threshold"] == TEST_THRESHOLD
    assert doc["sampling"]["mode"] == "auto" and "description" in doc["sampling"]
    assert len(doc["frames"]) == 40
    f0 = doc["frames"][0]
    assert set(f0) >= {"frame_index", "time_s", "matched", "matches", "source_frame", "inherited"}
    assert f0["matched"] is True and f0["matches"][0]["image"] == "alpha.jpg"
    scores = [m["score"] for m in f0["matches"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert set(f0["matches"][0]) >= {"image", "path", "score"}
    assert any(f["inherited"] for f in doc["frames"])
    seg = doc["segments"][0]
    assert set(seg) >= {"image", "start_frame", "end_frame", "start_s", "end_s", "peak_score", "mean_score"}
    assert seg["image"] == "alpha.jpg" and seg["start_frame"] == 0


def test_csv_has_one_row_per_frame_and_rank(view, tmp_path):
    path = write_csv(view, tmp_path / "run.csv")
    rows = list(csv.DictReader(path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 40 * 3
    first = [r for r in rows if r["frame_index"] == "0"]
    assert [r["rank"] for r in first] == ["1", "2", "3"]
    assert first[0]["image"] == "alpha.jpg" and first[0]["matched"] == "1"
    assert float(first[0]["score"]) >= float(first[1]["score"])
    assert csv_text(view) == path.read_bytes().decode()  # CRLF rows, as RFC 4180


def test_csv_of_a_region_run_has_each_frames_region(view):
    """A frame matched by its region shows which image matched where, not only the whole
    frame's matches (which may all be below the threshold)."""
    res = view.results
    beta = next(i for i, p in view.image_paths.items() if p.endswith("beta.png"))
    assert res.image_ids[0, 0] != beta
    regions = FrameRegions(
        frame_index=res.frame_index[:2].copy(),
        image_ids=np.array([beta, beta]),
        scores=np.array([1.0, -0.5], np.float32),  # frame 0: the region wins; frame 1: it loses
        boxes=np.array([[10, 20, 110, 95.5], [0, 0, 5, 5]], np.float32),
    )
    with_regions = replace(view, regions=regions)
    assert with_regions.best_image[0] == beta
    rows = list(csv.DictReader(io.StringIO(csv_text(with_regions))))
    assert tuple(rows[0]) == CSV_COLUMNS + REGION_COLUMNS
    first = [r for r in rows if r["frame_index"] == str(res.frame_index[0])]
    assert [(r["kind"], r["rank"]) for r in first] == [
        ("frame", "1"),
        ("frame", "2"),
        ("frame", "3"),
        ("region", "1"),
    ]
    region = first[-1]
    assert region["image"] == "beta.png" and float(region["score"]) == 1.0 and region["matched"] == "1"
    assert [region[c] for c in ("x0", "y0", "x1", "y1")] == ["10.00", "20.00", "110.00", "95.50"]
    assert {first[0][c] for c in ("x0", "y0", "x1", "y1")} == {""}
    assert [r["kind"] for r in rows if r["frame_index"] == str(res.frame_index[1])][-1] == "region"
    assert len(rows) == len(res) * 3 + 2  # frames without a region have no region row
    # a run without regions keeps its columns
    assert next(csv.reader(io.StringIO(csv_text(view)))) == list(CSV_COLUMNS)


def test_relabelled_export_uses_the_new_threshold(view):
    doc = run_to_dict(view.relabel(threshold=1.0))
    assert doc["threshold"] == 1.0
    assert not any(f["matched"] for f in doc["frames"]) and doc["segments"] == []
    rows = list(csv.DictReader(io.StringIO(csv_text(view.relabel(threshold=1.0)))))
    assert {r["matched"] for r in rows} == {"0"}


@pytest.mark.parametrize(
    "name", ["=HYPERLINK(x).png", "+cmd.png", "-2+3.png", "@SUM(A1).png", "\tlead.png", "\rcr.png"]
)
def test_csv_cells_never_start_a_formula_and_json_stays_exact(index, extractor, shots_video, tmp_path, name):
    """CSV formula injection: a file name a spreadsheet would run is written as text (OWASP)."""
    from PIL import Image

    from conftest import pattern_image

    folder = tmp_path / "hostile"
    folder.mkdir()
    Image.fromarray(pattern_image(100)).save(folder / name)
    index_images(index, "h", [folder], extractor)
    s = match_video(index, shots_video.path, "h", extractor, sampling=Sampling.every_nth(10))
    view = load_run(index, s.run_id)
    rows = list(csv.DictReader(io.StringIO(csv_text(view), newline="")))
    assert rows and {r["image"] for r in rows} == {"'" + name}
    assert all(r["path"].startswith("/") for r in rows)  # absolute paths never start a formula
    assert run_to_dict(view)["frames"][0]["matches"][0]["image"] == name
