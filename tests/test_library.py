"""core.matching.library: index videos without matching, find query images across them."""

from __future__ import annotations

import os

import numpy as np
import pytest

import core.matching.search as search_module
from conftest import PARAMS, write_video
from core.matching.library import find_collection_images, find_images, index_videos, library_keys
from core.matching.sampling import Sampling
from core.progress import Cancelled


@pytest.fixture
def library(index, extractor, shots_video, tmp_path):
    write_video(tmp_path / "videos" / "other.mp4", [np.full((240, 320, 3), 90, np.uint8)] * 20)
    broken = tmp_path / "videos" / "broken.mp4"
    broken.write_bytes(b"not a video")
    report = index_videos(index, [shots_video.path, tmp_path / "videos"], extractor)
    return report


def test_index_videos_caches_frames_and_skips_what_is_done(index, extractor, library, shots_video, tmp_path):
    assert library.count("indexed") == 2 and library.count("failed") == 1
    failed = next(v for v in library.videos if v.status == "failed")
    assert failed.path.endswith("broken.mp4") and failed.reason
    shots = next(v for v in library.videos if v.path.endswith("shots.mp4"))
    assert shots.recorded == shots_video.frame_count and 0 < shots.analysed == shots.computed < 40
    assert index.stats().runs == 0  # indexing is not matching
    entries = index.list_library_videos([extractor.embed_key()])
    assert len(entries) == 2 and all(e.complete for e in entries)
    again = index_videos(index, [shots_video.path], extractor)
    assert again.videos[0].status == "already indexed"
    # another sampling indexes again, computing only frames not cached yet
    every = index_videos(index, [shots_video.path], extractor, sampling=Sampling.every())
    assert every.videos[0].computed == shots_video.frame_count - shots.computed


