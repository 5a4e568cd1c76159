"""The ``scale`` section of the benchmark: million-image collections and the single writer.

- **libraries**: usearch, hnswlib and faiss compared on the same vectors (build rate, query
  time at batch 8, recall@5 against exact search, open time), the basis of the choice of
  usearch for :mod:`core.matching.ann`;
- **collections** of 100k and 1M 1024-d embeddings written through ``Index.add_images``, their
  approximate index built through the product's path (``maintain_vectors``); then, each in a
  fresh process: exact search (load, peak RSS, ms per frame at batch 1/8/64) and approximate
  search (open time, peak RSS, ms per frame, recall@5 against the exact answers); then 1,000
  images added and 1,000 removed: what a reader pays for the pending changes, and the merge;
- **cross-over**: exact top-5 per frame at batch 8 over growing in-memory sets, against the
  approximate index's cost at 100k and 1M;
- **writer**: rows per second the single SQLite writer stores (a one-hour video's results, as
  the pipeline and a cluster batch's driver write them).

Vectors are synthetic but not isotropic noise (on which no approximate index works and which
real embeddings are not): cluster centres and offsets with a power-law spectrum (variance of
component i ∝ 1/i), unit length. Queries: 32 near-duplicates of stored rows (frames showing a
known image, cosine ≈ 0.95) and 32 new vectors from the same distribution.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.harness import measure, timed

DIM = 1024
CHUNK = 20_000  # rows per generated chunk (any row can be regenerated from its chunk)
CENTRES = 8192
K = 5


# -- synthetic embeddings --------------------------------------------------------------------
def _scale(dim: int) -> np.ndarray:
    return (np.arange(1, dim + 1, dtype=np.float32) ** -0.5).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _centres(dim: int) -> np.ndarray:
    return np.random.default_rng(123).standard_normal((CENTRES, dim), dtype=np.float32) * _scale(dim)


def embedding_chunk(start: int, n: int, dim: int = DIM, seed: int = 1) -> np.ndarray:
    """Rows ``start .. start + n`` of the synthetic set (``start`` a multiple of :data:`CHUNK`)."""
    rng = np.random.default_rng([seed, start])
    c = rng.integers(0, CENTRES, n)
    x = _centres(dim)[c] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32) * _scale(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embeddings(n: int, dim: int = DIM, seed: int = 1) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        out[start : start + m] = embedding_chunk(start, m, dim, seed)
    return out


def queries(n: int, dim: int = DIM) -> np.ndarray:
    """32 near-duplicates of rows spread over the first ``n`` rows, then 32 new vectors."""
    rng = np.random.default_rng(7)
    rows = np.sort(rng.choice(n, 32, replace=False))
    chunks = {r // CHUNK * CHUNK for r in rows}
    regenerated = {c: embedding_chunk(c, min(CHUNK, n - c), dim) for c in chunks}
    near = np.stack([regenerated[r // CHUNK * CHUNK][r % CHUNK] for r in rows])
    near = near + 0.01 * rng.standard_normal(near.shape, dtype=np.float32)
    new = embedding_chunk(0, 32, dim, seed=99)
    q = np.concatenate([near, new]).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def _latency(search: Callable[[np.ndarray], object], q: np.ndarray, batches) -> dict:
    out = {}
    for b in batches:
        search(q[:b])  # warm
        reps = max(1, min(8, 64 // b))
        t0 = time.perf_counter()
        for r in range(reps):
            lo = (r * b) % len(q)
            search(q[lo : lo + b])
        out[str(b)] = round(1000 * (time.perf_counter() - t0) / (reps * b), 3)
    return out


# -- measurements (each in its own process, see bench.harness.measure) -------------------------------
def m_collection_build(settings, arg: dict) -> dict:
    """Write ``size`` embeddings through ``Index.add_images`` (chunks of 20k, the product's write
    path), then build the approximate index through ``maintain_vectors``."""
    from core.matching import search as search_module
    from db import Index, NewImage

    n = arg["size"]
    index = Index(arg["path"])
    coll = index.create_collection("bench", "synthetic", "{}", DIM)
    with timed() as t_sql:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            vecs = embedding_chunk(start, m)
            index.add_images(
                coll.id,
                [NewImage(f"/s/{start + i}", f"{start + i:064d}", 1, 1, b"", vecs[i]) for i in range(m)],
            )
    search_module.APPROXIMATE_FROM = min(search_module.APPROXIMATE_FROM, n)  # smoke sizes too
    with timed() as t_ann:
        search_module.maintain_vectors(index, "images", str(coll.id), DIM)
    record = index.vector_index("images", str(coll.id))
    index.close()
    os.sync()  # a collection is searched long after it was written, not while the kernel writes it
    return {
        "sqlite_build_s": round(t_sql.wall_s, 1),
        "ann_build_s": round(t_ann.wall_s, 1),
        "ann_vectors_per_s": round(n / t_ann.wall_s, 1) if t_ann.wall_s else None,
        "sqlite_mb": round(Path(arg["path"]).stat().st_size / 2**20, 1),
        "ann_mb": round((Path(arg["path"] + ".vectors") / record.file).stat().st_size / 2**20, 1),
    }


def m_collection_exact(settings, arg: dict) -> dict:
    """Fresh process: load the matrix from SQLite (chunked reader), exact search; writes the
    exact answers for the recall of the approximate search."""
    from core.matching.search import ExactSearch
    from db import Index

    index = Index(arg["path"], readonly=True)
    coll = index.get_collection("bench")
    q = np.load(arg["queries"])
    with timed() as t_load:
        found = ExactSearch.of(index.load_embeddings(coll.id))
    truth, _ = found.top_k(q, K)
    np.save(arg["truth"], truth)
    return {
        "load_s": round(t_load.wall_s, 3),
        "ms_per_frame": _latency(lambda x: found.top_k(x, K), q, settings.search_batches),
        "matrix_mb": round(found.vectors.nbytes / 2**20, 1),
    }


def m_collection_approx(settings, arg: dict) -> dict:
    """Fresh process: open the collection for search (the product's reader path), search."""
    from core.matching import ann
    from core.matching import search as search_module
    from db import Index

    search_module.APPROXIMATE_FROM = min(search_module.APPROXIMATE_FROM, arg["size"])
    with timed() as t_open:
        index = Index(arg["path"], readonly=True)
        coll = index.get_collection("bench")
        found = search_module.open_search(index, coll)
    assert isinstance(found, ann.ApproximateSearch), type(found)
    q = np.load(arg["queries"])
    keys, _ = found.top_k(q, K)
    truth = np.load(arg["truth"])
    out = {
        "open_s": round(t_open.wall_s, 3),
        "ms_per_frame": _latency(lambda x: found.top_k(x, K), q, settings.search_batches),
        "recall_at_5": round(recall(keys, truth), 4),
        "recall_near_duplicates": round(recall(keys[:32], truth[:32]), 4),
        "recall_new": round(recall(keys[32:], truth[32:]), 4),
        "near_duplicate_first": float(np.mean(keys[:32, 0] == truth[:32, 0])),
    }
    return out


def m_collection_changes(settings, arg: dict) -> dict:
    """Add 1,000 images and remove 1,000 (logged, no rebuild), open as a reader, then merge."""
    from core.matching import ann
    from core.matching import search as search_module
    from db import Index, NewImage

    search_module.APPROXIMATE_FROM = min(search_module.APPROXIMATE_FROM, arg["size"])
    index = Index(arg["path"])
    coll = index.get_collection("bench")
    m = min(1000, coll.image_count // 10)
    vecs = embedding_chunk(0, m, seed=5)
    with timed() as t_add:
        index.add_images(coll.id, [NewImage(f"/new/{i}", f"n{i:063d}", 1, 1, b"", vecs[i]) for i in range(m)])
        index.remove_images(coll.id, list(range(1, m + 1)))
    with timed() as t_open:
        found = search_module.open_search(index, index.get_collection("bench"))
    assert isinstance(found, ann.ApproximateSearch)
    vset = ann.VectorSet("images", str(coll.id), DIM)
    with timed() as t_merge:
        ann.MERGE_FROM = 1
        report = ann.sync(index, vset)
    with timed() as t_open2:
        found = search_module.open_search(index, index.get_collection("bench"))
    index.close()
    return {
        "changes": 2 * m,
        "write_s": round(t_add.wall_s, 2),
        "reader_open_with_pending_s": round(t_open.wall_s, 3),
        "merge_s": round(t_merge.wall_s, 1),
        "merge_action": report.action,
        "reader_open_after_merge_s": round(t_open2.wall_s, 3),
    }


def m_libraries(settings, arg: dict) -> dict:
    """usearch (int8, fp16, fp32 storage), hnswlib and faiss (HNSW, IVF) on the same vectors:
    M = 16, construction depth 64, search depth 128 (IVF: 4√n lists, 32 probed)."""
    import tempfile

    n = arg["size"]
    x = embeddings(n)
    q = queries(n)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :K]
    threads = len(os.sched_getaffinity(0))
    rows = []
    for name in ("usearch-i8", "usearch-f16", "usearch-f32", "hnswlib", "faiss-hnsw", "faiss-ivf"):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "index")
            t0 = time.perf_counter()
            if name.startswith("usearch"):
                from usearch.index import Index as Graph

                g = Graph(
                    ndim=DIM,
                    metric="ip",
                    dtype=name.split("-")[1],
                    connectivity=16,
                    expansion_add=64,
                    expansion_search=128,
                )
                g.add(np.arange(n), x, threads=threads)
                build = time.perf_counter() - t0
                g.save(path)
                del g
                t0 = time.perf_counter()
                g = Graph.restore(path, view=True)
                opened = time.perf_counter() - t0

                def search(v, g=g):
                    return np.atleast_2d(g.search(v, K, threads=threads).keys)

            elif name == "hnswlib":
                import hnswlib

                g = hnswlib.Index(space="ip", dim=DIM)
                g.init_index(max_elements=n, ef_construction=64, M=16)
                g.set_num_threads(threads)
                g.add_items(x, np.arange(n))
                build = time.perf_counter() - t0
                g.save_index(path)
                del g
                t0 = time.perf_counter()
                g = hnswlib.Index(space="ip", dim=DIM)
                g.load_index(path)
                opened = time.perf_counter() - t0
                g.set_ef(128)

                def search(v, g=g):
                    return g.knn_query(v, K)[0]

            else:
                import faiss

                faiss.omp_set_num_threads(threads)
                if name == "faiss-hnsw":
                    g = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
                    g.hnsw.efConstruction = 64
                    g.add(x)
                else:
                    lists = int(4 * np.sqrt(n))
                    g = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, lists, faiss.METRIC_INNER_PRODUCT)
                    g.train(x[np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False)])
                    g.add(x)
                build = time.perf_counter() - t0
                faiss.write_index(g, path)
                del g
                t0 = time.perf_counter()
                g = faiss.read_index(
                    path, faiss.IO_FLAG_MMAP_IFC if name == "faiss-ivf" else faiss.IO_FLAG_MMAP
                )
                opened = time.perf_counter() - t0
                if name == "faiss-hnsw":
                    g.hnsw.efSearch = 128
                else:
                    g.nprobe = 32

                def search(v, g=g):
                    return g.search(v, K)[1]

            found = np.concatenate([search(q[i : i + 8]) for i in range(0, len(q), 8)])
            rows.append(
                {
                    "library": name,
                    "build_vectors_per_s": round(n / build, 1),
                    "open_s": round(opened, 4),
                    "ms_per_frame_b8": _latency(search, q, (8,))["8"],
                    "recall_at_5": round(recall(found, truth), 4),
                    "file_mb": round(os.path.getsize(path) / 2**20, 1),
                }
            )
    return {"size": n, "rows": rows}


