"""Shared fixtures: a tiny random-weight DINOv2 saved to disk, synthetic images and videos, and the
helpers that several test files use.

Nothing here downloads anything: the model is built from a ``Dinov2Config`` and loaded back
through the same ``from_pretrained`` path the product uses for Hub models.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from core.matching.params import MatchParams
from db import Index, NewImage, Segment

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `auto` picks int8 on CPUs with VNNI/AMX: the int8 models the tests build stay out of the user's cache
os.environ.setdefault("WEBSSL_INT8_CACHE", tempfile.mkdtemp(prefix="webssl-lens-int8-"))

# -- a tiny model ---------------------------------------------------------------------------

TEST_THRESHOLD = 0.95  # separates near-duplicates from other images for the tiny model (bench.synthetic.TINY)


def build_tiny_model(folder: Path, *, seed: int = 0, **overrides) -> Path:
    """Save a random-weight Dinov2Model plus a DINOv2-style preprocessor config to ``folder``."""
    from bench.synthetic import build_tiny

    return build_tiny(folder, seed=seed, **overrides)


def build_registers_model(folder: Path, registers: int = 4) -> Path:
    """Save a random-weight Dinov2WithRegistersModel (weights and config only) to ``folder``."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    cfg = Dinov2WithRegistersConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_register_tokens=registers,
    )
    Dinov2WithRegistersModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-dinov2"))


@pytest.fixture(scope="session")
def extractor(tiny_model_dir):
    from core.model.features import FeatureExtractor

    return FeatureExtractor.load(tiny_model_dir, device="cpu", precision="fp32")


# -- synthetic images -----------------------------------------------------------------------


def pattern_image(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A distinctive RGB picture: smooth colour blobs + shapes, different for every seed."""
    import cv2

    h, w = size
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            cv2.circle(img, center, int(rng.integers(10, h // 3)), color, -1)
        else:
            x2, y2 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.rectangle(img, center, (x2, y2), color, -1)
    return np.ascontiguousarray(img)


@dataclass(frozen=True)
class ImageSet:
    folder: Path
    paths: list[Path]
    arrays: list[np.ndarray]


@pytest.fixture
def image_folder(tmp_path) -> ImageSet:
    """Four distinct images (JPEG and PNG, one in a sub-folder)."""
    from PIL import Image

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    names = ["alpha.jpg", "beta.png", "sub/gamma.jpg", "delta.png"]
    paths, arrays = [], []
    for i, name in enumerate(names):
        arr = pattern_image(100 + i)
        path = folder / name
        Image.fromarray(arr).save(path, quality=95)
        paths.append(path)
        arrays.append(np.asarray(Image.open(path).convert("RGB")))
    return ImageSet(folder, paths, arrays)


# -- synthetic videos -----------------------------------------------------------------------


def write_video(path: Path, frames, fps: float = 10.0) -> Path:
    from core.media.writer import VideoWriter

    with VideoWriter(path, fps=fps, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def shot_frames(images: list[np.ndarray], plan: list[tuple[int, int]], size=(240, 320), seed: int = 7):
    """Frames for a list of shots (image number or -1 for noise, frame count); slight drift per frame."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    for image_no, count in plan:
        for j in range(count):
            if image_no < 0:
                frame = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (w, h))
            else:
                src = cv2.resize(images[image_no], (w + 8, h + 8), interpolation=cv2.INTER_AREA)
                dx = j % 8
                frame = src[4 : 4 + h, dx : dx + w]
            yield np.ascontiguousarray(frame)


@dataclass(frozen=True)
class VideoCase:
    path: Path
    fps: float
    plan: list[tuple[int, int]]  # (image number or -1, frames)

    @property
    def frame_count(self) -> int:
        return sum(n for _, n in self.plan)

    def expected_image(self, frame_index: int) -> int:
        start = 0
        for image_no, n in self.plan:
            if frame_index < start + n:
                return image_no
            start += n
        raise IndexError(frame_index)


VIDEO_PLAN = [(0, 12), (-1, 6), (1, 10), (2, 8), (-1, 4)]


@pytest.fixture
def shots_video(tmp_path, image_folder) -> VideoCase:
    """10 fps H.264 video: image 0, noise, image 1, image 2, noise (40 frames)."""
    path = write_video(tmp_path / "shots.mp4", shot_frames(image_folder.arrays, VIDEO_PLAN), fps=10)
    return VideoCase(path, 10.0, VIDEO_PLAN)


# -- the index ------------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path):
    from db import Index

    idx = Index(tmp_path / "index.sqlite")
    yield idx
    idx.close()


# -- images on disk (tests/test_images.py, tests/test_files.py) -----------------------------


@pytest.fixture
def rgb_array() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


@pytest.fixture
def png_file(tmp_path: Path, rgb_array: np.ndarray) -> Path:
    path = tmp_path / "picture.png"
    Image.fromarray(rgb_array).save(path)
    return path


# -- rows of the index (tests/test_db_*.py) -------------------------------------------------


