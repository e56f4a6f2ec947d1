"""Emilia reader: webdataset-style tar shards, one utterance per key, from a checkout of the release.

Layout (``amphion/Emilia-Dataset`` as published; docs/data.md, "Published layouts")::

    {root}/Emilia/{LANG}/{LANG}-B{n:06d}.tar          Emilia (CC BY-NC 4.0)
    {root}/Emilia-YODAS/{LANG}/{LANG}-B{n:06d}.tar    Emilia-YODAS (CC BY 4.0): the `emilia_yodas` source
    members {id}.mp3 + {id}.json, a key's members adjacent
    {id}.json: {"id", "wav", "text", "duration", "speaker", "language", "dnsmos"}

A checkout holds both halves; each source reads only its own subtree, so no utterance lands in two
mix components. A root holding neither subtree is itself one half's tree: the ``Emilia/`` or
``Emilia-YODAS/`` directory, the 2024 revision's ``{LANG}/{LANG}-B*.tar`` at the top, or a flat
directory of tars (the demo corpus). Each utterance is its own recording (``recording_id ==
segment_id == id``, segment 0, spanning the whole audio). A shard is one tar, named by its path under
the subtree with '/' turned into '-'.

The language of a tar comes from its path before it is opened: its ``{LANG}`` directory, else the
``{LANG}-B`` prefix of its name. With ``languages`` given, tars of other languages are not listed;
a tar filed under a selected language whose name states another is skipped unopened and counted
(``other_language_shard``); an utterance whose json states another language is counted
(``other_language``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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

logger = logging.getLogger(__name__)

NAME = "emilia"
METADATA_SUFFIX = ".json"
EMILIA_DIR, EMILIA_YODAS_DIR = "Emilia", "Emilia-YODAS"
"""The two halves of a checkout of ``amphion/Emilia-Dataset``: the `emilia` and `emilia_yodas` sources."""
RELEASE_DIRS = (EMILIA_DIR, EMILIA_YODAS_DIR)
LANGUAGE_DIR = re.compile(r"[A-Z]{2}")
"""A language directory of the release (``EN``, ``ZH``, ``DE``, ``FR``, ``JA``, ``KO``)."""
TAR_NAME_LANGUAGE = re.compile(r"([A-Z]{2})-B\d+")
"""A tar's name as published, ``EN-B000000``: the language it states."""


@dataclass(frozen=True)
class Shard:
    """One Emilia tar."""

    name: str
    """The tar's path under the subtree, '/' -> '-', suffix dropped: the output parquet's name."""
    url: str
    languages: tuple[str, ...] = ()
    """Keep only these languages (empty: all)."""
    language: str = ""
    """The language its path states (``en``), "" when it states none."""
    name_language: str = ""
    """The language its file name states, "" when it states none."""


def path_languages(relative: str) -> tuple[str, str]:
    """(the ``{LANG}`` directory's language, the ``{LANG}-B`` name's language) of a tar's path, lower case."""
    *dirs, filename = relative.split("/")
    directory = dirs[0] if dirs and LANGUAGE_DIR.fullmatch(dirs[0]) else ""
    named = TAR_NAME_LANGUAGE.match(filename)
    return directory.lower(), named.group(1).lower() if named else ""


def release_root(root: str, subtree: str) -> str | None:
    """Where ``subtree``'s tars are under ``root`` (a path in its filesystem); None if the checkout lacks it.

    A root holding ``Emilia/`` or ``Emilia-YODAS/`` is a checkout: only ``subtree`` is read. Any other
    root is itself one half's tree.
    """
    fs, base = fileio.filesystem(root)
    base = base.rstrip("/")
    present = {name for name in RELEASE_DIRS if fs.isdir(f"{base}/{name}")}
    if not present:
        return base
    return f"{base}/{subtree}" if subtree in present else None


def list_release_shards(root: str, subtree: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every tar of ``subtree`` under ``root`` (only ``languages`` when given), sorted by name."""
    fs, _ = fileio.filesystem(root)
    base = release_root(root, subtree)
    if base is None:
        return []
    wanted = tuple(languages)
    shards, left_out = [], Counter[str]()
    for path in sorted(_tars_under(fs, base, wanted, left_out)):
        relative = path[len(base) :].lstrip("/")
        directory, named = path_languages(relative)
        language = directory or named
        if wanted and language and language not in wanted:
            left_out[language] += 1
            continue
        shards.append(
            Shard(
                name=strip_tar_suffix(relative).replace("/", "-"),
                url=fileio.url_of(fs, path),
                languages=wanted,
                language=language,
                name_language=named,
            )
        )
    if left_out:
        where = fileio.url_of(fs, base)
        logger.info("%s: left out (languages %s): %s", where, wanted, dict(sorted(left_out.items())))
    return sorted(shards, key=lambda s: s.name)


def _tars_under(fs: Any, base: str, languages: tuple[str, ...], left_out: Counter[str]) -> Iterator[str]:
    """Tar paths under ``base``; a language directory outside ``languages`` is not even listed."""
    for entry in fs.ls(base, detail=True):
        path, name = entry["name"].rstrip("/"), entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry["type"] == "directory":
            if languages and LANGUAGE_DIR.fullmatch(name) and name.lower() not in languages:
                left_out[f"{name.lower()} (directory)"] += 1
                continue
            yield from (p for p in fs.find(path) if p.endswith(TAR_SUFFIXES))
        elif path.endswith(TAR_SUFFIXES):
            yield path


def list_shards(root: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every ``Emilia/`` tar under ``root`` (only ``languages`` when given), sorted by name."""
    return list_release_shards(root, EMILIA_DIR, languages)


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


def utterance_from_group(shard: Shard, key: str, group: dict[str, bytes], skips: SkipCounter) -> Utterance | None:
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
    language = str(meta.get("language") or shard.language)
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
    return Utterance.whole(utterance_id, audio, text, language, str(meta.get("speaker", "")), MIMI_SAMPLE_RATE)


def read_shard(shard: Shard, skips: SkipCounter) -> Iterator[Utterance]:
    """Utterances of one tar in archive order; a corrupt tar ends the shard, counted, not raised.

    A tar whose name states a language outside ``shard.languages`` is not opened (``other_language_shard``).
    """
    if shard.languages and shard.name_language and shard.name_language not in shard.languages:
        skips.skip(
            reasons.OTHER_LANGUAGE_SHARD,
            shard.url,
            f"named {shard.name_language!r}, filed under {shard.language!r}; reading {shard.languages}",
        )
        return
    try:
        for key, group in grouped_members(shard.url):
            utterance = utterance_from_group(shard, key, group, skips)
            if utterance is not None:
                yield utterance
    except CORRUPT_TAR_ERRORS as e:
        skips.skip(reasons.CORRUPT_SHARD, shard.url, f"{type(e).__name__}: {e}")