def m_crossover(settings, arg: dict) -> dict:
    """Exact top-5 ms per frame at batch 8 over in-memory sets of growing size."""
    from core.matching.search import top_k

    out = {}
    biggest = max(arg["sizes"])
    x = embeddings(biggest)
    q = queries(biggest)
    for n in arg["sizes"]:
        out[str(n)] = _latency(lambda v, n=n: top_k(v, x[:n], K), q, (8,))["8"]
    return {"exact_ms_per_frame_b8": out}


def m_writer(settings, arg: dict) -> dict:
    """The single writer: one hour of video at 30 fps (108,000 frames, top-5 each) written as the
    pipeline and a cluster batch's driver write it (512 frames a transaction), plus the frame
    embeddings of its analysed frames (1.1 per second, 1024-d)."""
    from db import Index

    frames = arg["frames"]
    analysed = max(1, int(frames / 30 * 1.1))
    index = Index(arg["path"])
    coll = index.create_collection("w", "synthetic", "{}", 8)
    video = index.upsert_video(
        path="/v.mp4",
        sha256="w" * 64,
        fps=30.0,
        frame_count=frames,
        duration_s=frames / 30,
        width=640,
        height=360,
        rotation=0,
        size_bytes=1,
    )
    run_id = index.create_run(video_id=video.id, collection_id=coll.id, model_id="synthetic", params={})
    rng = np.random.default_rng(0)
    ids = index.add_images(coll.id, [_tiny_image(i) for i in range(64)])
    image_ids = np.asarray(ids)[rng.integers(0, 64, (frames, K))]
    scores = rng.random((frames, K), dtype=np.float32)
    idx = np.arange(frames)
    with timed() as t_results:
        for start in range(0, frames, 512):
            sl = slice(start, start + 512)
            index.add_frame_results(run_id, idx[sl], idx[sl] / 30, idx[sl], image_ids[sl], scores[sl])
    vectors = rng.standard_normal((analysed, DIM), dtype=np.float32)
    with timed() as t_emb:
        for start in range(0, analysed, 8):
            sl = slice(start, start + 8)
            index.add_frame_embeddings(
                video.sha256, "k", idx[:analysed][sl], idx[:analysed][sl] / 30, vectors[sl]
            )
    index.close()
    rows = frames * (K + 1)  # frame_matches + run_frames
    return {
        "frames": frames,
        "result_rows": rows,
        "results_s": round(t_results.wall_s, 2),
        "result_rows_per_s": round(rows / t_results.wall_s),
        "embedding_rows": analysed,
        "embeddings_s": round(t_emb.wall_s, 2),
        "embedding_rows_per_s": round(analysed / t_emb.wall_s),
        "video_hours_per_hour": round((frames / 30 / 3600) / ((t_results.wall_s + t_emb.wall_s) / 3600), 1),
    }


