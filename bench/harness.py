"""How the benchmark measures: each measurement in a fresh process, timed with the CPU that
other processes used meanwhile, with its peak RSS, and the machine it ran on.

A measurement is a function ``(settings, arg) -> dict`` listed by name in the ``MEASUREMENTS``
table of one of :data:`MEASUREMENT_MODULES`; :func:`measure` runs it in a child process
(``python -m bench.run --child``) unless the settings say inline (the smoke run).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench import synthetic as syn
from bench.settings import Settings

MEASUREMENT_MODULES = ("bench.measurements", "bench.regions", "bench.scale")


def _cpu_busy_s() -> float:
    """System-wide busy CPU seconds so far (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:9]]
    except OSError:
        return float("nan")
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class RssSampler:
    """Largest RSS of this process while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


@dataclass
class Timing:
    """Wall time of a block, with the CPU that other processes used meanwhile."""

    wall_s: float = 0.0
    own_cpu_s: float = 0.0
    foreign_cores: float = 0.0  # average number of cores busy with other processes

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    t = Timing()
    busy0, own0, w0 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    yield t
    t.wall_s = time.perf_counter() - w0
    t.own_cpu_s = _own_cpu_s() - own0
    if t.wall_s > 0:
        t.foreign_cores = max(0.0, (_cpu_busy_s() - busy0 - t.own_cpu_s) / t.wall_s)


def peak_rss_mb(sampler: RssSampler | None) -> float:
    if sampler is not None:
        return sampler.peak / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine_info() -> dict:
    import torch
    import transformers

    from core.model.precision import cpu_has_native_bf16

    flags = ""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    mem_gb = None
    with contextlib.suppress(ImportError):
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx2": " avx2" in flags,
        "avx512f": " avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "native_bf16": cpu_has_native_bf16(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "os": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
    }


# -- a model under measurement ---------------------------------------------------------------


def quiet_libraries() -> None:
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # quantised models of the benchmark's random weights: kept with its other models
    os.environ.setdefault("WEBSSL_INT8_CACHE", str(syn.cache_dir() / "int8"))
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def load_extractor(folder: Path, precision: str):
    from core.model.features import FeatureExtractor

    return FeatureExtractor.load(folder, device="cpu", precision=precision)


def resolved_auto() -> str:
    import torch

    from core.model.precision import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))


def warm(fx, height: int, width: int) -> None:
    """One forward pass before timing (allocations, kernel selection), like a model that has
    served before; every measured path gets one."""
    fx.forward(fx.preprocess([np.zeros((height, width, 3), np.uint8)]))


# -- one measurement, in its own process ----------------------------------------------------
def _measurement(name: str) -> Callable[[Settings, dict], dict]:
    """The measurement called ``name``, from the first of :data:`MEASUREMENT_MODULES` that lists it
    (imported here, so that a child process imports only what it runs)."""
    for module in MEASUREMENT_MODULES:
        table = importlib.import_module(module).MEASUREMENTS
        if name in table:
            return table[name]
    raise KeyError(f"no measurement {name!r} in {', '.join(MEASUREMENT_MODULES)}")


def measure(settings: Settings, name: str, arg: dict | None = None) -> dict:
    """Run one measurement, in a child process unless the settings say inline."""
    arg = arg or {}
    if settings.inline:
        with RssSampler() as rss:
            result = _measurement(name)(settings, arg)
        result["peak_rss_mb"] = round(peak_rss_mb(rss), 1)
        result["inline"] = True
        return result
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"settings": asdict(settings), "name": name, "arg": arg}))
        proc = subprocess.run(
            [sys.executable, "-m", "bench.run", "--child", str(spec), str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
            raise RuntimeError(f"measurement {name} {arg} failed (exit {proc.returncode}):\n{tail}")
        return json.loads(out.read_text())


def child(spec_path: str, out_path: str) -> int:
    """The child process's side of :func:`measure`: run the measurement its spec names."""
    quiet_libraries()
    spec = json.loads(Path(spec_path).read_text())
    settings = Settings.from_dict(spec["settings"])
    result = _measurement(spec["name"])(settings, spec["arg"])
    result["peak_rss_mb"] = round(peak_rss_mb(None), 1)
    Path(out_path).write_text(json.dumps(result))
    return 0
