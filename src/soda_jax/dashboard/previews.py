"""Previews of output files by type: JSON, JSON lines, parquet heads, images, audio, text."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import PROVENANCE_FILE
from soda_jax.dashboard.files import describe_error, load_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
TEXT_SUFFIXES = (".txt", ".log", ".md", ".yaml", ".yml", ".csv", ".tsv", ".toml", ".cfg", ".py")
HEAD_ROWS = 20
"""Rows shown of a JSON-lines or parquet file."""
HEAD_BYTES = 64 * 1024
"""Bytes read of a text or JSON-lines file for its preview."""
CELL_CHARS = 200
"""Longer cell values (token lists, transcripts) are cut to this many characters."""


@dataclass
class Preview:
    kind: str
    """json, table, tar, image, audio, text or none."""
    value: Any = None
    """Pretty JSON text; rows; text; nothing for media (the page embeds the raw file)."""
    columns: list[str] = field(default_factory=list)
    """Column names of a table (parquet, or the keys of JSON-lines rows)."""
    errors: list[str] = field(default_factory=list)
    """Problems found while reading (per line for JSON lines)."""
    note: str = ""
    """What was left out ("first 20 of 1,024 rows")."""


def cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def head_bytes(url: str, limit: int = HEAD_BYTES) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the file and whether there is more."""
    fs, path = fileio.filesystem(url)
    with fs.open(path, "rb") as f:
        data = f.read(limit + 1)
    return data[:limit], len(data) > limit


def parse_json_lines(data: bytes, name: str, first_line: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a JSON-lines blob; each unreadable line becomes an error naming it."""
    rows, errors = [], []
    for number, line in enumerate(data.split(b"\n"), first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except Exception as e:  # one bad line must not hide the others
            errors.append(describe_error(f"{name} line {number}", e))
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            errors.append(f"{name} line {number}: not a JSON object")
    return rows, errors


def preview(url: str) -> Preview:
    name = url.rsplit("/", 1)[-1]
    lower = name.lower()
    try:
        if lower.endswith(IMAGE_SUFFIXES):
            return Preview("image")
        if lower.endswith(AUDIO_SUFFIXES):
            return Preview("audio")
        if lower.endswith(".json") or name.startswith(".executor_") or name == PROVENANCE_FILE:
            item = load_json(url, object)
            if item.error:
                return Preview("json", errors=[item.error])
            return Preview("json", json.dumps(item.value, indent=2, default=str)[: HEAD_BYTES * 4])
        if lower.endswith(".jsonl"):
            data, more = head_bytes(url)
            if more:
                data = data[: data.rfind(b"\n") + 1] or data
            rows, errors = parse_json_lines(data, name)
            columns = list(dict.fromkeys(k for row in rows[:HEAD_ROWS] for k in row))
            table = [[cell(row.get(c, "")) for c in columns] for row in rows[:HEAD_ROWS]]
            return Preview("table", table, columns, errors, note=f"first {len(table)} rows")
        if lower.endswith(".parquet"):
            return parquet_head(url)
        if lower.endswith(".tar"):
            return tar_members(url)
        if lower.endswith(TEXT_SUFFIXES) or "." not in name:
            data, more = head_bytes(url)
            return Preview("text", data.decode("utf-8", errors="replace"), note="first 64 KiB" if more else "")
    except Exception as e:  # a preview is best effort: say why, keep the page
        return Preview("none", errors=[describe_error(name, e)])
    return Preview("none")


def parquet_head(url: str) -> Preview:
    import pyarrow.parquet as pq

    fs, path = fileio.filesystem(url)
    with fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        total = parquet.metadata.num_rows
        batch = next(parquet.iter_batches(batch_size=HEAD_ROWS), None)
        columns = parquet.schema_arrow.names
        rows = batch.to_pylist() if batch is not None else []
    table = [[cell(row.get(c)) for c in columns] for row in rows]
    return Preview("table", table, columns, note=f"first {len(table)} of {total:,} rows")


TAR_MEMBERS_SHOWN = 200
MAX_MEMBER_BYTES = 64 * 1024 * 1024


def tar_members(url: str) -> Preview:
    """The first members of a tar shard (webdataset-style speech shards: audio + JSON per utterance)."""
    import tarfile

    fs, path = fileio.filesystem(url)
    rows: list[dict[str, Any]] = []
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if len(rows) >= TAR_MEMBERS_SHOWN:
                break
            if member.isfile():
                rows.append(
                    {"name": member.name, "size": member.size, "audio": member.name.lower().endswith(AUDIO_SUFFIXES)}
                )
    return Preview("tar", rows, note=f"first {len(rows)} members" if len(rows) == TAR_MEMBERS_SHOWN else "")


def tar_member_bytes(url: str, name: str) -> bytes:
    """One member of an uncompressed tar (headers are skipped over by seeking, not read through)."""
    import tarfile

    fs, path = fileio.filesystem(url)
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        member = tar.getmember(name)  # KeyError: not in this tar
        if not member.isfile() or member.size > MAX_MEMBER_BYTES:
            raise KeyError(name)
        extracted = tar.extractfile(member)
        return extracted.read() if extracted is not None else b""