def _tiny_image(i: int):
    from db import NewImage

    return NewImage(f"/w/{i}", f"w{i:063d}", 1, 1, b"", np.ones(8, np.float32) + i)


MEASUREMENTS = {
    "scale_build": m_collection_build,
    "scale_exact": m_collection_exact,
    "scale_approx": m_collection_approx,
    "scale_changes": m_collection_changes,
    "scale_libraries": m_libraries,
    "scale_crossover": m_crossover,
    "scale_writer": m_writer,
}


# -- the section ------------------------------------------------------------------------------
def section_scale(settings, log: Callable[[str], None]) -> dict:
    import tempfile

    from core.matching import ann
    from core.matching.search import APPROXIMATE_FROM

    out: dict = {
        "collections": [],
        "approximate_from": APPROXIMATE_FROM,
        "index": {
            k: getattr(ann, k)
            for k in ("STORAGE", "CONNECTIVITY", "EXPANSION_ADD", "EXPANSION_SEARCH", "OVERSAMPLE")
        },
    }
    log(f"scale: libraries at {settings.scale_compare_size:,}")
    out["libraries"] = measure(settings, "scale_libraries", {"size": settings.scale_compare_size})
    log("scale: cross-over")
    out["crossover"] = measure(settings, "scale_crossover", {"sizes": list(settings.scale_crossover_sizes)})
    for n in settings.scale_sizes:
        with tempfile.TemporaryDirectory(prefix="webssl-scale-") as tmp:
            path = str(Path(tmp) / "scale.sqlite")
            truth = str(Path(tmp) / "truth.npy")
            qfile = str(Path(tmp) / "queries.npy")
            np.save(qfile, queries(n))
            log(f"scale: {n:,} embeddings: SQLite and approximate index")
            row = {"size": n, "build": measure(settings, "scale_build", {"size": n, "path": path})}
            log(f"scale: {n:,}: exact, approximate, changes")
            files = {"path": path, "truth": truth, "queries": qfile, "size": n}
            row["exact"] = measure(settings, "scale_exact", files)
            row["approx"] = measure(settings, "scale_approx", files)
            row["changes"] = measure(settings, "scale_changes", {"path": path, "size": n})
            out["collections"].append(row)
            log(json.dumps(row))
    with tempfile.TemporaryDirectory(prefix="webssl-writer-") as tmp:
        log("scale: the single writer")
        out["writer"] = measure(
            settings,
            "scale_writer",
            {"path": str(Path(tmp) / "w.sqlite"), "frames": settings.scale_writer_frames},
        )
    return out


