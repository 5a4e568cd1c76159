"""The dashboard's non-UI helpers: jobs, uploads, charts, results, media, model status."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from core.errors import InvalidArgumentError, VideoOpenError, WebSSLError
from core.matching.params import matched_mask
from core.progress import Cancelled, ProgressReporter
from core.visual.colours import image_colour
from dashboard import charts, uploads
from dashboard.jobs import JobManager, describe_event, format_duration


# -- jobs -------------------------------------------------------------------------------------------
@pytest.fixture
def manager():
    jm = JobManager(workers=1)
    yield jm
    jm.shutdown()


def test_job_runs_in_the_background_and_reports_progress(manager):
    seen = []

    def work(total, *, progress, cancel):
        reporter = ProgressReporter("indexing", "images", total, progress, cancel)
        for i in range(1, total + 1):
            reporter.update(i)
            seen.append(job.snapshot().fraction)
        assert threading.current_thread() is not threading.main_thread()
        return "result"

    job = manager.submit("index", "Indexing", work, 4)
    assert job.wait(10)
    snap = job.snapshot()
    assert snap.status == "done" and snap.result == "result" and snap.fraction == 1.0
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert not snap.active and snap.elapsed_s >= 0


def test_job_cancel_stops_it(manager):
    started = threading.Event()

    def work(*, progress, cancel):
        reporter = ProgressReporter("matching", "frames", None, progress, cancel)
        started.set()
        while True:
            reporter.check_cancelled()
            cancel.wait(0.01)

    job = manager.submit("match", "Matching", work)
    assert started.wait(10)
    job.cancel()
    assert job.wait(10)
    assert job.snapshot().status == "cancelled"
    assert "cancelled" in job.snapshot().message


def test_queued_jobs_wait_their_turn_and_can_be_dropped(manager):
    release, running = threading.Event(), threading.Event()

    def first_job(**_injected):
        running.set()
        return release.wait(10)

    first = manager.submit("a", "first", first_job)
    assert running.wait(10)
    second = manager.submit("b", "second", lambda **_: "ran")
    third = manager.submit("c", "third", lambda **_: "ran")
    assert second.snapshot().status == "queued"
    assert (second.snapshot().queue_position, third.snapshot().queue_position) == (0, 1)
    assert first.snapshot().status == "running"
    second.cancel()
    release.set()
    assert third.wait(10) and first.wait(10) and second.wait(10)
    assert second.snapshot().status == "cancelled" and second.snapshot().result is None
    assert third.snapshot().result == "ran"
    assert [j.id for j in manager.jobs()] == [third.id, second.id, first.id]


def test_expected_errors_are_messages_not_crashes(manager):
    def fails(**_injected):
        raise WebSSLError("Collection 'x' has no images yet.")

    job = manager.submit("match", "Matching", fails)
    assert job.wait(10)
    snap = job.snapshot()
    assert snap.status == "failed" and snap.error == "Collection 'x' has no images yet."
    # the worker survives and runs the next job
    assert manager.submit("x", "next", lambda **_: 1).wait(10)


def test_an_unexpected_error_is_logged_and_reported(manager, caplog):
    def bug(**_injected):
        raise KeyError("oops")

    job = manager.submit("x", "buggy", bug)
    assert job.wait(10)
    assert job.snapshot().status == "failed"
    assert "KeyError" in job.snapshot().error
    assert any("crashed" in r.getMessage() for r in caplog.records)
    caplog.clear()  # the ERROR log was expected


def test_describe_event_and_durations():
    reporter = ProgressReporter("indexing", "images", 10, None)
    reporter.start -= 2.0
    got = []
    reporter.callback = got.append
    reporter.update(4)
    text = describe_event(got[0])
    assert text.startswith("Indexing: 4 / 10 images · 2.0 images/s") and "left" in text
    assert (
        format_duration(12) == "12 s"
        and format_duration(600) == "10 min"
        and format_duration(4000) == "1 h 6 min"
    )
    with pytest.raises(ValueError):
        JobManager(workers=0)


def test_cancelled_is_a_websslerror():
    assert issubclass(Cancelled, WebSSLError)


# -- uploads -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/absolute/path/x.png", "x.png"),
        ("holiday photo (1).JPG", "holiday_photo_1_.JPG"),
        ("Café Crème.png", "Cafe_Creme.png"),
        ("..", "upload"),
        (".hidden", "hidden"),
        ("", "upload"),
        ("a\x00b.png", "a_b.png"),
    ],
)
def test_sanitize_filename(name, expected):
    assert uploads.sanitize_filename(name) == expected


def test_sanitize_keeps_the_extension_of_long_names():
    name = "x" * 300 + ".jpeg"
    safe = uploads.sanitize_filename(name)
    assert len(safe) <= uploads.MAX_NAME_CHARS and safe.endswith(".jpeg")


def test_uploads_are_hashed_sanitised_and_never_overwritten(tmp_path):
    from core.config import data_dir

    root = (data_dir() / "uploads" / "images").resolve()
    a = uploads.save_upload(b"first content", "../../../tmp/evil.jpg", kind="images")
    assert a.parent.parent == root and a.name == "evil.jpg"
    assert a.parent.name == __import__("hashlib").sha256(b"first content").hexdigest()[:16]
    assert a.read_bytes() == b"first content"
    # different content, same name: another file, the first one untouched
    b = uploads.save_upload(b"other content", "evil.jpg", kind="images")
    assert b != a and a.read_bytes() == b"first content" and b.read_bytes() == b"other content"
    # the same content again: the same file, not rewritten
    mtime = a.stat().st_mtime_ns
    again = uploads.save_upload(io.BytesIO(b"first content"), "evil.jpg", kind="images")
    assert again == a and a.stat().st_mtime_ns == mtime
    # nothing was written outside the uploads folder, and no temp files are left
    assert not (tmp_path / "tmp").exists()
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["evil.jpg", "evil.jpg"]


def test_upload_kind_must_be_a_plain_word():
    for bad in ("../x", "a/b", "", "X"):
        with pytest.raises(ValueError):
            uploads.uploads_dir(bad)


def test_a_tampered_file_with_the_same_name_is_not_reused(tmp_path):
    a = uploads.save_upload(b"content", "x.png", kind="files")
    a.write_bytes(b"changed on disk")
    b = uploads.save_upload(b"content", "x.png", kind="files")
    assert b != a and b.read_bytes() == b"content" and a.read_bytes() == b"changed on disk"


# -- charts -----------------------------------------------------------------------------------------
def _run_arrays(n=50):
    t = np.arange(n) / 10
    fi = np.arange(n)
    score = np.where(np.arange(n) < n // 2, 0.98, 0.5).astype(np.float32)
    score[3] = np.nan
    img = np.where(np.arange(n) < n // 2, 7, 9)
    return t, fi, score, img


def test_timeline_colours_matched_images_and_draws_the_threshold():
    t, fi, score, img = _run_arrays()
    fig = charts.timeline_figure(
        t, fi, score, img, matched_mask(score, 0.9), {7: "a.jpg", 9: "b.jpg"}, 0.9, selected_time=1.0
    )
    names = [tr.name for tr in fig.data]
    assert names == ["best score", "below threshold", "a.jpg"]
    assert all(isinstance(tr, go.Scatter) for tr in fig.data)
    matched = fig.data[2]
    assert len(matched.x) == 24  # one NaN frame has no point
    assert list(matched.customdata[0]) == [0, "a.jpg"]
    shapes = fig.layout.shapes
    assert any(s.y0 == 0.9 and s.y1 == 0.9 for s in shapes)  # threshold line
    assert any(s.x0 == 1.0 for s in shapes)  # selected frame


def test_timeline_uses_webgl_for_long_videos_and_groups_many_images():
    n = charts.WEBGL_MIN_POINTS + 10
    t = np.arange(n) / 25
    img = np.arange(n) % 20
    score = np.full(n, 0.95)
    fig = charts.timeline_figure(t, np.arange(n), score, img, matched_mask(score, 0.9), {}, 0.9, max_images=5)
    assert all(isinstance(tr, go.Scattergl) for tr in fig.data)
    assert fig.data[-1].name == "15 other images"
    assert len(fig.data) == 1 + 5 + 1  # line, 5 images, the rest


def test_timeline_checks_lengths():
    with pytest.raises(ValueError):
        charts.timeline_figure(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.ones(3, bool), {}, 0.5)


def test_duplicate_file_names_get_ids():
    labels = charts.unique_labels(np.array([1, 2, 3, -1]), {1: "a.jpg", 2: "a.jpg", 3: "b.jpg"})
    assert labels == {1: "a.jpg (#1)", 2: "a.jpg (#2)", 3: "b.jpg"}


def test_score_matrix_and_heatmap():
    ids = np.array([[1, 2], [2, 1], [3, -1]])
    scores = np.array([[0.9, 0.5], [0.8, 0.4], [0.3, np.nan]], np.float32)
    top, matrix = charts.score_matrix(ids, scores, top_n=2)
    assert top.tolist() == [1, 2]
    np.testing.assert_allclose(matrix, [[0.9, 0.4, np.nan], [0.5, 0.8, np.nan]], rtol=1e-6)
    fig = charts.heatmap_figure(np.array([0.0, 0.1, 0.2]), ids, scores, {1: "one", 2: "two"}, top_n=2)
    assert list(fig.data[0].y) == ["one", "two"]
    assert [image_colour(1) in t for t in fig.layout.yaxis.ticktext] == [True, False]
    empty_top, empty = charts.score_matrix(np.full((4, 2), -1), np.full((4, 2), np.nan))
    assert empty_top.size == 0 and empty.shape == (0, 4)


def test_heatmap_bins_long_runs_keeping_the_peak():
    n = 10_000
    ids = np.ones((n, 1), np.int64)
    scores = np.full((n, 1), 0.1, np.float32)
    scores[5000] = 0.99
    fig = charts.heatmap_figure(np.arange(n) / 30, ids, scores, {1: "x"}, max_columns=100)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (1, 100) and np.isclose(np.nanmax(z), 0.99)


def test_histogram_splits_at_the_threshold():
    scores = np.array([0.1, 0.2, 0.95, np.nan])
    fig = charts.histogram_figure(scores, matched_mask(scores, 0.5), 0.5)
    below, above = fig.data
    assert list(below.x) == [0.1, 0.2] and list(above.x) == [0.95]
    assert len(charts.histogram_figure(np.array([np.nan]), np.zeros(1, bool), 0.5).data[0].x) == 0


def test_selected_frame_reads_plotly_events():
    assert charts.selected_frame(None) is None
    assert charts.selected_frame({"selection": {"points": []}}) is None
    event = {"selection": {"points": [{"x": 1.2, "customdata": [12, "a.jpg"]}]}}
    assert charts.selected_frame(event) == 12
    assert charts.selected_frame({"selection": {"points": [{"x": 1}, {"customdata": ["7", "b"]}]}}) == 7


# -- results ----------------------------------------------------------------------------------------
def test_row_of_frame_picks_the_nearest_recorded_frame():
    from dashboard.results import row_of_frame

    fi = np.array([0, 5, 10, 20])
    assert [row_of_frame(fi, f) for f in (-3, 0, 2, 3, 7, 14, 16, 99)] == [0, 0, 0, 1, 1, 2, 3, 3]
    with pytest.raises(ValueError):
        row_of_frame(np.array([], np.int64), 3)


def test_make_sampling():
    from dashboard.results import make_sampling

    assert make_sampling("every").mode == "every"
    assert make_sampling("stride", stride=3).stride == 3
    assert make_sampling("fps", fps=2).fps == 2.0
    assert make_sampling("auto", max_interval_s=2).max_interval_s == 2.0
    with pytest.raises(InvalidArgumentError):
        make_sampling("stride", stride=0)
    with pytest.raises(ValueError):
        make_sampling("magic")


def test_segment_rows_and_frame_matches(index, image_folder, shots_video, extractor):
    from conftest import TEST_THRESHOLD
    from core.matching.indexing import index_images
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.runs import load_run
    from core.matching.sampling import Sampling
    from dashboard.results import frame_matches, image_labels, run_label, run_summary, segment_rows

    index_images(index, "c", [image_folder.folder], extractor)
    summary = match_video(
        index,
        shots_video.path,
        "c",
        extractor,
        sampling=Sampling.every(),
        params=MatchParams(threshold=TEST_THRESHOLD, top_k=2),
    )
    view = load_run(index, summary.run_id)
    rows = segment_rows(view, index.get_thumbnails([s.image_id for s in view.segments]))
    assert [r["image"] for r in rows] == ["alpha.jpg", "beta.png", "gamma.jpg"]
    assert rows[0]["from"] == "0:00.0" and rows[0]["to"] == "0:01.1"
    assert rows[0]["preview"].startswith("data:image/jpeg;base64,")
    assert list(rows[0])[:6] == ["preview", "image", "from", "to", "peak", "mean"]
    top = frame_matches(view, 0)
    assert [m.rank for m in top] == [1, 2] and top[0].name == "alpha.jpg" and top[0].score > TEST_THRESHOLD
    assert set(image_labels(view).values()) >= {"alpha.jpg", "beta.png", "gamma.jpg"}
    assert run_label(index.get_run(summary.run_id)).startswith(f"#{summary.run_id} · shots.mp4 → c · done")
    assert "40 frames with results" in run_summary(view) and "every frame" in run_summary(view)


# -- media ------------------------------------------------------------------------------------------
def test_read_frame_seeks_to_the_right_frame(shots_video):
    from core.media.video import iter_frames
    from dashboard.media import read_frame

    frames = {f.index: f for f in iter_frames(shots_video.path)}
    for i in (0, 1, 13, 27, 39):
        got = read_frame(shots_video.path, i, frames[i].time_s, max_width=None)
        np.testing.assert_array_equal(got, frames[i].rgb)
    small = read_frame(shots_video.path, 5, frames[5].time_s, max_width=100)
    assert small.shape[1] == 100


def test_read_frame_of_a_missing_video(tmp_path):
    from dashboard.media import read_frame

    with pytest.raises(VideoOpenError, match="file not found"):
        read_frame(tmp_path / "gone.mp4", 0, 0.0)


def test_human_size():
    from dashboard.media import human_size

    assert human_size(512) == "512 bytes" and human_size(1_500_000) == "1.5 MB"


# -- model status -----------------------------------------------------------------------------------
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


def test_core_never_imports_streamlit():
    root = Path(__file__).resolve().parents[1]
    offenders = [p.name for p in (root / "core").glob("*.py") if "streamlit" in p.read_text()]
    assert offenders == []
