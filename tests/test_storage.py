"""Image storage: key rules, the local folder store and its atomic writes."""

from __future__ import annotations

import os
import threading

import pytest

from survey.storage import LocalStorage, Storage, key_for, validate_key

SHA = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"


def test_key_for_spreads_files_by_study_and_hash():
    assert len(SHA) == 64
    assert key_for(12, SHA, "jpg", "display") == f"12/ab/{SHA}-display.jpg"
    assert validate_key(key_for(1, SHA, "webp", "original")) == f"1/ab/{SHA}-original.webp"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, SHA, "jpg", "display"), "study_id must be a positive integer, not 0"),
        (("12", SHA, "jpg", "display"), "study_id must be a positive integer, not '12'"),
        ((True, SHA, "jpg", "display"), "study_id must be a positive integer, not True"),
        ((12, SHA.upper(), "jpg", "display"), "sha256 must be 64 lower-case hex digits"),
        ((12, SHA[:-1], "jpg", "display"), "sha256 must be 64 lower-case hex digits"),
        ((12, "../" + SHA[3:], "jpg", "display"), "sha256 must be 64 lower-case hex digits"),
        (
            (12, SHA, ".jpg", "display"),
            "ext must be a short lower-case extension without a dot, not '.jpg'",
        ),
        ((12, SHA, "jpg/x", "display"), "ext must be"),
        (
            (12, SHA, "jpg", "Display"),
            "variant must be lower-case letters, digits or '_', not 'Display'",
        ),
        ((12, SHA, "jpg", "a/b"), "variant must be"),
    ],
)
def test_key_for_refuses_bad_parts(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        key_for(*args)


@pytest.mark.parametrize("key", ["a", "12/ab/abc-display.jpg", "x_y-z.1/2", "A" * 255])
def test_valid_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../secret",
        "a/../../b",
        "a/./b",
        "..",
        ".hidden",
        "a/.tmp-123.jpg",
        "a//b",
        "a/",
        "a\\b",
        "..\\b",
        "a b",
        "é.jpg",
        "a\x00b",
        "C:/x",
        "A" * 256,
        None,
    ],
)
def test_unsafe_keys_are_refused(key, tmp_path):
    with pytest.raises(ValueError, match="storage key"):
        validate_key(key)  # type: ignore[arg-type]
    store = LocalStorage(tmp_path / "media")
    with pytest.raises(ValueError, match="storage key"):
        store.put(key, b"x", "image/jpeg")  # type: ignore[arg-type]
    assert not (tmp_path / "media").exists()


def test_local_storage_is_a_storage():
    assert isinstance(LocalStorage("/nonexistent"), Storage)


def test_put_get_open_exists_delete(tmp_path):
    store = LocalStorage(tmp_path / "media")
    key = key_for(3, SHA, "jpg", "original")
    assert not store.exists(key)
    store.put(key, b"first", "image/jpeg")
    assert store.exists(key)
    assert store.get(key) == b"first"
    path = store.open(key)
    assert path == tmp_path / "media" / "3" / "ab" / f"{SHA}-original.jpg"
    assert path.read_bytes() == b"first"
    store.put(key, b"second", "image/jpeg")
    assert store.get(key) == b"second"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is harmless
    with pytest.raises(FileNotFoundError):
        store.get(key)
    with pytest.raises(FileNotFoundError, match="no stored file"):
        store.open(key)


def test_a_folder_is_not_a_stored_file(tmp_path):
    store = LocalStorage(tmp_path)
    store.put("3/ab/x.jpg", b"x", "image/jpeg")
    assert not store.exists("3/ab")
    with pytest.raises(FileNotFoundError):
        store.open("3/ab")


def leftovers(folder) -> list[str]:
    """List the temporary files left in a folder tree."""
    return [name for _, _, names in os.walk(folder) for name in names if name.startswith(".tmp-")]


def test_failed_replace_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path)
    store.put("a/b.jpg", b"old", "image/jpeg")

    def broken_replace(src, dst):
        """Fail like a full disk or a killed process at the last step."""
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put("a/b.jpg", b"new" * 1000, "image/jpeg")
    monkeypatch.undo()
    assert store.get("a/b.jpg") == b"old"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path)

    def broken_fsync(fd):
        """Fail while the data is being flushed."""
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        store.put("a/new.jpg", b"data", "image/jpeg")
    monkeypatch.undo()
    assert not store.exists("a/new.jpg")
    assert leftovers(tmp_path) == []


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path):
    store = LocalStorage(tmp_path)
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [
        threading.Thread(target=store.put, args=("k.jpg", p, "image/jpeg")) for p in payloads
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("k.jpg") in payloads
    assert leftovers(tmp_path) == []