# -- the report -------------------------------------------------------------------------------
def targets(scale: dict) -> list[dict]:
    """Issue 12's targets for 1M images (d = 1024), measured in this section."""
    out = []
    for row in scale.get("collections", []):
        if row["size"] < 1_000_000:
            continue
        approx, exact, build = row["approx"], row["exact"], row["build"]
        matrix_mb = exact["matrix_mb"]
        out += [
            _target(
                "1M: open for search, s (fresh process)", approx["open_s"], "≤ 2 s", approx["open_s"] <= 2
            ),
            _target(
                "1M: peak RSS, searching / float32 matrix",
                round(approx["peak_rss_mb"] / matrix_mb, 2),
                "≤ 1.5×",
                approx["peak_rss_mb"] <= 1.5 * matrix_mb,
                f"{approx['peak_rss_mb']:.0f} MB / {matrix_mb:.0f} MB",
            ),
            _target(
                "1M: top-5 ms per frame at batch 8 (approximate)",
                approx["ms_per_frame"]["8"],
                "≤ 10 ms",
                approx["ms_per_frame"]["8"] <= 10,
            ),
            _target(
                "1M: recall@5 against exact search",
                approx["recall_at_5"],
                "≥ 0.99",
                approx["recall_at_5"] >= 0.99,
            ),
            _target(
                "1M: exact load from SQLite (chunked), s",
                exact["load_s"],
                "reported",
                None,
                f"peak RSS {exact['peak_rss_mb']:.0f} MB; approximate index built in {build['ann_build_s']:.0f} s",
            ),
        ]
    return out


