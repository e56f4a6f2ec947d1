"""MLS-En reader (Multilingual LibriSpeech, English): read-audiobook utterances, each its own recording.

Layouts (docs/data.md, "Published layouts"). OpenSLR 94, ``mls_english`` extracted (the opus release is
the same with ``.opus``)::

    {root}/{split}/transcripts.txt      {speaker}_{book}_{utt:06d}<TAB>transcript, one line per utterance
    {root}/{split}/audio/{speaker}/{book}/{speaker}_{book}_{utt:06d}.flac
    {root}/{split}/segments.txt         not read (each utterance's source mp3 URL and times)

The hub's parquet release (``parler-tts/mls_eng``)::

    {root}/data/{split}-{i:05d}-of-{n:05d}.parquet     columns audio {bytes, path}, transcript,
        speaker_id, book_id, begin_time, end_time, audio_duration, original_path

``root`` is the release directory, or one split's directory (it holds ``transcripts.txt``: that split is
read). Splits are train, dev and test; `list_shards` reads ``DEFAULT_SPLITS`` (train) unless told.

Shards. OpenSLR: ``transcripts.txt`` is cut into pieces of ``TRANSCRIPT_BYTES_PER_SHARD`` bytes, so
listing needs only the file's size. A piece is widened to whole books: it starts after the run of
lines of the book holding the first line at or after its first byte, and ends with the run of the
book holding the first line at or after its last byte. Every line is read by exactly one shard, and
a run of a book's lines by one shard, which lists that book's audio directory once to find audio
without a transcript line. Names ``{split}-{piece:05d}``. Parquet: one shard per file, named by its
path under ``root`` ('/' -> '-', suffix dropped).

Bad input is skipped and counted: a line without a tab or whose id is not ``{speaker}_{book}_{utt}``
(``bad_metadata``), a line that is not UTF-8 (``non_utf8``), an empty transcript (``empty_text``), a
line whose audio file is missing (``missing_audio``), an audio file no line of its book's run names
(``no_transcript``), a parquet file that does not read (``corrupt_shard``), and the audio checks of
`soda_jax.data.audio_checks`.
"""

from __future__ import annotations

import logging
import math
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data import audio_checks
from soda_jax.data.sources import utterance as reasons
from soda_jax.data.sources.tar_shards import AUDIO_SUFFIXES, split_member_name
from soda_jax.data.sources.utterance import SkipCounter, Utterance

logger = logging.getLogger(__name__)

NAME = "mls"
LANGUAGE = "en"
"""MLS-En is English; a ``languages`` selection without it lists nothing."""
MLS_SPLITS = ("train", "dev", "test")
DEFAULT_SPLITS = ("train",)
TRANSCRIPTS_FILE, AUDIO_DIR, PARQUET_SUFFIX = "transcripts.txt", "audio", ".parquet"
TRANSCRIPT_BYTES_PER_SHARD = 512 * 1024
"""Bytes of ``transcripts.txt`` per shard: some two thousand lines, a few hours of read speech; MLS-En's
train split (10.8M lines) makes a few thousand shards."""
PARQUET_ROWS_PER_BATCH = 64
"""Parquet rows read at once (each carries its encoded audio)."""
MLS_ID = re.compile(r"(\d+)_(\d+)_(\d+)")
"""An utterance id, ``{speaker}_{book}_{utt}``."""
CENTISECONDS = 100


@dataclass(frozen=True)
class Shard:
    """A piece of one split's ``transcripts.txt`` (OpenSLR), or one parquet file."""

    name: str
    """``{split}-{piece:05d}`` or the parquet file's path: the output parquet's name."""
    split: str
    url: str
    """``transcripts.txt`` or the parquet file."""
    audio_url: str = ""
    """``{split}/audio`` (OpenSLR)."""
    start: int = 0
    """First byte of the piece of ``transcripts.txt`` (before widening to whole books)."""
    end: int = 0
    """One past its last byte."""


