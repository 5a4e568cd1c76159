"""core.media.files: content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.media.files import file_sha256
from core.media.images import load_image


def test_sha256_matches_hashlib(png_file: Path) -> None:
    expected = hashlib.sha256(png_file.read_bytes()).hexdigest()
    assert load_image(png_file).sha256 == expected
    assert file_sha256(png_file) == expected


def test_sha256_with_progress_reports_every_chunk(tmp_path: Path, monkeypatch) -> None:
    import core.media.files as files

    monkeypatch.setattr(files, "HASH_CHUNK", 1000)
    data = bytes(range(256)) * 20  # 5,120 bytes: 6 chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    assert file_sha256(path, lambda done, size: seen.append((done, size))) == hashlib.sha256(data).hexdigest()
    assert [done for done, _ in seen] == [1000, 2000, 3000, 4000, 5000, 5120]
    assert {size for _, size in seen} == {5120}
