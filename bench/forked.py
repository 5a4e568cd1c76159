"""Work in forked children, for the reliability benchmark (:mod:`bench.reliability`).

Every scenario's work runs in a process forked from the parent before it does any model or image
work, so a child starts in milliseconds and a kill is a real ``SIGKILL`` of a separate process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queues
from collections.abc import Callable
from typing import Any

CTX = mp.get_context("fork")


def quiet() -> None:
    """In a child: no log output (the parent reports), and never a download."""
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(target: Callable, *args, timeout: float = 600) -> int:
    """Run ``target(*args)`` in a forked child to its end; returns its exit code."""
    proc = CTX.Process(target=target, args=args)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"{target.__name__} did not finish in {timeout} s")
    return proc.exitcode


def collect(target: Callable, *args, timeout: float = 600) -> list[Any]:
    """Run ``target(*args, queue)`` in a forked child and return what it put on ``queue``, up to
    the ``None`` it puts last.

    Raises:
        TimeoutError: nothing came for ``timeout`` seconds.
        RuntimeError: the child failed (its items so far are lost with it).
    """
    queue = CTX.Queue()
    proc = CTX.Process(target=target, args=(*args, queue))
    proc.start()
    items = []
    try:
        while (item := queue.get(timeout=timeout)) is not None:
            items.append(item)
    except queues.Empty as err:  # the child hung, or died before its last item
        proc.kill()
        proc.join()
        raise TimeoutError(
            f"{target.__name__} sent nothing for {timeout} s (exit code {proc.exitcode})"
        ) from err
    proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed (exit code {proc.exitcode})")
    return items
