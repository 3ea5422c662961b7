"""Image storage behind a small interface: a local folder now, an object store later."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

KEY_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
MAX_KEY_LENGTH = 255  # the width of the image table's key columns
SHA256_RE = re.compile(r"[0-9a-f]{64}")
EXT_RE = re.compile(r"[a-z0-9]{1,8}")
VARIANT_RE = re.compile(r"[a-z0-9_]{1,32}")


@runtime_checkable
class Storage(Protocol):
    """Where image bytes live; every method takes a key checked by validate_key."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data under key, replacing what was there, all at once or not at all."""

    def get(self, key: str) -> bytes:
        """Return the bytes stored under key; FileNotFoundError when there are none."""

    def open(self, key: str) -> str | os.PathLike[str] | BinaryIO:
        """Return something Flask's send_file can serve: a path or a readable binary file."""

    def delete(self, key: str) -> None:
        """Remove what is stored under key; nothing happens when nothing is there."""

    def exists(self, key: str) -> bool:
        """Tell whether something is stored under key."""


def validate_key(key: str) -> str:
    """Return key when it is a safe relative name of [A-Za-z0-9/_.-]; ValueError otherwise."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ValueError(
            f"storage key {key!r} must be relative, made of letters, digits, '/', '_', '.', '-'"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key {key!r} is longer than {MAX_KEY_LENGTH} characters")
    # Names starting with a dot are reserved for temporary files and rule out '.' and '..'.
    if any(part.startswith(".") for part in key.split("/")):
        raise ValueError(f"storage key {key!r} has a part starting with '.'")
    return key


def key_for(study_id: int, sha256: str, ext: str, variant: str) -> str:
    """Return the key of an image file: "<study>/<first two hex>/<sha256>-<variant>.<ext>"."""
    if isinstance(study_id, bool) or not isinstance(study_id, int) or study_id < 1:
        raise ValueError(f"study_id must be a positive integer, not {study_id!r}")
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lower-case hex digits, not {sha256!r}")
    if not isinstance(ext, str) or not EXT_RE.fullmatch(ext):
        raise ValueError(f"ext must be a short lower-case extension without a dot, not {ext!r}")
    if not isinstance(variant, str) or not VARIANT_RE.fullmatch(variant):
        raise ValueError(f"variant must be lower-case letters, digits or '_', not {variant!r}")
    return f"{study_id}/{sha256[:2]}/{sha256}-{variant}.{ext}"


class LocalStorage:
    """Storage in a folder on disk; writes are atomic (a temporary file, then os.replace)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use root as the storage folder; it is created on the first write."""
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        """Show the folder."""
        return f"LocalStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Return the file path of a key after checking the key."""
        return self.root.joinpath(*validate_key(key).split("/"))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write data under key atomically; readers see the old file or the new, never half."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file sits beside the target so os.replace stays on one file system.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        """Return the bytes stored under key; FileNotFoundError when there are none."""
        return self.path(key).read_bytes()

    def open(self, key: str) -> Path:
        """Return the file's path, for send_file; FileNotFoundError when there is none."""
        target = self.path(key)
        if not target.is_file():
            raise FileNotFoundError(f"no stored file under key {key!r}")
        return target

    def delete(self, key: str) -> None:
        """Remove the file under key if it is there."""
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """Tell whether a file is stored under key."""
        return self.path(key).is_file()