DIM = 8
MODEL = "facebook/webssl-dino300m-full2b-224"
PREPROCESSING = json.dumps({"size": 224, "mean": [0.485, 0.456, 0.406]})


def vector(seed: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def new_image(i: int, *, path: str | None = None, sha256: str | None = None, dim: int = DIM) -> NewImage:
    return NewImage(
        path=path or f"/photos/img_{i:04d}.jpg",
        sha256=sha256 or f"{i:064x}",
        width=640 + i,
        height=480,
        thumbnail=b"\xff\xd8jpeg-%d" % i,
        embedding=vector(i, dim),
    )


def count_rows(index: Index, table: str) -> int:
    return index.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _segment(image_id: int, start: int, end: int, peak: float = 0.9) -> Segment:
    return Segment(image_id, start, end, start / 25, end / 25, peak, peak - 0.1, end - start + 1)


@pytest.fixture
def collection(index):
    return index.create_collection("posters", MODEL, PREPROCESSING, DIM)


def add_video(index: Index, path: str = "/videos/clip.mp4", sha256: str = "v" * 64, **fields):
    """A video record through the db API (10 s at 25 fps, 1920×1080 unless ``fields`` say otherwise)."""
    record = {
        "fps": 25.0,
        "frame_count": 250,
        "duration_s": 10.0,
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "size_bytes": 123456,
    }
    return index.upsert_video(path=path, sha256=sha256, **{**record, **fields})


@pytest.fixture
def video(index):
    return add_video(index)


@pytest.fixture
def statements(index):
    """The SQL statements the index runs while the test runs."""
    seen: list[str] = []
    index.db.conn.set_trace_callback(seen.append)
    yield seen
    index.db.conn.set_trace_callback(None)


# -- a matched collection (tests/test_pipeline.py, tests/test_runs.py) ----------------------


PARAMS = MatchParams(threshold=TEST_THRESHOLD, top_k=3, gap_tolerance_s=0.3)


@pytest.fixture
def indexed(index, extractor, image_folder):
    from core.matching.indexing import index_images

    index_images(index, "shots", [image_folder.folder], extractor)
    return index


# -- rendered videos (tests/test_*_video.py) ------------------------------------------------


def read_video(path: Path) -> tuple[dict, list[np.ndarray]]:
    """Codec facts and all frames (RGB) of a rendered file, as a browser would get them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "frames": stream.frames,
            "size": (stream.width, stream.height),
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return facts, frames


# -- the command line (tests/test_cli_*.py) -------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, tiny_model_dir, monkeypatch):
    db = tmp_path / "cli.sqlite"
    monkeypatch.setenv("WEBSSL_DB", str(db))
    monkeypatch.setenv("WEBSSL_MODEL", str(tiny_model_dir))
    return db


# -- every test -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Never touch the user's real data folder or database."""
    monkeypatch.setenv("WEBSSL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WEBSSL_DB", raising=False)
    monkeypatch.delenv("WEBSSL_MODEL", raising=False)


@pytest.fixture(autouse=True)
def _no_unexpected_errors(caplog):
    """Fail any test that logs an ERROR it did not ask for (tests that expect one clear caplog)."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("unexpected ERROR log: " + "; ".join(r.getMessage() for r in errors))


# -- a run written through the db API, without the model (tests/test_timelines.py, test_truth.py) --


def synthetic_run(
    index: Index,
    best: list[int],
    scores: list[float],
    *,
    paths: tuple[str, ...] = ("/photos/astronaut.jpg", "/photos/poster.png"),
    fps: float = 25.0,
    threshold: float = 0.5,
    gap_tolerance_s: float = 0.0,
):
    """A finished run of one frame per entry: frame i's best match is ``paths[best[i]]`` (-1: no
    candidate) with ``scores[i]``; returns its :class:`core.matching.runs.RunView`."""
    from core.matching.runs import finish_run

    coll = index.create_collection("posters", MODEL, PREPROCESSING, DIM)
    ids = index.add_images(coll.id, [new_image(i, path=p) for i, p in enumerate(paths)])
    n = len(best)
    video = index.upsert_video(
        path="/videos/talk.mp4",
        sha256="t" * 64,
        fps=fps,
        frame_count=n,
        duration_s=n / fps,
        width=640,
        height=360,
        rotation=0,
        size_bytes=1,
    )
    params = MatchParams(threshold=threshold, top_k=1, gap_tolerance_s=gap_tolerance_s)
    run_id = index.create_run(
        video_id=video.id, collection_id=coll.id, model_id=MODEL, params=params.to_dict()
    )
    frames = np.arange(n)
    image_ids = np.array([[ids[b] if b >= 0 else -1] for b in best], np.int64)
    values = np.array([[s if b >= 0 else np.nan] for b, s in zip(best, scores, strict=True)], np.float32)
    index.add_frame_results(run_id, frames, frames / fps, frames, image_ids, values)
    return finish_run(index, run_id, params, {})
