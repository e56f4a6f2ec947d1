"""Text corpora as published, for `tokenize_text`: which files a run reads, and the texts in them.

Formats: ``.jsonl``, ``.jsonl.gz`` / ``.json.gz``, ``.jsonl.zstd`` / ``.jsonl.zst`` (zstandard, streamed
frame by frame) and ``.parquet``, each record a JSON object or row with a text field.

Nemotron-CC as NVIDIA publishes it on Common Crawl (docs/data.md, "Published layouts")::

    contrib/Nemotron/Nemotron-CC/data-jsonl/quality={high,medium-high,medium,medium-low,low}/
        kind={actual,synthetic}/kind2={actual,distill,diverse_qa_pairs,...}/
        CC-MAIN-{yyyy}-{ww}-part-{n:05d}.jsonl.zstd
    {"warc_record_id": ..., "url": ..., "text": ..., ...} per line

Partitions are Hive-style directories (``key=value``). In a tree that has them, only the files under
the selected ``partitions`` are read (SODA read ``NEMOTRON_HQ_ACTUAL``); a tree without them is read
whole. A file's shard name is its path under the input directory ('/' -> '-', suffix dropped), so
files of one name in different partitions stay apart.

A file that ends early or does not decompress (a truncated ``.zst`` or ``.gz``, a parquet file
without its footer) ends its shard: the records read before are kept, the file is counted once as
``corrupt_shard``. A line cut off by the truncation is part of that count, not a bad record.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from soda_jax import fileio
from soda_jax.data.sources.utterance import CORRUPT_SHARD, NON_UTF8

logger = logging.getLogger(__name__)

GZIP_SUFFIXES = (".jsonl.gz", ".json.gz")
ZSTD_SUFFIXES = (".jsonl.zstd", ".jsonl.zst")
PARQUET_SUFFIX = ".parquet"
TEXT_SUFFIXES = (".jsonl", *GZIP_SUFFIXES, *ZSTD_SUFFIXES, PARQUET_SUFFIX)
NEMOTRON_HQ_ACTUAL = ("quality=high/kind=actual/kind2=actual",)
"""SODA's text: Nemotron-CC's high-quality real (not synthetic) documents, ``hq_actual``."""
PARTITION_DIR = re.compile(r"[^/=]+=[^/]*")
"""A Hive-style partition directory, ``quality=high``."""
READ_CHUNK_BYTES = 1 << 20
"""Compressed bytes read at a time from a ``.zst`` file."""

SKIP_BAD_JSON, SKIP_NO_TEXT, SKIP_EMPTY = "invalid_json", "missing_or_non_string_text", "empty_text"
SKIP_NON_UTF8, SKIP_CORRUPT = NON_UTF8, CORRUPT_SHARD
CORRUPT_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError, pa.ArrowInvalid)
"""What a truncated or garbled file raises while it is read (not a failing read: that fails the shard)."""

Skip = Callable[[int, str, str], None]
"""``skip(record number, reason, detail)``: count a record (for ``corrupt_shard``: the file) as skipped."""


@dataclass(frozen=True)
class TextFile:
    """One input file: a shard of the step."""

    url: str
    shard_name: str
    """Its path under the input directory, '/' -> '-', suffix dropped."""
    partition: str = ""
    """Its Hive partition directories (``quality=high/kind=actual/kind2=actual``), "" outside any."""


def strip_text_suffix(name: str) -> str:
    for suffix in sorted(TEXT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def partition_of(relative: str) -> str:
    """The run of ``key=value`` directories in a relative file path ("" when there is none)."""
    dirs = relative.split("/")[:-1]
    first = next((i for i, d in enumerate(dirs) if PARTITION_DIR.fullmatch(d)), None)
    if first is None:
        return ""
    run = []
    for d in dirs[first:]:
        if not PARTITION_DIR.fullmatch(d):
            break
        run.append(d)
    return "/".join(run)


def selected(partition: str, partitions: Sequence[str]) -> bool:
    """Whether ``partition`` is one of ``partitions`` or lies under one (whole directories only)."""
    parts = partition.split("/")
    return any(parts[: len(p.strip("/").split("/"))] == p.strip("/").split("/") for p in partitions)


def list_text_files(input_path: str, partitions: Sequence[str] = NEMOTRON_HQ_ACTUAL) -> list[TextFile]:
    """The files a run reads: ``input_path`` itself, or the text files under it (module docstring), sorted."""
    fs, path = fileio.filesystem(input_path)
    if fs.isfile(path):
        return [TextFile(fileio.url_of(fs, path), strip_text_suffix(path.rstrip("/").rsplit("/", 1)[-1]))]
    base = path.rstrip("/")
    files = []
    for found in sorted(fs.find(base)):
        if found.endswith(TEXT_SUFFIXES):
            relative = found[len(base) :].lstrip("/")
            name = strip_text_suffix(relative).replace("/", "-")
            files.append(TextFile(fileio.url_of(fs, found), name, partition_of(relative)))
    if not files:
        raise FileNotFoundError(f"{input_path}: no {'/'.join(TEXT_SUFFIXES)} files")
    available = sorted({f.partition for f in files if f.partition})
    if not available or not partitions:
        return files
    chosen = [f for f in files if f.partition and selected(f.partition, partitions)]
    if not chosen:
        raise FileNotFoundError(f"{input_path}: no files in partitions {list(partitions)}; has {available}")
    read = sorted({f.partition for f in chosen})
    logger.info("%s: %d of %d files, partitions %s", input_path, len(chosen), len(files), read)
    return chosen


def iter_texts(url: str, text_field: str, skip: Skip) -> Iterator[tuple[int, str]]:
    """(record number, text) of each usable record of a file; bad records and a corrupt file are counted."""
    fs, path = fileio.filesystem(url)
    record = 0
    with fs.open(path, "rb") as raw:
        try:
            if url.endswith(PARQUET_SUFFIX):
                for record, text in enumerate(_parquet_texts(raw, url, text_field)):
                    if _usable(record, text, skip):
                        yield record, text
            else:
                for record, line in enumerate(_lines(raw, url)):
                    text = _json_text(record, line, text_field, skip)
                    if text is not _COUNTED and _usable(record, text, skip):
                        yield record, text
        except CORRUPT_ERRORS as e:
            skip(record, SKIP_CORRUPT, f"{type(e).__name__}: {e}")


def _lines(raw: IO[bytes], url: str) -> Iterator[bytes]:
    """The lines of a jsonl file (decompressed), newline included; a truncated file raises."""
    if url.endswith(ZSTD_SUFFIXES):
        yield from _split_lines(_zstd_chunks(raw))
    elif url.endswith(GZIP_SUFFIXES):
        yield from gzip.GzipFile(fileobj=raw, mode="rb")
    else:
        yield from raw


def _zstd_chunks(raw: IO[bytes]) -> Iterator[bytes]:
    """Decompressed bytes of a zstandard file of one or more frames; EOFError if the last frame is cut off.

    (`zstandard`'s ``stream_reader`` ends quietly at a cut, so frames are followed here.)
    """
    context = zstandard.ZstdDecompressor()
    frame, fed = context.decompressobj(), False
    while chunk := raw.read(READ_CHUNK_BYTES):
        while chunk:
            fed = True
            out = frame.decompress(chunk)
            if out:
                yield out
            if frame.eof:
                chunk, frame, fed = frame.unused_data, context.decompressobj(), False
            else:
                chunk = b""
    if fed and not frame.eof:
        raise EOFError("zstandard stream ends inside a frame (file truncated)")


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


_COUNTED = object()
"""`_json_text`'s answer for a blank line or a line already counted as skipped."""


def _json_text(record: int, line: bytes, text_field: str, skip: Skip) -> Any:
    """The text field of a JSON line (any value, None when absent; `_usable` checks it), or ``_COUNTED``."""
    if not line.strip():
        return _COUNTED
    try:
        value = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        skip(record, SKIP_NON_UTF8, str(e))
        return _COUNTED
    except json.JSONDecodeError as e:
        skip(record, SKIP_BAD_JSON, str(e))
        return _COUNTED
    if not isinstance(value, dict):
        skip(record, SKIP_BAD_JSON, f"a JSON {type(value).__name__}, not an object")
        return _COUNTED
    return value.get(text_field)


def _parquet_texts(raw: IO[bytes], url: str, text_field: str) -> Iterator[Any]:
    parquet = pq.ParquetFile(raw)
    if text_field not in parquet.schema_arrow.names:
        raise ValueError(f"{url}: no column {text_field!r} (columns: {parquet.schema_arrow.names})")
    for batch in parquet.iter_batches(columns=[text_field]):
        yield from batch.column(0).to_pylist()


def _usable(record: int, text: Any, skip: Skip) -> bool:
    if not isinstance(text, str):
        skip(record, SKIP_NO_TEXT, f"{type(text).__name__}")
        return False
    if not text:
        skip(record, SKIP_EMPTY, "")
        return False
    return True
