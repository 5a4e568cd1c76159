"""dashboard.jobs: background jobs, their progress, cancelling and errors."""

from __future__ import annotations

import threading

import pytest

from core.errors import WebSSLError
from core.progress import Cancelled, ProgressReporter
from dashboard.jobs import JobManager, describe_event, format_duration, with_model


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


def test_the_model_loads_inside_the_job_as_its_first_stage(manager):
    """The page used to load the model before the job, and the job said "Starting…" for 11 s."""
    loading, release = threading.Event(), threading.Event()

    def load():
        loading.set()
        assert release.wait(10)
        return "the extractor"

    def work(name, *, extractor, progress, cancel):
        ProgressReporter("matching", "frames", 2, progress, cancel).update(1)
        return (name, extractor)

    job = manager.submit("match", "Matching", with_model(load, work), "clip.mp4")
    assert loading.wait(10)
    assert job.snapshot().message.startswith("Loading model…")
    release.set()
    assert job.wait(10)
    assert job.snapshot().result == ("clip.mp4", "the extractor")


def test_a_job_cancelled_while_its_model_loads_never_starts(manager):
    loading, release = threading.Event(), threading.Event()
    started = []

    def load():
        loading.set()
        assert release.wait(10)
        return "the extractor"

    job = manager.submit("index", "Indexing", with_model(load, lambda **kw: started.append(kw)))
    assert loading.wait(10)
    job.cancel()
    release.set()
    assert job.wait(10)
    assert job.snapshot().status == "cancelled" and started == []


def test_a_stage_without_a_count_reads_as_a_sentence():
    from core.progress import ProgressEvent

    assert (
        describe_event(ProgressEvent("loading model", 0, None, "", "first time"))
        == "Loading model… · first time"
    )
