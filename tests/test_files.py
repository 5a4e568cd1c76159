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
