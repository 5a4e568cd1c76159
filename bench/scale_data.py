"""Dashboard-scale data, written through the project's own db API: a large collection and a long
match run (with its video), to measure pages and interactions at real sizes.

>>> data = build(Path("/tmp/scale"), images=100_000, frames=108_000)   # doctest: +SKIP

The run is what a real one looks like to the dashboard: shots of a few seconds, each showing one
of ``shown`` collection images above the threshold (with noise), separated by stretches that
match nothing; every frame has its top-k. No model runs: the embeddings are random unit
vectors, and the video is a tiny synthetic H.264 file of the right length (its frames are what
the frame inspector shows). A large collection gets its approximate search index, as indexing
leaves it.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

THRESHOLD = 0.6
DIM = 1024
MODEL = "facebook/webssl-dino300m-full2b-224"


@dataclass(frozen=True)
class ScaleData:
    db_path: Path
    video_path: Path
    run_id: int
    collection: str
    images: int
    frames: int
    fps: float


def _searchable(db_path: Path) -> None:
    """Leave the collection as ``python -m core index`` does: with its approximate index file
    when it is large enough to need one (:func:`core.matching.search.maintain_vectors`; once:
    96 minutes for 1M vectors on 2 cores here, part of it beside the test suite), so that the
    dashboard's neighbours and search are measured as users get them."""
    from core.matching.search import open_search
    from db import Index

    with Index(db_path) as index:
        for coll in index.list_collections():
            open_search(index, coll, maintain=True)


def _thumbnails(count: int = 64) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(5)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        w, h = (int(v) for v in rng.integers(80, 256, 2))
        Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h)).save(
            buf, "JPEG", quality=70
        )
        out.append(buf.getvalue())
    return out


def _video(path: Path, frames: int, fps: float) -> None:
    from core.media.writer import VideoWriter

    frame = np.zeros((36, 64, 3), np.uint8)
    with VideoWriter(path, fps=fps, crf=35, preset="ultrafast") as writer:
        for i in range(frames):
            frame[:] = ((i // 90) * 37 % 256, (i // 90) * 91 % 256, 120)
            frame[10:26, (i % 48) : (i % 48) + 16] = 255
            writer.write(frame)


def build(
    folder: Path,
    *,
    images: int,
    frames: int,
    fps: float = 30.0,
    top_k: int = 5,
    shown: int = 163,
    seed: int = 0,
) -> ScaleData:
    """The collection, video and run in ``folder`` (reused when already built with these sizes)."""
    from core.matching.params import MatchParams
    from core.matching.pipeline import register_video
    from core.matching.runs import finish_run
    from core.matching.sampling import Sampling
    from core.media.video import probe_video
    from db import Index, NewImage

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "scale.json"
    wanted = {"images": images, "frames": frames, "fps": fps, "top_k": top_k, "shown": shown, "seed": seed}
    db_path, video_path = folder / "scale.sqlite", folder / "long.mp4"
    if stamp.exists() and json.loads(stamp.read_text()).get("wanted") == wanted and db_path.exists():
        _searchable(db_path)  # data built before the search index was part of it
        return ScaleData(
            **{**json.loads(stamp.read_text())["data"], "db_path": db_path, "video_path": video_path}
        )
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    _video(video_path, frames, fps)
    thumbs = _thumbnails()
    prep = json.dumps({"crop_hw": [224, 224], "shortest_edge": 256})
    with Index(db_path) as index:
        coll = index.create_collection("scale", MODEL, prep, DIM)
        ids: list[int] = []
        for start in range(0, images, 5000):
            n = min(5000, images - start)
            vectors = rng.standard_normal((n, DIM), dtype=np.float32)
            batch = [
                NewImage(
                    f"/collection/scale/img_{start + i:07d}.jpg",
                    f"{start + i:064x}",
                    640,
                    480,
                    thumbs[(start + i) % len(thumbs)],
                    vectors[i],
                )
                for i in range(n)
            ]
            ids += index.add_images(coll.id, batch)
        info = probe_video(video_path)
        video = register_video(index, info)
        params = MatchParams(threshold=THRESHOLD, top_k=top_k)
        run_params = {
            **params.to_dict(),
            "sampling": Sampling.every().to_dict(),
            "embed_key": "scale",
            "precision": "fp32",
        }
        run_id = index.create_run(video_id=video.id, collection_id=coll.id, model_id=MODEL, params=run_params)
        on_screen = rng.choice(np.asarray(ids), size=shown, replace=False)
        popularity = rng.zipf(1.6, shown).astype(np.float64)
        popularity /= popularity.sum()
        frame = 0
        chunk_ids, chunk_scores = [], []

        def flush(until: int) -> None:
            nonlocal chunk_ids, chunk_scores
            if not chunk_ids:
                return
            ids_arr, sc_arr = np.concatenate(chunk_ids), np.concatenate(chunk_scores)
            idx = np.arange(until - len(ids_arr), until)
            index.add_frame_results(run_id, idx, idx / fps, idx, ids_arr, sc_arr)
            chunk_ids, chunk_scores = [], []

        while frame < frames:
            length = int(min(frames - frame, rng.integers(int(2 * fps), int(12 * fps))))
            others = rng.choice(np.asarray(ids), size=(length, top_k))
            scores = np.sort(rng.uniform(0.2, 0.55, (length, top_k)).astype(np.float32), axis=1)[:, ::-1]
            if rng.random() < 0.7:  # a shot showing a collection image, sometimes dipping
                image = rng.choice(on_screen, p=popularity)
                others[:, 0] = image
                scores[:, 0] = np.clip(rng.normal(0.78, 0.08, length), 0.35, 0.99)
            order = np.argsort(-scores, axis=1)
            chunk_ids.append(np.take_along_axis(others, order, 1).astype(np.int64))
            chunk_scores.append(np.take_along_axis(scores, order, 1))
            frame += length
            if sum(len(c) for c in chunk_ids) >= 20_000:
                flush(frame)
        flush(frame)
        finish_run(
            index, run_id, params, {"computed": frames, "cached": 0, "inherited": 0, "decoded": frames}
        )
    _searchable(db_path)
    data = ScaleData(db_path, video_path, run_id, "scale", images, frames, fps)
    plain = {k: v for k, v in asdict(data).items() if k not in ("db_path", "video_path")}
    stamp.write_text(json.dumps({"wanted": wanted, "data": plain}))
    return data
