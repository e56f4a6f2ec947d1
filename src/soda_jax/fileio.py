"""Filesystem helpers over fsspec: one place for URL joins and atomic writes.

Every path in soda-jax may be a local path or an fsspec URL (``gs://``, ``memory://`` ...).
Writes are atomic: a reader sees the old file or the new one, never a partial one. On a local
disk that is write-to-temp then ``os.replace``; on object stores (GCS, memory) a single upload
is already atomic.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

_commit_guards: list[Callable[[str], None]] = []


def add_commit_guard(guard: Callable[[str], None]) -> None:
    """Call ``guard(url)`` before every commit (atomic write, appended row): it raises to refuse it.

    The executor's lease fencing installs one, so an attempt that lost its step cannot commit there.
    """
    if guard not in _commit_guards:
        _commit_guards.append(guard)


def check_commit(url: str) -> None:
    """Raise if a commit guard refuses writing ``url`` now (for writers that do not use the atomic helpers)."""
    for guard in _commit_guards:
        guard(url)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path within it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def is_local(url: str) -> bool:
    return isinstance(filesystem(url)[0], LocalFileSystem)


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URL, with exactly one '/' between them."""
    out = base.rstrip("/") if base not in ("/", "") else base
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if out and not out.endswith("/") else f"{out}{part}"
    return out


def url_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URL of a path ``fs`` listed (``fs.find``, ``fs.glob``): a plain path on a local disk."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def parent(url: str) -> str:
    """The directory holding ``url``, in the filesystem's own path form (what ``invalidate_cache`` takes)."""
    fs, path = filesystem(url)
    return posixpath.dirname(path.rstrip("/"))


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def makedirs(url: str) -> None:
    fs, path = filesystem(url)
    fs.makedirs(path, exist_ok=True)


def atomic_write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` so that readers never observe a partial file."""
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            check_commit(url)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        directory = posixpath.dirname(path.rstrip("/"))
        if directory:
            fs.makedirs(directory, exist_ok=True)
        check_commit(url)
        fs.pipe_file(path, data)
        fs.invalidate_cache(directory)


def atomic_write_text(url: str, text: str) -> None:
    atomic_write_bytes(url, text.encode("utf-8"))


def atomic_write_json(url: str, obj: Any) -> None:
    atomic_write_text(url, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        return f.read()


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url: str) -> Any:
    return json.loads(read_text(url))


def read_json_or_none(url: str) -> Any | None:
    """The parsed JSON at ``url``, or None if there is no file there."""
    try:
        return read_json(url)
    except FileNotFoundError:
        return None


def temporary_sibling(url: str) -> str:
    """A unique path next to ``url`` for staging a directory before it is renamed into place."""
    return f"{url.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