def list_shards(
    root: str,
    languages: Sequence[str] = (),
    splits: Sequence[str] = DEFAULT_SPLITS,
    bytes_per_shard: int = TRANSCRIPT_BYTES_PER_SHARD,
) -> list[Shard]:
    """The shards of ``splits`` under ``root``, sorted by name (none if ``languages`` leaves out English)."""
    unknown = sorted(set(splits) - set(MLS_SPLITS))
    if unknown:
        raise ValueError(f"unknown MLS split(s) {unknown}; MLS has {list(MLS_SPLITS)}")
    if languages and LANGUAGE not in languages:
        logger.info("%s: MLS-En is %r, not in languages %s: nothing listed", root, LANGUAGE, tuple(languages))
        return []
    fs, base = fileio.filesystem(root)
    base = base.rstrip("/")
    if fs.isfile(f"{base}/{TRANSCRIPTS_FILE}"):
        split_dirs = {posixpath.basename(base): base}
    else:
        split_dirs = {s: f"{base}/{s}" for s in splits if fs.isfile(f"{base}/{s}/{TRANSCRIPTS_FILE}")}
    shards: list[Shard] = []
    for split, directory in split_dirs.items():
        transcripts = f"{directory}/{TRANSCRIPTS_FILE}"
        size = fs.size(transcripts)
        for piece in range(math.ceil(size / bytes_per_shard)):
            shards.append(
                Shard(
                    name=f"{split}-{piece:05d}",
                    split=split,
                    url=fileio.url_of(fs, transcripts),
                    audio_url=fileio.url_of(fs, f"{directory}/{AUDIO_DIR}"),
                    start=piece * bytes_per_shard,
                    end=min((piece + 1) * bytes_per_shard, size),
                )
            )
    if not split_dirs:
        shards = _parquet_shards(fs, base, splits)
    return sorted(shards, key=lambda s: s.name)


def _parquet_shards(fs: Any, base: str, splits: Sequence[str]) -> list[Shard]:
    """One shard per ``{split}-*.parquet`` (or ``{split}/*.parquet``) file under ``base``."""
    shards = []
    for path in sorted(fs.find(base)):
        if not path.endswith(PARQUET_SUFFIX):
            continue
        relative = path[len(base) :].lstrip("/")
        *dirs, filename = relative.split("/")
        split = next((s for s in splits if filename.startswith(f"{s}-") or s in dirs), None)
        if split is not None:
            name = relative.removesuffix(PARQUET_SUFFIX).replace("/", "-")
            shards.append(Shard(name=name, split=split, url=fileio.url_of(fs, path)))
    return shards


