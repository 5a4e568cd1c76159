"""bench.forked: the reliability benchmark's work in forked children."""

from __future__ import annotations

import os
import time

import pytest

from bench.forked import collect, run


def _sends(n: int, queue) -> None:
    for i in range(n):
        queue.put({"i": i, "pid": os.getpid()})
    queue.put(None)


def _fails_after_one(queue) -> None:
    queue.put("first")
    queue.put(None)
    raise SystemExit(3)


def _silent(queue) -> None:
    time.sleep(30)


def _exits(code: int) -> None:
    raise SystemExit(code)


def test_collect_returns_what_the_child_sent_from_another_process():
    items = collect(_sends, 3)
    assert [item["i"] for item in items] == [0, 1, 2]
    assert {item["pid"] for item in items} != {os.getpid()}


def test_a_failed_child_is_an_error_not_a_short_list():
    with pytest.raises(RuntimeError, match=r"_fails_after_one failed \(exit code 3\)"):
        collect(_fails_after_one)


def test_a_silent_child_times_out_and_is_killed():
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="_silent sent nothing for 0.5 s"):
        collect(_silent, timeout=0.5)
    assert time.perf_counter() - start < 10


def test_run_gives_the_exit_code():
    assert run(_exits, 0) == 0
    assert run(_exits, 5) == 5
