"""YODAS2 reader, the release as published (HF dataset ``espnet/yodas2``): one audio file per video.

Layout (facts and where they come from: docs/audio.md, "YODAS2 as published")::

    {root}/data/{subset}/audio/{index:08d}.tar.gz   members {audio_id}.wav (24 kHz), one per video
    {root}/data/{subset}/text/{index:08d}.json      [{"audio_id": str, "text": {utterance id: caption}}, ...]
    {root}/data/{subset}/duration/{index:08d}.txt   "{audio_id} {seconds}" per line

``root`` is the dataset's root (the directory holding ``data/``) or that ``data/`` directory itself.
A subset is a language code and three digits (``en000``, ``en129``, ``iw000``); the language filter
takes codes, so ``("en",)`` selects every ``en*`` subset. An utterance id is
``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}`` (centiseconds); audio ids may contain ``-``,
so ids are parsed from the right.

A shard (the unit of parallelism and of resumption) is one ``{subset}/{index}`` triple, named
``{subset}-{index}``. Captions come out in time order; one longer than ``MAX_SEGMENT_SECONDS`` is
split evenly with its words shared out in proportion; chunk ids are SODA's, the utterance-id form
above with ``idx`` counting the segments emitted for the video. YODAS2 has no speaker labels: an
utterance's speaker is its video's audio id.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
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
)
from soda_jax.data.sources.utterance import SkipCounter, Utterance

logger = logging.getLogger(__name__)

NAME = "yodas2"
MAX_SEGMENT_SECONDS = 60.0
"""Longest segment kept whole (SODA's maximum chunk length)."""
END_TOLERANCE_SECONDS = 0.08
"""A caption may end up to one Mimi frame past the audio (rounding in the captions): clipped, not skipped."""
CENTISECONDS = 100
"""Utterance-id time units per second."""
DATA_DIR = "data"
AUDIO_DIR, TEXT_DIR, DURATION_DIR = "audio", "text", "duration"
AUDIO_SUFFIX, TEXT_SUFFIX, DURATION_SUFFIX = ".tar.gz", ".json", ".txt"
SUBSET = re.compile(r"([a-z]+)(\d{3})")
"""A subset directory's name: the language code, then three digits."""
UTTERANCE_ID = re.compile(r"(.+)-(\d{5})-(\d{8})-(\d{8})")
"""``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}``; the greedy audio id leaves the last three fields."""

NOT_READ = "the shard's audio is not read"
"""What a skip of a whole captions file means."""

Caption = tuple[float, float, str, str]
"""(start s, end s, text, utterance id) of one caption."""


@dataclass(frozen=True)
class Shard:
    """One YODAS2 ``{subset}/{index}``: the audio archive, its captions and its durations."""

    name: str
    """``{subset}-{index}``: the output parquet's name."""
    language: str
    """The subset's language code."""
    audio_url: str | None
    """The audio tar.gz (None: the index has captions but no audio archive)."""
    text_url: str
    duration_url: str


def shard_urls(root: str, subset: str, index: int) -> tuple[str, str, str]:
    """(audio, text, duration) URLs of ``{subset}/{index}`` under a dataset root, as published."""
    base, stem = fileio.join(root, DATA_DIR, subset), f"{index:08d}"
    return (
        fileio.join(base, AUDIO_DIR, stem + AUDIO_SUFFIX),
        fileio.join(base, TEXT_DIR, stem + TEXT_SUFFIX),
        fileio.join(base, DURATION_DIR, stem + DURATION_SUFFIX),
    )


def chunk_id(audio_id: str, index: int, start: float, end: float) -> str:
    """SODA's segment id: ``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}`` (centiseconds)."""
    return f"{audio_id}-{index:05d}-{round(start * CENTISECONDS):08d}-{round(end * CENTISECONDS):08d}"


def parse_utterance_id(utterance_id: str) -> tuple[str, int, float, float]:
    """(audio_id, idx, start s, end s) of a published utterance id; ValueError if it is not one."""
    match = UTTERANCE_ID.fullmatch(utterance_id)
    if match is None:
        raise ValueError(f"{utterance_id!r} is not {{audio_id}}-{{idx:05d}}-{{start_cs:08d}}-{{end_cs:08d}}")
    audio_id, index, start, end = match.groups()
    return audio_id, int(index), int(start) / CENTISECONDS, int(end) / CENTISECONDS


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
    return [(float(bounds[i]), float(bounds[i + 1]), " ".join(words[cuts[i] : cuts[i + 1]])) for i in range(pieces)]


def _by_index(fs: fsspec.AbstractFileSystem, directory: str, suffixes: tuple[str, ...]) -> dict[str, str]:
    """``{index: path}`` of the files in ``directory`` ending in ``suffixes`` ({} if there is none)."""
    try:
        paths = fs.ls(directory, detail=False)
    except FileNotFoundError:
        return {}
    found = {}
    for path in paths:
        filename = path.rstrip("/").rsplit("/", 1)[-1]
        for suffix in suffixes:
            if filename.endswith(suffix):
                found[filename[: -len(suffix)]] = path
                break
    return found


def list_shards(root: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every ``{subset}/{index}`` under ``root`` (only subsets of ``languages`` when given), sorted by name.

    An index is listed when it has an audio archive or a captions file, so captions without audio are
    read (and counted) too. Entries of ``data/`` that are not subset directories are ignored.
    """
    fs, base = fileio.filesystem(root)
    base = base.rstrip("/")
    data = f"{base}/{DATA_DIR}"
    if not fs.isdir(data):
        data = base
    shards = []
    for entry in sorted(fs.ls(data, detail=True), key=lambda e: e["name"]):
        subset_dir = entry["name"].rstrip("/")
        subset = subset_dir.rsplit("/", 1)[-1]
        match = SUBSET.fullmatch(subset)
        if entry["type"] != "directory" or match is None:
            continue
        language = match.group(1)
        if languages and language not in languages:
            continue
        audio = _by_index(fs, f"{subset_dir}/{AUDIO_DIR}", TAR_SUFFIXES)
        texts = _by_index(fs, f"{subset_dir}/{TEXT_DIR}", (TEXT_SUFFIX,))
        for index in sorted(audio.keys() | texts.keys()):
            audio_path = audio.get(index)
            text_path = texts.get(index, f"{subset_dir}/{TEXT_DIR}/{index}{TEXT_SUFFIX}")
            duration_path = f"{subset_dir}/{DURATION_DIR}/{index}{DURATION_SUFFIX}"
            shards.append(
                Shard(
                    name=f"{subset}-{index}",
                    language=language,
                    audio_url=fileio.url_of(fs, audio_path) if audio_path else None,
                    text_url=fileio.url_of(fs, text_path),
                    duration_url=fileio.url_of(fs, duration_path),
                )
            )
    return shards


def _video_captions(audio_id: str, text: dict, where: str, skips: SkipCounter) -> list[Caption]:
    """The captions of one video's ``text`` map; ids that do not parse (or name another video) are counted."""
    captions = []
    for utterance_id, value in text.items():
        try:
            owner, _, start, end = parse_utterance_id(utterance_id)
        except ValueError as e:
            skips.skip(reasons.BAD_UTTERANCE_ID, f"{where} {utterance_id!r}", str(e))
            continue
        if owner != audio_id:
            skips.skip(reasons.BAD_UTTERANCE_ID, f"{where} {utterance_id!r}", f"names video {owner!r}")
            continue
        caption = audio_checks.transcript(value)
        try:
            caption.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate from a "\ud800" escape
            skips.skip(reasons.NON_UTF8, f"{where} {utterance_id}", str(e))
            continue
        captions.append((start, end, caption, utterance_id))
    return captions


def read_captions(shard: Shard, skips: SkipCounter) -> dict[str, list[Caption]] | None:
    """audio_id -> its captions, from the shard's text JSON; None when the file is missing or does
    not parse (counted: the shard's audio is then not read). Bad entries are skipped and counted."""
    try:
        raw = fileio.read_bytes(shard.text_url)
    except FileNotFoundError:
        skips.skip(reasons.NO_TRANSCRIPT, shard.text_url, f"captions file missing: {NOT_READ}")
        return None
    try:
        videos = json.loads(raw)
    except UnicodeDecodeError as e:
        skips.skip(reasons.NON_UTF8, shard.text_url, f"{e}: {NOT_READ}")
        return None
    except json.JSONDecodeError as e:
        skips.skip(reasons.UNPARSABLE_CAPTIONS, shard.text_url, f"invalid JSON ({e}): {NOT_READ}")
        return None
    if not isinstance(videos, list):
        skips.skip(
            reasons.UNPARSABLE_CAPTIONS,
            shard.text_url,
            f"a JSON {type(videos).__name__}, not an array of videos: {NOT_READ}",
        )
        return None
    captions: dict[str, list[Caption]] = {}
    for n, video in enumerate(videos):
        where = f"{shard.text_url} video {n}"
        audio_id, text = (video.get("audio_id"), video.get("text")) if isinstance(video, dict) else ("", "")
        if not isinstance(audio_id, str) or not isinstance(text, dict):
            skips.skip(reasons.BAD_METADATA, where, "needs 'audio_id' (string) and 'text' (object)")
            continue
        if audio_id in captions:
            skips.skip(reasons.BAD_METADATA, f"{where} ({audio_id})", "a second entry of this video")
            continue
        captions[audio_id] = _video_captions(audio_id, text, f"{shard.text_url} {audio_id}", skips)
    return captions


def read_durations(shard: Shard, skips: SkipCounter) -> dict[str, float]:
    """audio_id -> seconds, from the shard's duration file; lines that do not parse are counted.

    The durations only check the decoded audio: without the file the shard is read unchecked.
    """
    try:
        text = fileio.read_bytes(shard.duration_url).decode("utf-8")
    except FileNotFoundError:
        logger.warning("%s: missing, decoded lengths of %s are not checked", shard.duration_url, shard.name)
        return {}
    except UnicodeDecodeError as e:
        skips.skip(reasons.NON_UTF8, shard.duration_url, f"{e}: decoded lengths are not checked")
        return {}
    durations = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            seconds = float(fields[1]) if len(fields) == 2 else math.nan
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            skips.skip(reasons.BAD_METADATA, f"{shard.duration_url}:{line_no}", f"not 'id seconds': {line!r}")
            continue
        durations[fields[0]] = seconds
    return durations


def recording_utterances(
    audio_id: str, captions: list[Caption], audio: np.ndarray, language: str, where: str, skips: SkipCounter
) -> Iterator[Utterance]:
    """The utterances of one video: valid captions in time order, long ones split."""
    duration = len(audio) / MIMI_SAMPLE_RATE
    valid = []
    for start, end, text, utterance_id in captions:
        caption_where = f"{where} {utterance_id}"
        if not text:
            skips.skip(reasons.EMPTY_TEXT, caption_where)
            continue
        if end <= start or start >= duration or end > duration + END_TOLERANCE_SECONDS:
            detail = f"[{start}, {end}) vs {duration:.2f} s of audio"
            skips.skip(reasons.SEGMENT_OUTSIDE_AUDIO, caption_where, detail)
            continue
        valid.append((start, min(end, duration), text))
    index = 0
    for start, end, text in sorted(valid):
        for piece_start, piece_end, piece_text in split_long_segment(start, end, text):
            piece_where = f"{where} [{piece_start}, {piece_end})"
            first, last = round(piece_start * MIMI_SAMPLE_RATE), round(piece_end * MIMI_SAMPLE_RATE)
            if last <= first:
                skips.skip(reasons.SEGMENT_OUTSIDE_AUDIO, piece_where, "no samples")
                continue
            if not audio_checks.plausible_utterance(piece_text, audio[first:last], piece_where, skips):
                continue
            yield Utterance(
                recording_id=audio_id,
                segment_id=chunk_id(audio_id, index, piece_start, piece_end),
                segment_index=index,
                start=piece_start,
                end=piece_end,
                text=piece_text,
                language=language,
                speaker=audio_id,
                audio=audio[first:last],
            )
            index += 1


def _count_missing_audio(
    captions: dict[str, list[Caption]], audio_ids: Sequence[str], where: str, skips: SkipCounter
) -> None:
    """Each caption of ``audio_ids`` (videos without an audio member) as ``missing_audio``."""
    for audio_id in sorted(audio_ids):
        for _, _, _, utterance_id in captions[audio_id]:
            skips.skip(reasons.MISSING_AUDIO, f"{where} {utterance_id}", "its video has no audio member")


def read_shard(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """Utterances of one shard, videos in archive order; bad input is skipped and counted.

    A corrupt archive (truncated, garbled) ends the shard (counted as ``corrupt_shard``); what was
    read before the damage is kept.
    """
    captions = read_captions(shard, skips)
    if captions is None:
        return
    if shard.audio_url is None:
        _count_missing_audio(captions, list(captions), f"{shard.text_url} (no audio archive)", skips)
        return
    durations = read_durations(shard, skips)
    seen: set[str] = set()
    try:
        for member, data in iter_tar(shard.audio_url):
            audio_id, suffix = split_member_name(member)
            if suffix not in AUDIO_SUFFIXES:
                continue
            where = f"{shard.audio_url}:{member}"
            if audio_id in seen:
                skips.skip(reasons.BAD_METADATA, where, "a second audio member of this video")
                continue
            if audio_id not in captions:
                skips.skip(reasons.NO_TRANSCRIPT, where, f"no entry for this audio in {shard.text_url}")
                continue
            seen.add(audio_id)
            if not captions[audio_id]:
                skips.skip(reasons.NO_TRANSCRIPT, where, "no usable captions for this video")
                continue
            stated = durations.get(audio_id)
            described = f"{where} ({len(captions[audio_id])} captions)"
            audio = audio_checks.decode_checked(data, described, skips, stated)
            if audio is None:
                continue
            yield from recording_utterances(audio_id, captions[audio_id], audio, shard.language, where, skips)
    except CORRUPT_TAR_ERRORS as e:
        skips.skip(reasons.CORRUPT_SHARD, shard.audio_url, f"{type(e).__name__}: {e}")
        return
    _count_missing_audio(captions, list(set(captions) - seen), shard.text_url, skips)
