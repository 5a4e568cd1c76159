"""Run a producer in a background thread so that decoding overlaps with model inference."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, err: BaseException) -> None:
        self.err = err


def background(items: Iterable[T], maxsize: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a daemon thread, at most ``maxsize`` items ahead of the consumer.

    Exceptions raised by the producer are re-raised in the consumer. When the consumer stops
    early (break, exception, generator closed), the producer is told to stop and is joined.
    """
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(_Failure(err))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()
        put(_DONE)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.err
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)
