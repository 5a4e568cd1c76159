"""dashboard.uploads: storing uploads safely."""

from __future__ import annotations

import io

import pytest

from dashboard import uploads


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/absolute/path/x.png", "x.png"),
        ("holiday photo (1).JPG", "holiday_photo_1_.JPG"),
        ("Café Crème.png", "Cafe_Creme.png"),
        ("..", "upload"),
        (".hidden", "hidden"),
        ("", "upload"),
        ("a\x00b.png", "a_b.png"),
    ],
)
def test_sanitize_filename(name, expected):
    assert uploads.sanitize_filename(name) == expected


def test_sanitize_keeps_the_extension_of_long_names():
    name = "x" * 300 + ".jpeg"
    safe = uploads.sanitize_filename(name)
    assert len(safe) <= uploads.MAX_NAME_CHARS and safe.endswith(".jpeg")


def test_uploads_are_hashed_sanitised_and_never_overwritten(tmp_path):
    from core.config import data_dir

    root = (data_dir() / "uploads" / "images").resolve()
    a = uploads.save_upload(b"first content", "../../../tmp/evil.jpg", kind="images")
    assert a.parent.parent == root and a.name == "evil.jpg"
    assert a.parent.name == __import__("hashlib").sha256(b"first content").hexdigest()[:16]
    assert a.read_bytes() == b"first content"
    # different content, same name: another file, the first one untouched
    b = uploads.save_upload(b"other content", "evil.jpg", kind="images")
    assert b != a and a.read_bytes() == b"first content" and b.read_bytes() == b"other content"
    # the same content again: the same file, not rewritten
    mtime = a.stat().st_mtime_ns
    again = uploads.save_upload(io.BytesIO(b"first content"), "evil.jpg", kind="images")
    assert again == a and a.stat().st_mtime_ns == mtime
    # nothing was written outside the uploads folder, and no temp files are left
    assert not (tmp_path / "tmp").exists()
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["evil.jpg", "evil.jpg"]


def test_upload_kind_must_be_a_plain_word():
    for bad in ("../x", "a/b", "", "X"):
        with pytest.raises(ValueError):
            uploads.uploads_dir(bad)


def test_a_tampered_file_with_the_same_name_is_not_reused(tmp_path):
    a = uploads.save_upload(b"content", "x.png", kind="files")
    a.write_bytes(b"changed on disk")
    b = uploads.save_upload(b"content", "x.png", kind="files")
    assert b != a and b.read_bytes() == b"content" and a.read_bytes() == b"changed on disk"
