"""Background jobs for the dashboard: indexing, matching and rendering off the script thread.

Streamlit reruns a page's script on every widget interaction and stops whatever the script
was doing, so long work runs in worker threads owned by one :class:`JobManager` per process
(held by ``st.cache_resource``). A job is a core function called as
``fn(*args, progress=..., cancel=..., **kwargs)``: the manager injects the progress callback
(a :data:`core.progress.ProgressCallback`) and the cancellation event, which every long core
function takes. Pages poll :meth:`Job.snapshot` from a ``st.fragment`` with ``run_every``.
Nothing here imports or calls Streamlit: workers must never touch ``st.*``.

Workers open their own database connections (:func:`with_index`); a job never shares the
page's connection.
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import USER_ERRORS
from core.progress import Cancelled, ProgressEvent, announce

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})

JobFunction = Callable[..., Any]
"""Called as ``fn(progress=callback, cancel=event)`` (other arguments bound at submit)."""


def with_index(db_path: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(index, ...)`` run on the worker's own connection to ``db_path``, closed afterwards."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        from db import Index

        with Index(db_path) as index:
            return fn(index, *args, **kwargs)

    return call


def with_model(load: Callable[[], Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(..., extractor=load())``: the model is loaded inside the job, as its first stage
    ("Loading model…"), so a page never waits for it and the user sees what is happening."""

    @functools.wraps(fn)
    def call(*args: Any, progress=None, cancel=None, **kwargs: Any) -> Any:
        announce(progress, "loading model", "the first time takes a few seconds")
        extractor = load()
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before it started")
        return fn(*args, extractor=extractor, progress=progress, cancel=cancel, **kwargs)

    return call


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A consistent copy of a job's state, safe to read from any thread."""

    id: int
    kind: str
    title: str
    status: JobStatus
    fraction: float | None  # 0..1, or None while the total is unknown
    message: str
    result: Any
    error: str | None
    created: float
    started: float | None
    finished: float | None
    queue_position: int  # queued jobs ahead of this one (0 for the next one, and once running)

    @property
    def active(self) -> bool:
        return self.status not in FINISHED

    @property
    def elapsed_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


class Job:
    """One unit of background work, updated by its worker and read by pages."""

    def __init__(self, job_id: int, kind: str, title: str, fn: JobFunction) -> None:
        self.id = job_id
        self.kind = kind
        self.title = title
        self.fn = fn
        self.cancel_event = threading.Event()
        self._lock = threading.Lock()
        self._status: JobStatus = "queued"
        self._fraction: float | None = 0.0
        self._message = "Waiting for a worker…"
        self._result: Any = None
        self._error: str | None = None
        self._created = time.time()
        self._started: float | None = None
        self._finished: float | None = None
        self._done = threading.Event()
        self._manager: JobManager | None = None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self._status}>"

    # -- called by the worker -------------------------------------------------------------
    def progress(self, event: ProgressEvent) -> None:
        """A :data:`core.progress.ProgressCallback`: records the latest event."""
        self.set_progress(event.fraction, describe_event(event))

    def set_progress(self, fraction: float | None, message: str) -> None:
        with self._lock:
            self._fraction = None if fraction is None else max(0.0, min(1.0, float(fraction)))
            self._message = message

    def _start(self) -> None:
        with self._lock:
            self._status = "running"
            self._started = time.time()
            self._message = "Starting…"

    def _finish(
        self, status: JobStatus, *, result: Any = None, error: str | None = None, message: str = ""
    ) -> None:
        with self._lock:
            self._status = status
            self._result = result
            self._error = error
            self._finished = time.time()
            if status == "done":
                self._fraction = 1.0
            self._message = message or self._message
        self._done.set()

    # -- called by pages ------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop; a queued job is dropped before it starts."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; True if it did within ``timeout``."""
        return self._done.wait(timeout)

    def snapshot(self) -> JobSnapshot:
        position = self._manager.position(self) if self._manager is not None else 0
        with self._lock:
            return JobSnapshot(
                id=self.id,
                kind=self.kind,
                title=self.title,
                status=self._status,
                fraction=self._fraction,
                message=self._message,
                result=self._result,
                error=self._error,
                created=self._created,
                started=self._started,
                finished=self._finished,
                queue_position=position,
            )

    @property
    def status(self) -> JobStatus:
        with self._lock:
            return self._status


