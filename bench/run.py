"""The benchmark: how fast the pipeline covers a video, how much it agrees with fp32 every-frame
analysis, and what indexing, memory and search cost.

Run it from the repository root::

    python -m bench            # the full run, every section (≈ 40 min on 2 CPU cores, README)
    python -m bench --quick    # smaller counts
    python -m bench --smoke    # tiny model, tiny video, about a minute (what CI runs)
    python -m bench --sections speed,agreement   # some sections (the six before regions: ≈ 9 min)

Results go to ``bench/results/latest.json`` and ``bench/results/latest.md`` (``--out`` to
change the folder). Every measurement of the full and quick runs happens in its own Python
process, so that its peak RSS is its own and no cache or allocator state carries over; the
smoke run stays in one process (peak RSS is then sampled, not exact).

This module is the entry point. A mode's counts, models and videos are in :mod:`bench.settings`;
how one measurement runs (its process, timing, peak RSS) in :mod:`bench.harness`; the
measurements in :mod:`bench.measurements` (and :mod:`bench.regions`, :mod:`bench.scale`); the
sections that combine them in :mod:`bench.sections`; the targets and the Markdown in
:mod:`bench.report`.

Sections (``--sections`` picks some):

- ``speed``: the machine's GEMM ceiling per precision (:mod:`bench.limits`), then the plain
  loop of the original examples (PIL + image processor per frame, batch 1, fp32) against the
  pipeline analysing every frame and with its default sampling, in fp32 and in the other
  precisions, on the same video and the same architecture as the default model (random
  weights); each path as a share of its precision's ceiling, model load apart, and the fp32
  default projected to the other CPU kinds of FACTS.md;
- ``numerics``: CLS cosine of each reduced precision against fp32 on the same frames, on a
  ViT-L with injected outlier activations (the int8 bar) and on the small model;
- ``agreement``: share of frames whose best match equals fp32 every-frame analysis (a small
  random Dinov2, whose features do rank near-duplicate pictures): pipeline runs on the
  benchmark video, and the default sampling replayed on held-out generated videos, as that
  model and as the trained proxy of :mod:`bench.proxy` see them (:mod:`bench.agreement`);
- ``indexing``: images per second, product path against the plain loop;
- ``memory``: peak RSS matching the video and its 4× longer version;
- ``search``: SQLite load time and top-5 latency per frame at growing collection sizes;
- ``regions``: region mode (``match --regions``, :mod:`bench.regions`) against the global
  mode on pictures filling part of the frame: recall and precision at equal false-positive
  rates (the small model and the trained proxy), and the cost per frame as a ratio (the big
  model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from bench.harness import child, machine_info, quiet_libraries
from bench.report import markdown, targets
from bench.sections import SECTION_FUNCS
from bench.settings import Settings, bench_video, model_folder

SECTIONS = tuple(SECTION_FUNCS)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run(
    settings: Settings, sections: tuple[str, ...], out_dir: Path, log: Callable[[str], None] = print
) -> dict:
    """Run the sections, write ``latest.json`` and ``latest.md`` to ``out_dir``, return the results."""
    quiet_libraries()
    t0 = time.perf_counter()
    log("preparing models and videos (cached after the first run)")
    model_folder(settings, "big")
    model_folder(settings, "small")
    bench_video(settings)
    if "memory" in sections:
        bench_video(settings, settings.memory_repeat)
    results: dict = {
        "settings": asdict(settings),
        "machine": machine_info(),
        "sections": {},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for name in sections:
        t = time.perf_counter()
        results["sections"][name] = SECTION_FUNCS[name](settings, log)
        results["sections"][name]["section_wall_s"] = round(time.perf_counter() - t, 1)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results["total_wall_s"] = round(time.perf_counter() - t0, 1)
    results["loadavg_at_end"] = list(os.getloadavg())
    results["targets"] = targets(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=1, default=_json_default))
    (out_dir / "latest.md").write_text(markdown(results))
    return results


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller counts")
    mode.add_argument("--smoke", action="store_true", help="tiny model and video, about a minute (CI)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="results folder (default: bench/results)"
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 rows (where auto is not int8)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="models and videos cache (default ~/.cache/webssl-lens-bench)",
    )
    args = parser.parse_args(argv)
    settings = Settings.for_mode("smoke" if args.smoke else "quick" if args.quick else "full")
    if args.no_int8:
        settings = replace(settings, int8=False)
    if args.cache:
        settings = replace(settings, cache=str(args.cache))
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = run(settings, sections, args.out, log)
    print(markdown(results))
    print(
        f"\nwritten: {args.out / 'latest.json'}, {args.out / 'latest.md'} ({results['total_wall_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