def test_videos_indexed_before_are_not_read_again(index, extractor, library, shots_video, monkeypatch):
    """A nightly index-videos (or match) of a folder read every video whole to hash it, only to
    find it done: hundreds of GB for a large library. A file whose path, size and modification
    time are as stored keeps its stored identity; one touched since is hashed again."""
    import core.media.video as video

    hashed = []
    real = video.file_sha256
    monkeypatch.setattr(video, "file_sha256", lambda p, *a: hashed.append(str(p)) or real(p, *a))
    again = index_videos(index, [shots_video.path], extractor)
    assert again.videos[0].status == "already indexed" and hashed == []
    stat = shots_video.path.stat()
    os.utime(shots_video.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert index_videos(index, [shots_video.path], extractor).videos[0].status == "already indexed"
    assert hashed == [str(shots_video.path)]
    hashed.clear()
    index_videos(index, [shots_video.path], extractor)
    assert hashed == []


def test_cancelled_indexing_is_resumed(index, extractor, shots_video):
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        index_videos(index, [shots_video.path], extractor, cancel=cancel)
    report = index_videos(index, [shots_video.path], extractor)
    assert report.videos[0].status == "indexed"


def test_find_gives_videos_segments_and_scores(index, extractor, library, image_folder, shots_video):
    found = find_images(
        index, extractor, [image_folder.arrays[0], image_folder.arrays[3]], ["alpha", "delta"], params=PARAMS
    )
    alpha, delta = found
    assert alpha.query == "alpha" and len(alpha.appearances) == 1
    (appearance,) = alpha.appearances
    assert appearance.video.path.endswith("shots.mp4")
    (segment,) = appearance.segments
    # image 0 fills frames 0-11 at 10 fps; the last analysed frame stands until the next one
    assert segment.start_frame == 0 and 0.9 <= segment.end_s <= 1.2 and segment.peak_score >= PARAMS.threshold
    assert delta.appearances == ()  # delta.png is in no video


def test_find_uses_the_approximate_index_of_a_large_library(
    index, extractor, library, image_folder, monkeypatch
):
    monkeypatch.setattr(search_module, "APPROXIMATE_FROM", 10)
    (key,) = library_keys(index, extractor)
    index_videos(index, [], extractor)  # a writer brings the library's index up to date
    assert index.vector_index("frames", key) is not None
    (alpha,) = find_images(index, extractor, [image_folder.arrays[0]], ["alpha"], params=PARAMS)
    assert [a.video.path.endswith("shots.mp4") for a in alpha.appearances] == [True]


def test_an_empty_folder_says_no_videos_were_found(index, extractor, tmp_path):
    (tmp_path / "empty").mkdir()
    report = index_videos(index, [tmp_path / "empty"], extractor)
    assert report.summary().endswith("failed (0.00 h of video): no video files found in the given paths")


def test_collection_images_are_found_by_their_stored_embeddings(
    index, extractor, library, indexed, image_folder, monkeypatch
):
    """A collection's images are searched with the embeddings stored when they were indexed:
    the same answer as their files, without the model (here it fails if it is used)."""
    queries = [image_folder.arrays[0], image_folder.arrays[3]]
    by_file = find_images(index, extractor, queries, ["alpha.jpg", "delta.png"], params=PARAMS)
    shots = index.get_collection("shots")
    ids = {r.name: r.id for r in index.list_images(shots.id)}
    monkeypatch.setattr(type(extractor), "forward", lambda *a, **k: pytest.fail("no model pass"))
    stored = find_collection_images(index, shots, [ids["alpha.jpg"], ids["delta.png"]], params=PARAMS)
    assert [f.query for f in stored] == ["alpha.jpg", "delta.png"]
    assert stored[0].appearances and not stored[1].appearances
    for a, b in zip(stored, by_file, strict=True):
        assert [x.video.path for x in a.appearances] == [x.video.path for x in b.appearances]
        for x, y in zip(a.appearances, b.appearances, strict=True):
            assert [(s.start_frame, s.end_frame) for s in x.segments] == [
                (s.start_frame, s.end_frame) for s in y.segments
            ]
            assert x.peak_score == pytest.approx(y.peak_score, abs=1e-4)


def test_collection_images_of_another_model_are_not_compared_with_the_frames(index, library, indexed):
    """Frames indexed by one model are never compared with another model's embeddings: a
    collection of another model finds nothing, however similar the numbers."""
    from dataclasses import replace

    shots = index.get_collection("shots")
    ids = [r.id for r in index.list_images(shots.id)]
    found = find_collection_images(index, replace(shots, model_id="someone/else"), ids, params=PARAMS)
    assert len(found) == len(ids) and all(f.appearances == () for f in found)


def test_images_of_another_collection_are_refused(index, library, indexed, collection):
    from core.errors import InvalidArgumentError

    shots = index.get_collection("shots")
    ids = [r.id for r in index.list_images(shots.id)]
    with pytest.raises(InvalidArgumentError, match="not in collection 'posters'"):
        find_collection_images(index, collection, ids[:1], params=PARAMS)


def test_candidates_are_searched_in_blocks_and_widened_per_query(monkeypatch):
    """Queries go to the library in blocks; a query whose every candidate reaches the
    threshold asks again for twice as many, alone, until it gets one below or all frames."""
    import core.matching.library as library
    from core.matching.params import MatchParams
    from core.matching.search import ExactSearch

    monkeypatch.setattr(library, "CANDIDATES", 2)
    monkeypatch.setattr(library, "QUERY_BLOCK", 2)
    axes = np.eye(4, dtype=np.float32)
    # frames 10-16 show axis 0, frame 20 axis 1; nothing shows axes 2 and 3
    frames = np.vstack([np.repeat(axes[:1], 7, axis=0), axes[1:2], (axes[2] + axes[3])[None] / np.sqrt(2)])
    keys = np.array([10, 11, 12, 13, 14, 15, 16, 20, 30], np.int64)
    asked: list[tuple[int, int]] = []

    class Counting(ExactSearch):
        def top_k(self, queries, k):
            asked.append((len(queries), k))
            return super().top_k(queries, k)

    vectors = Counting(keys, frames)
    found = library._candidate_frames(vectors, axes[[1, 0, 2]], MatchParams(threshold=0.9))
    assert [sorted(f.tolist()) for f in found] == [[20], list(range(10, 17)), []]
    # a block of two queries and one of one; then axis 0 alone at 4 and 8 candidates
    assert asked == [(2, 2), (1, 2), (1, 4), (1, 8)]


def test_a_frame_cached_in_two_precisions_counts_once_with_its_best_score(index, video):
    """Frames of one model cached under two precisions' keys are one library: a frame counts
    once, with the better of its scores, and segments run across frames from either key."""
    from core.matching.library import find_embeddings
    from core.matching.params import MatchParams

    query, other = np.eye(4, dtype=np.float32)[:2]
    frames = np.arange(0, 250, 25)  # one cached frame a second
    # fp32 saw the picture in the first five seconds, bf16 in the last five
    first = np.where((frames < 125)[:, None], query, other)
    second = np.where((frames >= 125)[:, None], query, other)
    index.add_frame_embeddings(video.sha256, "key-fp32", frames, frames / 25.0, first)
    index.add_frame_embeddings(video.sha256, "key-bf16", frames, frames / 25.0, second)
    (found,) = find_embeddings(
        index, ["key-fp32", "key-bf16"], query[None], ["q"], params=MatchParams(threshold=0.9)
    )
    (appearance,) = found.appearances
    (segment,) = appearance.segments
    assert (segment.start_frame, segment.end_frame) == (0, 249) and segment.peak_score == pytest.approx(1.0)
    (only_fp32,) = find_embeddings(index, ["key-fp32"], query[None], ["q"], params=MatchParams(threshold=0.9))
    (segment,) = only_fp32.appearances[0].segments
    assert (segment.start_frame, segment.end_frame) == (0, 124)


def test_find_reports_progress_per_stage(index, extractor, library, image_folder):
    """Long finds (a whole collection) show how far the search and the scoring of videos are."""
    events = []
    find_images(
        index, extractor, image_folder.arrays, ["a", "b", "c", "d"], params=PARAMS, progress=events.append
    )
    stages = {e.stage: e for e in events}  # the last event of each stage
    assert list(stages) == ["searching the library", "scoring videos"]
    assert stages["searching the library"].done == stages["searching the library"].total == 4
    assert stages["scoring videos"].done == stages["scoring videos"].total >= 1


def test_indexing_videos_again_does_not_load_the_model(index, extractor, library, shots_video, tmp_path):
    """A nightly index-videos of a folder indexed before loaded the model (8 s and 2.8 GB for ViT-L
    in int8) only to find every video done: the model's setup (its config files) says which cached
    frames it would make, and the weights load only for a video left to index."""
    from dataclasses import replace

    from core.model.on_demand import ModelOnDemand

    never = ModelOnDemand(extractor.setup, lambda: pytest.fail("the model was loaded with nothing to embed"))
    again = index_videos(index, [shots_video.path, tmp_path / "videos"], never)
    assert [v.status for v in again.videos].count("already indexed") == 2
    write_video(tmp_path / "videos" / "new.mp4", [np.full((240, 320, 3), 30, np.uint8)] * 12)
    loads = []
    model = ModelOnDemand(extractor.setup, lambda: loads.append(1) or extractor)
    report = index_videos(index, [tmp_path / "videos"], model)
    assert report.count("indexed") == 1 and report.count("already indexed") == 1 and loads == [1]
    # auto's int8, once loaded here, falls back to the float precision the videos were indexed in:
    # the keys of the loaded model decide, and nothing is indexed twice
    fallback = ModelOnDemand(replace(extractor.setup, precision="int8"), lambda: extractor)
    assert index_videos(index, [shots_video.path], fallback).videos[0].status == "already indexed"
    assert fallback.loaded and fallback.setup.precision == extractor.precision


def test_a_video_file_replaced_since_its_frames_were_cached_is_told_apart(
    index, extractor, image_folder, tmp_path
):
    """A re-cut exported over the same path: ``find`` answered with the earlier content's times
    under the path of a file that no longer holds them, and nothing said so. Each appearance
    says whether the file still holds what its frames were cached from (the rule of
    ``identify_video``: path, size and modification time as stored)."""
    from conftest import shot_frames
    from core.media.files import video_file_state

    path = tmp_path / "v" / "clip.mp4"
    write_video(path, shot_frames(image_folder.arrays, [(0, 10), (-1, 6)]), fps=10)  # shows alpha
    index_videos(index, [path], extractor)
    params = PARAMS
    alpha = [image_folder.arrays[0]]
    (before,) = find_images(index, extractor, alpha, ["alpha"], params=params)
    assert [a.file for a in before.appearances] == ["ok"]
    old = before.appearances[0].video
    write_video(path, shot_frames(image_folder.arrays, [(-1, 6), (1, 12)]), fps=10)  # a re-cut: beta
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (changed,) = find_images(index, extractor, alpha, ["alpha"], params=params)
    assert [a.file for a in changed.appearances] == ["changed"]  # not indexed since: unknown content
    index_videos(index, [path], extractor)  # the new content gets its own record
    (after,) = find_images(index, extractor, alpha, ["alpha"], params=params)
    assert [(a.video.sha256, a.file) for a in after.appearances] == [(old.sha256, "replaced")]
    (beta,) = find_images(index, extractor, [image_folder.arrays[1]], ["beta"], params=params)
    assert [a.file for a in beta.appearances] == ["ok"] and beta.appearances[0].video.sha256 != old.sha256
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))  # touched only: re-indexed, the same
    index_videos(index, [path], extractor)
    sha = beta.appearances[0].video.sha256
    assert video_file_state(index.find_videos([sha])[sha], index) == "ok"
    path.unlink()
    assert video_file_state(old, index) == "missing"
