"""Indexing folders into collections: incremental, deduplicated, bound to one model, robust."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import build_tiny_model, pattern_image
from core.matching.indexing import index_images
from core.model.features import FeatureExtractor, l2_normalize
from core.progress import Cancelled
from db import ModelMismatchError


def test_index_a_folder(index, extractor, image_folder):
    report = index_images(index, "posters", [image_folder.folder], extractor)
    assert len(report.added) == 4 and not report.failed
    coll = index.get_collection("posters")
    assert coll.image_count == 4 and coll.model_id == extractor.model_id and coll.embed_dim == 48
    matrix = index.load_embeddings(coll.id)
    expected = l2_normalize(extractor.cls_embeddings(image_folder.arrays))
    by_path = {rec.path: rec.id for rec in index.list_images(coll.id, limit=10)}
    for path, vec in zip(image_folder.paths, expected, strict=True):
        row = list(matrix.image_ids).index(by_path[str(path.resolve())])
        assert float(matrix.vectors[row] @ vec) > 0.9999
    rec = index.list_images(coll.id, limit=1)[0]
    assert rec.width == 320 and rec.height == 240
    thumb = index.get_thumbnails([rec.id])[rec.id]
    assert thumb[:2] == b"\xff\xd8"  # a JPEG


def test_reindexing_embeds_only_new_content(index, extractor, image_folder, monkeypatch):
    index_images(index, "c", [image_folder.folder], extractor)
    new = image_folder.folder / "epsilon.png"
    Image.fromarray(pattern_image(999)).save(new)
    calls = []
    original = extractor.cls_embeddings
    monkeypatch.setattr(
        extractor, "cls_embeddings", lambda imgs, **kw: (calls.append(len(imgs)), original(imgs, **kw))[1]
    )
    report = index_images(index, "c", [image_folder.folder], extractor)
    assert report.added == (str(new.resolve()),)
    assert len(report.already_indexed) == 4
    assert calls == [1]  # one forward pass, for the new file only


def test_identical_files_are_stored_once(index, extractor, image_folder):
    copy = image_folder.folder / "copy-of-alpha.jpg"
    copy.write_bytes(image_folder.paths[0].read_bytes())
    report = index_images(index, "c", [image_folder.folder], extractor)
    assert len(report.added) == 4
    assert report.duplicates and report.duplicates[0][0] == str(copy.resolve())
    assert index.get_collection("c").image_count == 4


def test_a_moved_folder_keeps_its_images_and_their_matches(
    index, extractor, image_folder, tmp_path, monkeypatch
):
    """Files moved elsewhere are the same images: indexing them where they are now updates their
    paths (ids, embeddings, thumbnails and runs' matches stay) with no model pass and no decoding,
    so pruning the old place loses nothing."""
    index_images(index, "c", [image_folder.folder], extractor)
    coll = index.get_collection("c")
    ids = {Path(r.path).name: r.id for r in index.list_images(coll.id, limit=10)}
    moved = tmp_path / "archive" / "images"
    moved.parent.mkdir()
    image_folder.folder.rename(moved)
    (moved / "copy-of-alpha.jpg").write_bytes((moved / "alpha.jpg").read_bytes())  # a copy: a duplicate
    monkeypatch.setattr(extractor, "cls_embeddings", lambda *a, **k: pytest.fail("no model pass"))
    import core.matching.indexing as indexing

    monkeypatch.setattr(indexing, "decode_image_bytes", lambda *a, **k: pytest.fail("no decoding"))
    report = index_images(index, "c", [moved], extractor)
    assert not report.added and not report.failed
    old = {Path(p).name: p for p in map(str, image_folder.paths)}
    assert sorted(report.moved) == sorted(
        (str((moved / name).resolve()), str(Path(old[Path(name).name]).resolve()))
        for name in ("alpha.jpg", "beta.png", "sub/gamma.jpg", "delta.png")
    )
    assert report.duplicates == (
        (str((moved / "copy-of-alpha.jpg").resolve()), str((moved / "alpha.jpg").resolve())),
    )
    assert "4 moved" in report.summary()
    after = {Path(r.path).name: (r.id, r.path) for r in index.list_images(coll.id, limit=10)}
    assert {name: i for name, (i, _) in after.items()} == ids
    assert all(path.startswith(str(moved.resolve())) for _, path in after.values())
    assert index.prune_missing(coll.id) == []
    assert len(index.load_embeddings(coll.id).image_ids) == 4
    again = index_images(index, "c", [moved], extractor)
    assert len(again.already_indexed) == 4 and not again.moved and len(again.duplicates) == 1


def test_unchanged_files_are_not_read_again(index, extractor, image_folder, monkeypatch):
    """Indexing a folder again read every file to hash it: for 100,000 photos of a few MB, hundreds
    of GB a night. A file whose size and modification time are as stored is known unread; one
    touched since is hashed once, then known by its new time; one changed is embedded again."""
    import core.matching.indexing as indexing

    index_images(index, "c", [image_folder.folder], extractor)
    read = []
    real_hash, real_read = indexing.file_sha256, indexing.read_image_file
    monkeypatch.setattr(indexing, "file_sha256", lambda p: read.append(p) or real_hash(p))
    monkeypatch.setattr(indexing, "read_image_file", lambda p: read.append(p) or real_read(p))
    again = index_images(index, "c", [image_folder.folder], extractor)
    assert len(again.already_indexed) == 4 and read == []
    touched = str(image_folder.paths[0].resolve())
    stat = os.stat(touched)
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(index_images(index, "c", [image_folder.folder], extractor).already_indexed) == 4
    assert read == [touched]
    read.clear()
    assert len(index_images(index, "c", [image_folder.folder], extractor).already_indexed) == 4
    assert read == []
    index.db.execute("UPDATE images SET size_bytes = NULL, mtime_ns = NULL")  # indexed by an older version
    assert len(index_images(index, "c", [image_folder.folder], extractor).already_indexed) == 4
    assert len(read) == 4
    read.clear()
    index_images(index, "c", [image_folder.folder], extractor)
    assert read == []
    Image.fromarray(pattern_image(555)).save(image_folder.paths[1])
    changed = index_images(index, "c", [image_folder.folder], extractor)
    assert changed.added == (str(image_folder.paths[1].resolve()),)


def test_changed_file_replaces_its_old_content(index, extractor, image_folder):
    index_images(index, "c", [image_folder.folder], extractor)
    Image.fromarray(pattern_image(555)).save(image_folder.paths[1])
    report = index_images(index, "c", [image_folder.folder], extractor)
    assert report.added == (str(image_folder.paths[1].resolve()),)
    coll = index.get_collection("c")
    assert coll.image_count == 4
    assert len(index.known_paths(coll.id)) == 4


def test_bad_files_are_reported_and_the_rest_indexed(index, extractor, image_folder):
    (image_folder.folder / "empty.jpg").write_bytes(b"")
    (image_folder.folder / "text.jpg").write_text("not an image")
    good = image_folder.paths[0].read_bytes()
    (image_folder.folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    report = index_images(index, "c", [image_folder.folder], extractor)
    reasons = dict((os.path.basename(p), r) for p, r in report.failed)
    assert set(reasons) == {"empty.jpg", "text.jpg", "truncated.jpg"}
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert len(report.added) == 4
    coll = index.get_collection("c")
    assert {os.path.basename(f.path) for f in index.list_failures(coll.id)} == set(reasons)


def test_failure_is_cleared_when_the_file_is_fixed(index, extractor, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    bad = folder / "later.png"
    bad.write_bytes(b"")
    index_images(index, "c", [folder], extractor)
    coll = index.get_collection("c")
    assert len(index.list_failures(coll.id)) == 1
    Image.fromarray(pattern_image(4)).save(bad)
    report = index_images(index, "c", [folder], extractor)
    assert len(report.added) == 1
    assert index.list_failures(coll.id) == []


def test_collection_is_bound_to_its_model(index, extractor, image_folder, tmp_path):
    index_images(index, "c", [image_folder.paths[0]], extractor)
    other = FeatureExtractor.load(build_tiny_model(tmp_path / "other", seed=1), device="cpu")
    with pytest.raises(ModelMismatchError) as info:
        index_images(index, "c", [image_folder.paths[1]], other)
    assert extractor.model_id in str(info.value) and other.model_id in str(info.value)
    assert index.get_collection("c").image_count == 1  # nothing stored is lost


def test_missing_path_is_an_error(index, extractor, tmp_path):
    with pytest.raises(FileNotFoundError):
        index_images(index, "c", [tmp_path / "nope"], extractor)


def test_progress_and_cancel_keep_finished_batches(index, extractor, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(pattern_image(i, (64, 80))).save(folder / f"{i:02d}.png")
    cancel = threading.Event()
    events = []

    def progress(event):
        events.append(event)
        if event.done >= 4:
            cancel.set()

    with pytest.raises(Cancelled):
        index_images(index, "c", [folder], extractor, batch_size=4, progress=progress, cancel=cancel)
    stored = index.get_collection("c").image_count
    assert stored == 4  # the first batch was committed, the in-flight one dropped
    assert events[0].stage == "finding images"  # a big folder takes a while to list
    counted = [e for e in events if e.unit == "images"]
    assert counted[0].total == 10 and counted[0].stage == "indexing"
    report = index_images(index, "c", [folder], extractor, batch_size=4)
    assert len(report.added) == 6 and len(report.already_indexed) == 4


def test_indexing_survives_a_kill_and_resumes(tmp_path, tiny_model_dir, image_folder):
    """A process killed mid-run leaves a valid file; the next run adds only what is missing."""
    import subprocess
    import sys
    import textwrap

    db = tmp_path / "kill.sqlite"
    code = textwrap.dedent(f"""
        import os
        from core.model.features import FeatureExtractor
        from core.matching.indexing import index_images
        from db import Index
        fx = FeatureExtractor.load({str(tiny_model_dir)!r}, device="cpu")
        def progress(ev):
            if ev.done >= 2:
                os._exit(9)  # killed without cleanup, mid-run
        with Index({str(db)!r}) as index:
            index_images(index, "c", [{str(image_folder.folder)!r}], fx, batch_size=2, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    from db import Index

    with Index(db) as index:
        assert index.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert index.get_collection("c").image_count == 2
        fx = FeatureExtractor.load(tiny_model_dir, device="cpu")
        report = index_images(index, "c", [image_folder.folder], fx)
        assert len(report.added) == 2 and len(report.already_indexed) == 2
        assert np.isfinite(index.load_embeddings(index.get_collection("c").id).vectors).all()


# -- issue 9: replacing changed files atomically, repairing, counting ---------------------------------
def test_a_changed_file_is_replaced_in_one_transaction(index, extractor, image_folder, monkeypatch):
    """The new row and the removal of the stale one commit together: a crash between them used to
    leave both for good."""
    index_images(index, "c", [image_folder.folder], extractor)
    Image.fromarray(pattern_image(555)).save(image_folder.paths[1])  # beta.png changes
    calls = []
    real_transaction = type(index).transaction

    def counting(self):
        calls.append(1)
        return real_transaction(self)

    monkeypatch.setattr(type(index), "transaction", counting)
    report = index_images(index, "c", [image_folder.folder], extractor)
    assert len(report.added) == 1 and len(calls) == 1  # one batch written: one transaction
    coll = index.get_collection("c")
    assert coll.image_count == 4


def test_indexing_repairs_what_an_older_crash_left(index, extractor, image_folder):
    """A crash between 'add new content' and 'remove old row' (older versions) left two rows for one
    path; the next indexing keeps the row of the file's current content and drops the stale one."""
    from db import NewImage

    index_images(index, "c", [image_folder.folder], extractor)
    coll = index.get_collection("c")
    beta = str(image_folder.paths[1].resolve())
    stale = NewImage(beta, "f" * 64, 1, 1, b"", np.ones(extractor.hidden_size, np.float32))
    index.add_images(coll.id, [stale])
    assert index.get_collection("c").image_count == 5
    report = index_images(index, "c", [image_folder.folder], extractor)
    assert not report.added and len(report.already_indexed) == 4
    records = index.list_images(coll.id, limit=10)
    assert len(records) == 4 and len({r.path for r in records}) == 4
    assert "f" * 64 not in {r.sha256 for r in records}


def test_two_indexers_report_what_each_really_added(tmp_path, extractor, image_folder):
    """Two indexers of the same files at once: every file is added once, and the two reports say so
    (they used to report 300 + 252 added for 300 rows)."""
    from db import Index

    path = tmp_path / "two.sqlite"
    Index(path).close()
    both_classified = threading.Barrier(2, timeout=60)

    class Waiting:
        """The extractor, but both indexers finish classifying before either writes."""

        def __init__(self):
            self.first = threading.local()

        def __getattr__(self, name):
            return getattr(extractor, name)

        def cls_embeddings(self, images, batch_size=None):
            if not getattr(self.first, "done", False):
                self.first.done = True
                both_classified.wait()
            return extractor.cls_embeddings(images, batch_size=batch_size)

    fx = Waiting()
    reports = []

    def run():
        with Index(path) as idx:
            reports.append(index_images(idx, "c", [image_folder.folder], fx))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(reports) == 2
    added = sum(len(r.added) for r in reports)
    with Index(path) as idx:
        assert idx.get_collection("c").image_count == added == 4
    assert sorted(len(r.added) + len(r.already_indexed) for r in reports) == [4, 4]


def test_an_empty_folder_says_no_images_were_found(index, extractor, tmp_path):
    (tmp_path / "empty").mkdir()
    report = index_images(index, "nothing", [tmp_path / "empty"], extractor)
    assert (
        report.summary()
        == "nothing: 0 added, 0 already indexed, 0 failed: no image files found in the given paths"
    )