def describe_event(event: ProgressEvent) -> str:
    """One line for a progress bar: ``indexing: 120 / 400 images · 3.1 images/s · about 1 min left``,
    or ``Loading model… · detail`` for a stage without a count."""
    if not event.unit:
        return event.headline
    done = f"{event.done:,}" if event.total is None else f"{event.done:,} / {event.total:,}"
    parts = [f"{event.stage.capitalize()}: {done} {event.unit}"]
    if event.rate > 0:
        parts.append(f"{event.rate:.1f} {event.unit}/s")
    eta = event.eta_s
    if eta is not None and event.done < (event.total or 0):
        parts.append(f"about {format_duration(eta)} left")
    if event.message:
        parts.append(event.message)
    return " · ".join(parts)


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 20 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rem = divmod(int(seconds), 3600)
    return f"{hours} h {rem // 60} min"


class JobManager:
    """A queue of jobs served by a fixed number of daemon worker threads.

    One worker (the default) runs one model-heavy job at a time: on a small CPU machine two
    jobs at once are each slower than one after the other, and the queue shows the order.

    Args:
        workers: number of worker threads.
        keep: how many finished jobs to remember (oldest are forgotten first).
    """

    def __init__(self, workers: int = 1, keep: int = 200) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        self.workers = workers
        self.keep = keep
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._waiting: list[Job] = []  # queued jobs in order, for queue positions
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, kind: str, title: str, fn: JobFunction, /, *args: Any, **kwargs: Any) -> Job:
        """Queue ``fn(*args, progress=..., cancel=..., **kwargs)``; returns the job at once.

        ``fn`` returns the job's result. It raises :class:`core.progress.Cancelled` when
        cancelled and one of :data:`core.errors.USER_ERRORS` for expected failures (their
        message is shown to the user as is).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            job = Job(next(self._ids), kind, title, functools.partial(fn, *args, **kwargs))
            job._manager = self
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._ensure_workers()
        self._queue.put(job)
        logger.info("job %d queued: %s", job.id, title)
        return job

    def get(self, job_id: int | None) -> Job | None:
        if job_id is None:
            return None
        with self._lock:
            return self._jobs.get(int(job_id))

    def jobs(self, *, kind: str | None = None, active_only: bool = False) -> list[Job]:
        """Known jobs, newest first."""
        with self._lock:
            found = list(self._jobs.values())
        found = [
            j
            for j in found
            if (kind is None or j.kind == kind) and (not active_only or j.status not in FINISHED)
        ]
        return sorted(found, key=lambda j: j.id, reverse=True)

    def position(self, job: Job) -> int:
        with self._lock:
            try:
                return self._waiting.index(job)
            except ValueError:
                return 0

    def shutdown(self, *, cancel: bool = True, timeout: float = 10.0) -> None:
        """Stop the workers (cancelling running jobs); used by tests and at exit."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
            threads = list(self._threads)
        if cancel:
            for job in jobs:
                job.cancel()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)

    # -- internals ------------------------------------------------------------------------
    def _ensure_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"dashboard-job-worker-{len(self._threads) + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for job in sorted(finished, key=lambda j: j.id)[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job in self._waiting:
                    self._waiting.remove(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        if job.cancel_event.is_set():
            job._finish("cancelled", message="Cancelled before it started.")
            return
        job._start()
        logger.info("job %d started: %s", job.id, job.title)
        try:
            result = job.fn(progress=job.progress, cancel=job.cancel_event)
        except Cancelled as err:
            job._finish("cancelled", message=str(err))
            logger.info("job %d cancelled", job.id)
        except USER_ERRORS as err:
            job._finish("failed", error=str(err), message="Failed.")
            logger.info("job %d failed: %s", job.id, err)
        except (OSError, ValueError) as err:
            # Expected kinds of trouble on a user's files (disk full, unreadable folder, bad
            # option) that core did not wrap: shown as they are, no traceback.
            job._finish("failed", error=f"{type(err).__name__}: {err}", message="Failed.")
            logger.warning("job %d failed: %s", job.id, err)
        except Exception as err:  # noqa: BLE001 - the worker is the thread's edge: record, never die
            logger.exception("job %d crashed", job.id)
            job._finish(
                "failed", error=f"Unexpected error ({type(err).__name__}: {err}); see the server log."
            )
        else:
            job._finish("done", result=result, message="Finished.")
            logger.info("job %d done in %.1f s", job.id, job.snapshot().elapsed_s)
