"""Reading what steps wrote without ever failing the page: each file is an `Item`, value or error.

A step may be mid-write, killed, or have left something odd; the dashboard shows what is wrong
with that one file ("summary.json: not JSON (line 1, column 7)") and renders everything else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from soda_jax import fileio
from soda_jax.execution.status import describe_read_error as describe_error

MAX_JSON_BYTES = 20 * 1024 * 1024
"""JSON files larger than this are not parsed for display (a link to the raw file is shown)."""


@dataclass(frozen=True)
class Item:
    """One file as the page shows it: its parsed value, or why it could not be read."""

    value: Any = None
    """Parsed content; None when missing or unreadable."""
    error: str | None = None
    """What is wrong with the file, naming it; None when it was read (or simply is not there)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


def load_json(url: str, expect: type = dict) -> Item:
    """The JSON at ``url`` as an `Item`; a missing file is an empty item, never an error."""
    name = url.rsplit("/", 1)[-1]
    try:
        fs, path = fileio.filesystem(url)
        size = fs.size(path)
        if size is not None and size > MAX_JSON_BYTES:
            return Item(error=f"{name}: {size:,} bytes, too large to show")
        value = json.loads(fileio.read_bytes(url).decode("utf-8"))
    except FileNotFoundError:
        return Item()
    except (IsADirectoryError, NotADirectoryError):
        return Item(error=f"{name}: not a regular file")
    except Exception as e:  # any other reason the file cannot be read is shown, not raised
        return Item(error=describe_error(name, e))
    if not isinstance(value, expect):
        return Item(error=f"{name}: expected a JSON {expect.__name__}, found {type(value).__name__}")
    return Item(value)


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int | None


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    """The requested page of entries, directories first, then by name."""
    total: int
    """Entries in the directory."""


def list_directory(url: str, offset: int = 0, limit: int = 500) -> Listing:
    """One page of a directory; stays fast with 100k entries (sizes are looked up for the page only)."""
    fs, path = fileio.filesystem(url)
    if fileio.is_local(url):
        dirs: list[str] = []
        files: list[str] = []
        with os.scandir(path) as it:
            for e in it:
                (dirs if e.is_dir() else files).append(e.name)
        dirs.sort()  # plain string sorts: several times faster than sorting (is_file, name) tuples
        files.sort()
        page = [(name, True) for name in dirs[offset : offset + limit]]
        page += [(name, False) for name in files[max(0, offset - len(dirs)) : max(0, offset + limit - len(dirs))]]
        entries = []
        for name, is_dir in page:
            size = None
            if not is_dir:
                try:
                    size = os.stat(os.path.join(path, name)).st_size
                except OSError:
                    pass
            entries.append(Entry(name, is_dir, size))
        return Listing(entries, len(dirs) + len(files))
    infos = fs.ls(path, detail=True)
    rows = sorted((i["type"] != "directory", i["name"].rstrip("/").rsplit("/", 1)[-1], i.get("size")) for i in infos)
    rows = [r for r in rows if r[1]]
    row_page = rows[offset : offset + limit]
    return Listing(
        [Entry(name, not not_dir, None if not not_dir else size) for not_dir, name, size in row_page], len(rows)
    )
