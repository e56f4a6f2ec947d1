"""YODAS2 long-form reader: one audio file per video with caption segments (start, end, text).

Layout (mirrors the YODAS2 release: per language, tar shards of audio beside per-shard captions)::

    {root}/{lang}/audio/{shard}.tar        members {audio_id}.{wav,flac,mp3,ogg,opus} (.tar.gz too)
    {root}/{lang}/text/{shard}.jsonl       one line per recording:
        {"audio_id": str, "speaker": str (optional),
         "segments": [{"start": s, "end": s, "text": str}, ...]}

A shard (the unit of parallelism and of resumption) is one audio tar with its jsonl, named
``{lang}-{shard}``. Segments longer than ``MAX_SEGMENT_SECONDS`` are split evenly with their words
shared out in proportion; chunk ids are ``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}`` as in SODA,
``idx`` counting the segments emitted for the recording.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data import audio_checks
from soda_jax.data.sources import utterance as reasons
from soda_jax.data.sources.tar_shards import (
    AUDIO_SUFFIXES,
    CORRUPT_TAR_ERRORS,
    TAR_SUFFIXES,
    iter_tar,
    split_member_name,
    strip_tar_suffix,
)
from soda_jax.data.sources.utterance import SkipCounter, Utterance

NAME = "yodas2"
MAX_SEGMENT_SECONDS = 60.0
"""Longest segment kept whole (SODA's maximum chunk length)."""
END_TOLERANCE_SECONDS = 0.08
"""A caption may end up to one Mimi frame past the audio (rounding in the captions): clipped, not skipped."""
AUDIO_DIR, TEXT_DIR, TEXT_SUFFIX = "audio", "text", ".jsonl"
CENTISECONDS = 100


@dataclass(frozen=True)
class Shard:
    """One YODAS2 audio tar and its captions file."""

    name: str
    """``{lang}-{shard}``: the output parquet's name."""
    language: str
    audio_url: str
    text_url: str


def chunk_id(audio_id: str, index: int, start: float, end: float) -> str:
    """SODA's segment id: ``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}`` (centiseconds)."""
    return f"{audio_id}-{index:05d}-{round(start * CENTISECONDS):08d}-{round(end * CENTISECONDS):08d}"


def split_long_segment(
    start: float, end: float, text: str, max_seconds: float = MAX_SEGMENT_SECONDS
) -> list[tuple[float, float, str]]:
    """Split [start, end) into equal pieces of at most ``max_seconds``, words shared in proportion.

    Captions carry no word timings, so the words are divided by count: an approximation that keeps
    every word exactly once and in order.
    """
    pieces = max(1, math.ceil((end - start) / max_seconds))
    if pieces == 1:
        return [(start, end, text)]
    words = text.split()
    bounds = np.linspace(start, end, pieces + 1)
    cuts = np.linspace(0, len(words), pieces + 1).round().astype(int)
    return [
        (float(bounds[i]), float(bounds[i + 1]), " ".join(words[cuts[i] : cuts[i + 1]]))
        for i in range(pieces)
    ]


def list_shards(root: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every ``{lang}/audio/*.tar`` under ``root`` (only ``languages`` when given), sorted by name."""
    fs, base = fileio.filesystem(root)
    shards = []
    for lang_dir in sorted(fs.ls(base, detail=False)):
        language = lang_dir.rstrip("/").rsplit("/", 1)[-1]
        if languages and language not in languages:
            continue
        audio_dir = f"{lang_dir.rstrip('/')}/{AUDIO_DIR}"
        if not fs.isdir(audio_dir):
            continue
        for path in sorted(fs.ls(audio_dir, detail=False)):
            filename = path.rsplit("/", 1)[-1]
            if not filename.endswith(TAR_SUFFIXES):
                continue
            stem = strip_tar_suffix(filename)
            shards.append(
                Shard(
                    name=f"{language}-{stem}",
                    language=language,
                    audio_url=fileio.url_of(fs, path),
                    text_url=fileio.url_of(fs, f"{lang_dir.rstrip('/')}/{TEXT_DIR}/{stem}{TEXT_SUFFIX}"),
                )
            )
    return shards


def read_captions(shard: Shard, skips: SkipCounter) -> dict[str, dict[str, Any]]:
    """audio_id -> caption record from the shard's jsonl; bad lines are skipped and counted."""
    captions: dict[str, dict[str, Any]] = {}
    try:
        raw_lines = fileio.read_bytes(shard.text_url).splitlines()
    except FileNotFoundError:
        skips.skip(reasons.CORRUPT_SHARD, shard.text_url, "captions file missing")
        return captions
    for line_no, raw in enumerate(raw_lines, start=1):
        where = f"{shard.text_url}:{line_no}"
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            skips.skip(reasons.NON_UTF8, where, str(e))
            continue
        except json.JSONDecodeError as e:
            skips.skip(reasons.BAD_METADATA, where, f"invalid JSON: {e}")
            continue
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("audio_id"), str)
            or not isinstance(record.get("segments"), list)
        ):
            skips.skip(reasons.BAD_METADATA, where, "needs 'audio_id' (str) and 'segments' (list)")
            continue
        captions[record["audio_id"]] = record
    return captions


def recording_utterances(
    audio_id: str, record: dict[str, Any], audio: np.ndarray, language: str, where: str, skips: SkipCounter
) -> Iterator[Utterance]:
    """The utterances of one recording: valid segments in time order, long ones split."""
    duration = len(audio) / MIMI_SAMPLE_RATE
    valid = []
    for n, segment in enumerate(record["segments"]):
        seg_where = f"{where} segment {n}"
        try:
            start, end, text = float(segment["start"]), float(segment["end"]), audio_checks.transcript(segment["text"])
        except (KeyError, TypeError, ValueError) as e:
            skips.skip(reasons.BAD_METADATA, seg_where, f"needs numeric start/end and text ({e})")
            continue
        if not text:
            skips.skip(reasons.EMPTY_TEXT, seg_where)
            continue
        if start < 0 or end <= start or start >= duration or end > duration + END_TOLERANCE_SECONDS:
            skips.skip(
                reasons.SEGMENT_OUTSIDE_AUDIO, seg_where, f"[{start}, {end}) vs audio of {duration:.2f} s"
            )
            continue
        valid.append((start, min(end, duration), text))
    index = 0
    for start, end, text in sorted(valid):
        for piece_start, piece_end, piece_text in split_long_segment(start, end, text):
            first, last = round(piece_start * MIMI_SAMPLE_RATE), round(piece_end * MIMI_SAMPLE_RATE)
            if last <= first:
                skips.skip(
                    reasons.SEGMENT_OUTSIDE_AUDIO, f"{where} [{piece_start}, {piece_end})", "no samples"
                )
                continue
            if not audio_checks.plausible_utterance(piece_text, audio[first:last], f"{where} [{piece_start}, {piece_end})", skips):
                continue
            yield Utterance(
                recording_id=audio_id,
                segment_id=chunk_id(audio_id, index, piece_start, piece_end),
                segment_index=index,
                start=piece_start,
                end=piece_end,
                text=piece_text,
                language=language,
                speaker=str(record.get("speaker", "")),
                audio=audio[first:last],
            )
            index += 1


def read_shard(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """Utterances of one shard, recordings in tar order; bad input is skipped and counted.

    A corrupt tar ends the shard (counted as ``corrupt_shard``); what was read before it is kept.
    """
    captions = read_captions(shard, skips)
    seen: set[str] = set()
    try:
        for member, data in iter_tar(shard.audio_url):
            audio_id, suffix = split_member_name(member)
            if suffix not in AUDIO_SUFFIXES:
                continue
            where = f"{shard.audio_url}:{member}"
            record = captions.get(audio_id)
            if record is None:
                skips.skip(reasons.NO_TRANSCRIPT, where, "no captions line for this audio")
                continue
            seen.add(audio_id)
            stated = record.get("duration")
            stated = float(stated) if isinstance(stated, (int, float)) else None
            audio = audio_checks.decode_checked(data, f"{where} ({len(record['segments'])} segments)", skips, stated)
            if audio is None:
                continue
            yield from recording_utterances(audio_id, record, audio, shard.language, where, skips)
    except CORRUPT_TAR_ERRORS as e:
        skips.skip(reasons.CORRUPT_SHARD, shard.audio_url, f"{type(e).__name__}: {e}")
        return
    for audio_id in sorted(set(captions) - seen):
        skips.skip(
            reasons.MISSING_AUDIO, f"{shard.text_url} audio_id {audio_id}", "no audio member in the tar"
        )