def _target(name: str, value, goal: str, met: bool | None, note: str = "") -> dict:
    return {"target": name, "value": value, "goal": goal, "met": met, "note": note}


def markdown_lines(scale: dict) -> list[str]:
    lines = ["## Scale (1024-d embeddings, clustered synthetic set; see bench/scale.py)", ""]
    lib = scale.get("libraries")
    if lib:
        lines += [
            f"Libraries on the same {lib['size']:,} vectors (M = 16, construction depth 64, search depth 128; "
            "IVF: 4√n lists, 32 probed); raw results, no re-scoring:",
            "",
            "| library | build vectors/s | open s | ms/frame, batch 8 | recall@5 | file MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in lib["rows"]:
            lines.append(
                f"| {r['library']} | {r['build_vectors_per_s']:,.0f} | {r['open_s']:.4f} | {r['ms_per_frame_b8']:.2f} | "
                f"{r['recall_at_5']:.4f} | {r['file_mb']:.1f} |"
            )
        lines.append("")
    if scale.get("collections"):
        lines += [
            "| vectors | SQLite build s | index build s (vectors/s) | index MB | exact: load s | exact: peak RSS MB | "
            "exact ms/frame b1 / b8 / b64 | approx: open s | approx: peak RSS MB | approx ms/frame b1 / b8 / b64 | "
            "recall@5 (near-dup / new) |",
            "|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
        ]
        for row in scale["collections"]:
            b, e, a = row["build"], row["exact"], row["approx"]
            lines.append(
                f"| {row['size']:,} | {b['sqlite_build_s']} | {b['ann_build_s']} ({b['ann_vectors_per_s']:,.0f}) | "
                f"{b['ann_mb']} | {e['load_s']} | {e['peak_rss_mb']:.0f} | "
                f"{' / '.join(str(v) for v in e['ms_per_frame'].values())} | {a['open_s']} | {a['peak_rss_mb']:.0f} | "
                f"{' / '.join(str(v) for v in a['ms_per_frame'].values())} | {a['recall_at_5']} "
                f"({a['recall_near_duplicates']} / {a['recall_new']}) |"
            )
        lines += ["", "Changes after the index file was written (logged by SQLite triggers):", ""]
        for row in scale["collections"]:
            c = row["changes"]
            lines.append(
                f"- {row['size']:,}: {c['changes']:,} changes written in {c['write_s']} s; a reader opens with them "
                f"pending in {c['reader_open_with_pending_s']} s; merging them into the file took {c['merge_s']} s "
                f"({c['merge_action']}); opening afterwards {c['reader_open_after_merge_s']} s."
            )
        lines.append("")
    cross = scale.get("crossover")
    if cross:
        sizes = cross["exact_ms_per_frame_b8"]
        lines += [
            "Exact top-5, ms per frame at batch 8: "
            + ", ".join(f"{int(n):,}: {v}" for n, v in sizes.items())
            + f" (the rule: approximate from {scale.get('approximate_from', 100_000):,} vectors).",
            "",
        ]
    w = scale.get("writer")
    if w:
        lines += [
            f"The single writer: {w['frames']:,} frames (top-5) = {w['result_rows']:,} result rows in {w['results_s']} s "
            f"= **{w['result_rows_per_s']:,} rows/s**; {w['embedding_rows']:,} frame embeddings in {w['embeddings_s']} s "
            f"({w['embedding_rows_per_s']:,} rows/s): one writer stores ≈ {w['video_hours_per_hour']:,} hours of "
            "video per hour.",
            "",
        ]
    return lines