def read_shard(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """The utterances of one shard, in file order; bad input is skipped and counted."""
    if shard.url.endswith(PARQUET_SUFFIX):
        yield from _read_parquet(shard, skips)
        return
    fs, path = fileio.filesystem(shard.url)
    with fs.open(path, "rb") as f:
        run: list[tuple[int, bytes]] = []
        current: str | None = None
        for line in _shard_lines(f, shard.start, shard.end):
            key = book_key(line[1])
            if key is not None and current is not None and key != current:
                yield from _read_run(shard, current, run, skips)
                run = []
            current = key or current
            run.append(line)
        yield from _read_run(shard, current, run, skips)


def line_id(line: bytes) -> str | None:
    """The utterance id a transcript line starts with, None when it is not ``{speaker}_{book}_{utt}``."""
    candidate = line.split(b"\t", 1)[0].decode("ascii", errors="replace")
    return candidate if MLS_ID.fullmatch(candidate) else None


def book_key(line: bytes) -> str | None:
    """``{speaker}_{book}`` of a transcript line, None when its id does not parse."""
    utterance_id = line_id(line)
    return utterance_id.rsplit("_", 1)[0] if utterance_id else None


def _lines_from(f: Any, offset: int) -> Iterator[tuple[int, bytes]]:
    """(first byte, line without its newline) of each line of ``f`` that starts at or after ``offset``."""
    f.seek(max(0, offset - 1))
    if offset > 0:
        f.readline()  # the rest of the line holding byte offset-1 (just "\n" when a line starts at offset)
    while True:
        start = f.tell()
        line = f.readline()
        if not line:
            return
        yield start, line.rstrip(b"\r\n")


def _shard_lines(f: Any, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """The lines of the piece [start, end) widened to whole runs of a book's lines (module docstring).

    A malformed line belongs to the run it sits in; runs are told apart by well-formed lines only.
    """
    skipping, skip_key, end_key = start > 0, None, None
    for offset, line in _lines_from(f, start):
        key = book_key(line)
        if offset >= end and key is not None:
            if end_key is None:
                end_key = key
            elif key != end_key:
                return
        if skipping:
            if key is None or skip_key is None or key == skip_key:
                skip_key = skip_key or key
                continue
            skipping = False
        yield offset, line


def _read_run(shard: Shard, key: str | None, run: list[tuple[int, bytes]], skips: SkipCounter) -> Iterator[Utterance]:
    """The utterances of one run of lines of book ``key`` (None: a run of malformed lines only)."""
    audio = _book_audio(shard, key) if key is not None else {}
    named = {line_id(raw) for _, raw in run}  # a line that names its audio claims it, usable or not
    for offset, raw in run:
        where = f"{shard.url} byte {offset}"
        parsed = _parse_line(raw, where, skips)
        if parsed is None:
            continue
        utterance_id, text = parsed
        if utterance_id not in audio:
            skips.skip(reasons.MISSING_AUDIO, f"{where} {utterance_id}", "no audio file of that name")
            continue
        url = audio[utterance_id]
        speaker = utterance_id.split("_", 1)[0]
        utterance = _utterance(utterance_id, text, speaker, fileio.read_bytes(url), url, skips)
        if utterance is not None:
            yield utterance
    for utterance_id in sorted(set(audio) - named):
        skips.skip(reasons.NO_TRANSCRIPT, audio[utterance_id], "no line of transcripts.txt names it")


def _parse_line(raw: bytes, where: str, skips: SkipCounter) -> tuple[str, str] | None:
    """(utterance id, transcript) of a line, or None (skipped and counted)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        skips.skip(reasons.NON_UTF8, where, str(e))
        return None
    utterance_id, tab, text = line.partition("\t")
    if not tab or not MLS_ID.fullmatch(utterance_id):
        skips.skip(reasons.BAD_METADATA, where, f"not '{{speaker}}_{{book}}_{{utt}}<TAB>text': {line[:80]!r}")
        return None
    text = audio_checks.transcript(text)
    if not text:
        skips.skip(reasons.EMPTY_TEXT, f"{where} {utterance_id}")
        return None
    return utterance_id, text


def _book_audio(shard: Shard, key: str) -> dict[str, str]:
    """Utterance id -> audio URL of every audio file in a book's directory (empty when it has none)."""
    speaker, book = key.split("_")
    fs, directory = fileio.filesystem(fileio.join(shard.audio_url, speaker, book))
    try:
        paths = fs.ls(directory, detail=False)
    except FileNotFoundError:
        return {}
    audio = {}
    for path in paths:
        stem, suffix = split_member_name(path)
        if suffix in AUDIO_SUFFIXES:
            audio[stem] = fileio.url_of(fs, path)
    return audio


def _utterance(
    utterance_id: str, text: str, speaker: str, data: bytes, where: str, skips: SkipCounter
) -> Utterance | None:
    """One checked utterance (its own recording), or None (counted)."""
    audio = audio_checks.decode_checked(data, where, skips)
    if audio is None or not audio_checks.plausible_utterance(text, audio, where, skips):
        return None
    return Utterance.whole(utterance_id, audio, text, LANGUAGE, speaker, MIMI_SAMPLE_RATE)


PARQUET_REQUIRED = ("audio", "transcript")
PARQUET_OPTIONAL = ("speaker_id", "book_id", "begin_time", "original_path")


def _read_parquet(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """Rows of one parquet file; a file that does not read ends the shard, counted, not raised."""
    fs, path = fileio.filesystem(shard.url)
    row = 0
    with fs.open(path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
            names = parquet.schema_arrow.names
            missing = [c for c in PARQUET_REQUIRED if c not in names]
            if missing:
                raise ValueError(f"{shard.url}: no column(s) {missing} (columns: {names}): not MLS's release")
            columns = [c for c in (*PARQUET_REQUIRED, *PARQUET_OPTIONAL) if c in names]
            for batch in parquet.iter_batches(batch_size=PARQUET_ROWS_PER_BATCH, columns=columns):
                for record in batch.to_pylist():
                    utterance = _parquet_utterance(shard, row, record, skips)
                    row += 1
                    if utterance is not None:
                        yield utterance
        except (pa.ArrowException, OSError) as e:
            skips.skip(reasons.CORRUPT_SHARD, f"{shard.url} row {row}", f"{type(e).__name__}: {e}")


def parquet_utterance_id(record: dict[str, Any]) -> str:
    """The MLS id in ``original_path`` or the audio's path; else ``{speaker_id}_{book_id}_{begin_cs:08d}``."""
    audio = record.get("audio") or {}
    for candidate in (record.get("original_path"), audio.get("path") if isinstance(audio, dict) else None):
        if isinstance(candidate, str):
            stem = posixpath.basename(candidate).split(".", 1)[0]
            if MLS_ID.fullmatch(stem):
                return stem
    begin = record.get("begin_time")
    begin_cs = round(float(begin) * CENTISECONDS) if isinstance(begin, (int, float)) else 0
    return f"{record.get('speaker_id')}_{record.get('book_id')}_{begin_cs:08d}"


def _parquet_utterance(shard: Shard, row: int, record: dict[str, Any], skips: SkipCounter) -> Utterance | None:
    where = f"{shard.url} row {row}"
    text = audio_checks.transcript(record.get("transcript"))
    if not text:
        skips.skip(reasons.EMPTY_TEXT, where)
        return None
    audio = record.get("audio")
    data = audio.get("bytes") if isinstance(audio, dict) else None
    if not data:
        skips.skip(reasons.MISSING_AUDIO, where, "no audio bytes")
        return None
    utterance_id = parquet_utterance_id(record)
    speaker = utterance_id.split("_", 1)[0] if record.get("speaker_id") is None else str(record["speaker_id"])
    return _utterance(utterance_id, text, speaker, data, where, skips)
