"""Emilia reader: webdataset-style tar shards, one utterance per key.

Layout (as Emilia is released)::

    {root}/**/{shard}.tar      members {id}.{mp3,flac,wav,...} + {id}.json, a key's members adjacent
    {id}.json: {"id": str, "text": str, "duration": s, "speaker": str, "language": str, ...}

Each utterance is its own recording (``recording_id == segment_id == id``, segment 0, spanning the
whole audio). A shard is one tar, named by its path under ``root`` with '/' turned into '-'.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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

NAME = "emilia"
METADATA_SUFFIX = ".json"


@dataclass(frozen=True)
class Shard:
    """One Emilia tar."""

    name: str
    """The tar's path under the root, '/' -> '-', suffix dropped: the output parquet's name."""
    url: str
    languages: tuple[str, ...] = ()
    """Keep only these languages (empty: all)."""


def list_shards(root: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every tar under ``root`` (recursively), sorted by name."""
    fs, base = fileio.filesystem(root)
    base = base.rstrip("/")
    shards = []
    for path in sorted(fs.find(base)):
        if not path.endswith(TAR_SUFFIXES):
            continue
        relative = strip_tar_suffix(path[len(base) :].lstrip("/"))
        shards.append(Shard(name=relative.replace("/", "-"), url=fileio.url_of(fs, path), languages=tuple(languages)))
    return shards


def grouped_members(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each run of adjacent members sharing a key (webdataset order)."""
    key: str | None = None
    group: dict[str, bytes] = {}
    for member, data in iter_tar(url):
        member_key, suffix = split_member_name(member)
        if member_key != key and key is not None and group:
            yield key, group
            group = {}
        key = member_key
        group[suffix] = data
    if key is not None and group:
        yield key, group


def utterance_from_group(
    shard: Shard, key: str, group: dict[str, bytes], skips: SkipCounter
) -> Utterance | None:
    """The utterance of one key, or None (skipped and counted)."""
    where = f"{shard.url}:{key}"
    audio_suffix = next((s for s in AUDIO_SUFFIXES if s in group), None)
    if METADATA_SUFFIX not in group:
        skips.skip(reasons.NO_TRANSCRIPT, where, f"no {key}{METADATA_SUFFIX} member")
        return None
    try:
        meta = json.loads(group[METADATA_SUFFIX].decode("utf-8"))
    except UnicodeDecodeError as e:
        skips.skip(reasons.NON_UTF8, where + METADATA_SUFFIX, str(e))
        return None
    except json.JSONDecodeError as e:
        skips.skip(reasons.BAD_METADATA, where + METADATA_SUFFIX, f"invalid JSON: {e}")
        return None
    if not isinstance(meta, dict):
        skips.skip(reasons.BAD_METADATA, where + METADATA_SUFFIX, "not a JSON object")
        return None
    language = str(meta.get("language", ""))
    if shard.languages and language not in shard.languages:
        skips.skip(reasons.OTHER_LANGUAGE, where, f"language {language!r}")
        return None
    text = audio_checks.transcript(meta.get("text"))
    if not text:
        skips.skip(reasons.EMPTY_TEXT, where)
        return None
    if audio_suffix is None:
        skips.skip(reasons.MISSING_AUDIO, where, f"no audio member ({', '.join(AUDIO_SUFFIXES)})")
        return None
    try:
        stated = float(meta["duration"]) if meta.get("duration") is not None else None
    except (TypeError, ValueError):
        skips.skip(reasons.BAD_METADATA, where + METADATA_SUFFIX, f"duration {meta['duration']!r} is not a number")
        return None
    audio = audio_checks.decode_checked(group[audio_suffix], where + audio_suffix, skips, stated)
    if audio is None or not audio_checks.plausible_utterance(text, audio, where + audio_suffix, skips):
        return None
    utterance_id = str(meta.get("id") or key)
    return Utterance(
        recording_id=utterance_id,
        segment_id=utterance_id,
        segment_index=0,
        start=0.0,
        end=len(audio) / MIMI_SAMPLE_RATE,
        text=text,
        language=language,
        speaker=str(meta.get("speaker", "")),
        audio=audio,
    )


def read_shard(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """Utterances of one tar in archive order; a corrupt tar ends the shard, counted, not raised."""
    try:
        for key, group in grouped_members(shard.url):
            utterance = utterance_from_group(shard, key, group, skips)
            if utterance is not None:
                yield utterance
    except CORRUPT_TAR_ERRORS as e:
        skips.skip(reasons.CORRUPT_SHARD, shard.url, f"{type(e).__name__}: {e}")
