"""What one benchmark mode measures with (counts, models, videos), and where those are cached.

:class:`Settings` travels to every measurement's process as JSON (:func:`bench.harness.measure`);
:func:`model_folder` and :func:`bench_video` build a mode's models and videos the first time and
find them in the cache after that.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from bench import proxy
from bench import synthetic as syn


@dataclass(frozen=True)
class Settings:
    """Counts and models of one benchmark mode."""

    mode: str = "full"
    baseline_frames: int = 8
    every_frames: int = 16
    index_images: int = 8
    numerics_frames: int = 8
    search_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    search_sqlite_max: int = 1_000_000  # larger sizes are searched in memory only
    search_batches: tuple[int, ...] = (1, 8, 64)
    memory_repeat: int = 4
    scale_sizes: tuple[int, ...] = (100_000, 1_000_000)  # collections for the scale section
    scale_compare_size: int = 20_000  # vectors for the comparison of libraries
    scale_crossover_sizes: tuple[int, ...] = (10_000, 30_000, 100_000, 300_000, 1_000_000)
    scale_writer_frames: int = 108_000  # one hour at 30 fps
    inline: bool = False  # run measurements in this process (smoke)
    big_model: str = "vitl"  # "vitl" or "tiny"
    small_model: str = "small"  # "small" or "tiny"
    proxy_model: str = "small-trained"  # "small-trained" or "tiny-trained" (bench.proxy)
    plan: str = "benchmark"  # "benchmark" or "smoke"
    int8: bool = True
    cache: str = ""

    @classmethod
    def for_mode(cls, mode: str) -> Settings:
        if mode == "full":
            return cls()
        if mode == "quick":
            return cls(
                mode="quick",
                baseline_frames=6,
                every_frames=12,
                index_images=4,
                numerics_frames=4,
                search_sizes=(10_000, 100_000, 1_000_000),
                search_sqlite_max=100_000,
                scale_sizes=(100_000,),
                scale_compare_size=20_000,
                scale_crossover_sizes=(10_000, 100_000, 300_000),
            )
        if mode == "smoke":
            return cls(
                mode="smoke",
                baseline_frames=3,
                every_frames=6,
                index_images=3,
                numerics_frames=2,
                search_sizes=(1_000, 5_000),
                search_sqlite_max=5_000,
                search_batches=(1, 8),
                memory_repeat=2,
                scale_sizes=(3_000,),
                scale_compare_size=1_000,
                scale_crossover_sizes=(1_000, 3_000),
                scale_writer_frames=3_000,
                inline=True,
                big_model="tiny",
                small_model="tiny",
                proxy_model="tiny-trained",
                plan="smoke",
            )
        raise ValueError(f"unknown mode {mode!r}")

    @classmethod
    def from_dict(cls, raw: dict) -> Settings:
        """The settings back from their JSON form (``dataclasses.asdict``; lists become tuples)."""
        return cls(
            **{
                f.name: tuple(raw[f.name]) if isinstance(raw[f.name], list) else raw[f.name]
                for f in fields(cls)
            }
        )


def video_plan(settings: Settings) -> syn.VideoPlan:
    return syn.benchmark_plan() if settings.plan == "benchmark" else syn.smoke_plan()


def cache_dir(settings: Settings) -> Path:
    return Path(settings.cache) if settings.cache else syn.cache_dir()


def model_kind(settings: Settings, which: str) -> str:
    """This mode's model kind for ``big`` / ``small`` / ``proxy``; any other name is a kind already."""
    return {"big": settings.big_model, "small": settings.small_model, "proxy": settings.proxy_model}.get(
        which, which
    )


def model_folder(settings: Settings, which: str) -> Path:
    """The model folder for ``big`` / ``small`` / ``proxy`` (this mode's models) or a model kind."""
    kind = model_kind(settings, which)
    cache = cache_dir(settings)
    if kind == "vitl":
        return syn.build_vitl(cache / "vitl14-random")
    if kind == "vitl-outliers":  # the int8 bar: every block contributes, outlier activations
        return syn.build_vitl_outliers(cache / "vitl14-ls1-outliers")
    if kind == "tiny-outliers":  # its smoke-test counterpart (SwiGLU like the default model)
        return syn.build_model(cache / "tiny-outliers", {**syn.TINY, "use_swiglu_ffn": True}, outliers=True)
    if kind == "small":
        return syn.build_small(cache / "small-random")
    if kind == "small-trained":
        return proxy.build_trained(cache / "small-trained")
    if kind == "tiny-trained":  # its smoke-test counterpart: a few steps, seconds
        return syn.build_model(cache / "tiny-trained", syn.TINY, training=proxy.SMOKE_TRAINING)
    return syn.build_tiny(cache / "tiny-random")


def bench_video(settings: Settings, repeat: int = 1) -> syn.BenchVideo:
    plan = video_plan(settings)
    return syn.render_video(plan.repeated(repeat) if repeat > 1 else plan, cache_dir(settings) / "videos")
