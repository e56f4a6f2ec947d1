"""Readers of the public evaluation layouts (docs/evaluation.md), offline.

* **tables** (sWUGGY, sBLIMP, SALMon, CoVoST2): a parquet or arrow file, or a directory of them (a
  hub snapshot's ``data/*.parquet``, or a ``datasets.save_to_disk`` export's ``*.arrow``). Audio
  cells are what `datasets` stores: ``{"bytes", "path"}`` (encoded audio) or ``{"array",
  "sampling_rate"}``. Decoding is ours (soundfile), so no torchcodec is needed.
* **LibriSpeech**: ``{root}/{split}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt`` (lines
  ``{id} {TRANSCRIPT}``) beside ``{id}.flac``.
* **Seed-TTS eval**: ``meta.lst`` lines ``filename|prompt_text|prompt_wav|target_text``, prompt wavs
  relative to the file's directory.

Bad input raises `BadInput` (a reason from `REASONS` and a detail naming the file and record); the
tasks catch it per item, count it and go on.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, AudioReadError, decode_audio, resample, to_mono

MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_TEXT = "empty_text"
MALFORMED_RECORD = "malformed_record"
TOO_LONG = "too_long"
REASONS = (MISSING_AUDIO, UNREADABLE_AUDIO, EMPTY_TEXT, MALFORMED_RECORD, TOO_LONG)
"""Why an item could not be scored (the keys of a task's ``skipped`` counts)."""
TABLE_SUFFIXES = (".parquet", ".arrow")


class BadInput(ValueError):
    """An item that cannot be evaluated; ``reason`` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class BadItem(BadInput):
    """A `BadInput` for a record whose id is known (what `read_librispeech` and `read_seed_tts` yield)."""

    def __init__(self, item_id: str, reason: str, detail: str):
        super().__init__(reason, detail)
        self.item_id = item_id


@dataclasses.dataclass(frozen=True)
class AudioRef:
    """Audio to be read when needed: a file, encoded bytes, or samples."""

    where: str
    """Names the file or table record in error messages."""
    path: str | None = None
    data: bytes | None = None
    samples: np.ndarray | None = None
    sampling_rate: int | None = None

    def load(self, sample_rate: int = MIMI_SAMPLE_RATE) -> np.ndarray:
        """Mono float32 at ``sample_rate``; `BadInput` when missing or undecodable."""
        if self.samples is not None:
            wave = to_mono(np.asarray(self.samples, dtype=np.float32))
            if not wave.size:
                raise BadInput(UNREADABLE_AUDIO, f"{self.where}: audio has no samples")
            assert self.sampling_rate is not None, f"{self.where}: samples without a sampling rate"
            return np.ascontiguousarray(resample(wave, int(self.sampling_rate), sample_rate), dtype=np.float32)
        data = self.data
        if data is None:
            if not self.path or not fileio.exists(self.path):
                raise BadInput(MISSING_AUDIO, f"{self.where}: no audio file {self.path}")
            data = fileio.read_bytes(self.path)
        try:
            return decode_audio(data, self.where, sample_rate)
        except AudioReadError as error:
            raise BadInput(UNREADABLE_AUDIO, str(error)) from None


# ------------------------------------------------------------------------------------ tables
def table_files(path: str) -> list[str]:
    """The parquet/arrow files of ``path`` (itself, or everything under it, sorted)."""
    if path.endswith(TABLE_SUFFIXES):
        if not fileio.exists(path):
            raise FileNotFoundError(f"{path}: no such table file")
        return [path]
    fs, root = fileio.filesystem(path)
    if not fs.isdir(root):
        raise FileNotFoundError(f"{path}: neither a parquet/arrow file nor a directory")
    found = sorted(f for f in fs.find(root) if f.endswith(TABLE_SUFFIXES) and "/." not in f[len(root) :])
    if not found:
        raise FileNotFoundError(f"{path}: no .parquet or .arrow files under it")
    prefix = path[: len(path) - len(root)] if path.endswith(root) else ""
    return [prefix + f if not fileio.is_local(path) else f for f in found]


def _read_table(file: str) -> pa.Table:
    data = fileio.read_bytes(file)
    if file.endswith(".parquet"):
        return pq.read_table(pa.BufferReader(data))
    try:  # datasets writes the arrow streaming format; plain arrow files are the file format
        return pa.ipc.open_stream(pa.BufferReader(data)).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()


def read_table_rows(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row of the table files of ``path`` (where = ``file#row``)."""
    for file in table_files(path):
        for i, row in enumerate(_read_table(file).to_pylist()):
            yield f"{file}#{i}", row


def audio_cell(row: dict[str, Any], field: str, where: str, base_dir: str) -> AudioRef:
    """The audio of a table cell in any of `datasets`' stored forms."""
    if field not in row:
        raise BadInput(MALFORMED_RECORD, f"{where}: no field {field!r} (fields: {sorted(row)})")
    cell, where = row[field], f"{where}.{field}"
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return AudioRef(where, data=cell["bytes"])
        if cell.get("array") is not None:
            return AudioRef(
                where, samples=np.asarray(cell["array"], np.float32), sampling_rate=int(cell["sampling_rate"])
            )
        if cell.get("path"):
            path = (
                cell["path"]
                if "://" in cell["path"] or cell["path"].startswith("/")
                else fileio.join(base_dir, cell["path"])
            )
            return AudioRef(where, path=path)
    if isinstance(cell, (bytes, bytearray)):
        return AudioRef(where, data=bytes(cell))
    if isinstance(cell, str) and cell:
        return AudioRef(where, path=cell if cell.startswith("/") or "://" in cell else fileio.join(base_dir, cell))
    raise BadInput(MISSING_AUDIO, f"{where}: empty audio cell")


def text_cell(row: dict[str, Any], field: str, where: str) -> str:
    if field not in row:
        raise BadInput(MALFORMED_RECORD, f"{where}: no field {field!r} (fields: {sorted(row)})")
    text = row[field]
    if not isinstance(text, str) or not text.strip():
        raise BadInput(EMPTY_TEXT, f"{where}.{field}: empty text")
    return text


def table_base_dir(path: str) -> str:
    return path if not path.endswith(TABLE_SUFFIXES) else posixpath.dirname(path)


# ------------------------------------------------------------------------------ LibriSpeech
@dataclasses.dataclass(frozen=True)
class Utterance:
    """A transcribed recording."""

    id: str
    audio: AudioRef
    text: str


def read_librispeech(root: str, split: str) -> Iterator[Utterance | BadItem]:
    """Utterances of ``{root}/{split}`` in id order; bad records come as `BadItem` (a `BadInput` with ``.item_id``)."""
    fs, base = fileio.filesystem(fileio.join(root, split))
    if not fs.isdir(base):
        raise FileNotFoundError(f"{fileio.join(root, split)}: no LibriSpeech split directory")
    transcripts = sorted(f for f in fs.find(base) if f.endswith(".trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"{fileio.join(root, split)}: no *.trans.txt files")
    prefix = fileio.join(root, split)[: -len(base)] if not fileio.is_local(root) else ""
    for transcript in transcripts:
        directory = posixpath.dirname(transcript)
        for number, line in enumerate(fileio.read_text(prefix + transcript).splitlines(), 1):
            if not line.strip():
                continue
            item_id, _, text = line.strip().partition(" ")
            where = f"{prefix}{transcript}:{number}"
            if not text.strip():
                yield BadItem(item_id, EMPTY_TEXT, f"{where}: empty transcript for {item_id}")
                continue
            yield Utterance(
                item_id,
                AudioRef(f"{prefix}{directory}/{item_id}.flac", path=f"{prefix}{directory}/{item_id}.flac"),
                text.strip(),
            )


# ------------------------------------------------------------------------------- Seed-TTS
@dataclasses.dataclass(frozen=True)
class TtsItem:
    """A Seed-TTS eval line: speak ``target_text`` in the voice of the prompt."""

    id: str
    prompt_text: str
    prompt_audio: AudioRef
    target_text: str


def read_seed_tts(meta_path: str) -> Iterator[TtsItem | BadItem]:
    """Items of a ``meta.lst``; a line without exactly 4 fields, or with an empty text, is `BadItem`."""
    base = posixpath.dirname(meta_path)
    for number, line in enumerate(fileio.read_text(meta_path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("|")
        where = f"{meta_path}:{number}"
        item_id = fields[0] or f"line{number}"
        if len(fields) != 4:
            yield BadItem(
                item_id,
                MALFORMED_RECORD,
                f"{where}: {len(fields)} fields, expected 4 (filename|prompt_text|prompt_wav|target_text)",
            )
            continue
        filename, prompt_text, prompt_wav, target_text = fields
        if not prompt_text.strip() or not target_text.strip():
            yield BadItem(item_id, EMPTY_TEXT, f"{where}: empty prompt or target text")
            continue
        wav = prompt_wav if prompt_wav.startswith("/") or "://" in prompt_wav else fileio.join(base, prompt_wav)
        yield TtsItem(filename, prompt_text.strip(), AudioRef(wav, path=wav), target_text.strip())


def audio_bytes_of(wave: np.ndarray, sample_rate: int, fmt: str = "WAV") -> bytes:
    """Encode float audio (for writing datasets and generated WAVs)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, np.float32), sample_rate, format=fmt, subtype="PCM_16" if fmt == "WAV" else None)
    return buffer.getvalue()
