"""How the process's C heap treats the activations a forward pass frees (Linux, glibc).

A forward pass of ViT-L/14 on 8 frames allocates and frees activations of 8-23 MB each, about
ten per block. glibc's malloc serves a block above its mmap threshold (128 KiB at start, rising
with the blocks freed to at most 32 MiB) with a fresh mapping that it unmaps on free, and it
hands the top of its heap back to the system beyond its trim threshold. So each pass faulted
about 1.4 GB of zeroed pages in again (4.1 GB at a batch of 16): 5-12 % of an fp32 pass on
2 cores (AMD EPYC, AVX-512; every-frame fp32 1.06x in ``python -m bench --sections speed``).
With blocks below :data:`MMAP_THRESHOLD` served from the heap and up to
:data:`TRIM_THRESHOLD` of free memory kept at its top, each pass reuses the pages of the last
one: no faults, for about 90 MB more resident memory at a batch of 8.

The thresholds are process-wide; :func:`keep_activation_memory` sets them once, when a model
is loaded on the CPU. Other C libraries (musl, macOS, Windows) are left alone.
``$WEBSSL_HEAP=system`` keeps glibc's own behaviour.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

from core.config import default_heap_policy

logger = logging.getLogger(__name__)

POLICIES = ("keep", "system")
#: blocks below this come from the heap, so freeing one keeps its pages for the next pass
MMAP_THRESHOLD = 64 << 20
#: free memory at the heap's top kept for the next pass rather than handed back
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h

_lock = threading.Lock()
_state: bool | None = None  # None: not decided yet in this process


def glibc_malloc_available() -> bool:
    """Whether this process allocates through glibc's malloc (whose thresholds can be set)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def keep_activation_memory(policy: str | None = None) -> bool:
    """Keep the memory a forward pass frees for the next one, where ``policy`` (default
    ``$WEBSSL_HEAP`` or ``keep``) says so and the C library allows it; the first call in a
    process decides. Returns whether the heap keeps it.

    Raises:
        ValueError: ``policy`` is not one of :data:`POLICIES`.
    """
    global _state
    policy = policy or default_heap_policy()
    if policy not in POLICIES:
        raise ValueError(f"unknown heap policy {policy!r} ($WEBSSL_HEAP); use one of {', '.join(POLICIES)}")
    with _lock:
        if _state is None:
            _state = policy == "keep" and glibc_malloc_available() and _set_thresholds()
        return _state


def _set_thresholds() -> bool:
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as err:
        logger.debug("cannot set malloc's thresholds: %s", err)
        return False
    logger.debug(
        "heap: blocks below %d MiB reused, %d MiB kept free", MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20
    )
    return ok
