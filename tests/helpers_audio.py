"""Real synthesised speech and small corpora (good and deliberately broken) for the audio tests."""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data.synth import (
    ESPEAK_VOICES,
    Recording,
    ShortUtterance,
    Voice,
    long_form,
    synthesize,
    tar_bytes,
    write_emilia_shard,
    write_yodas2_shard,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SENTENCES = (
    "Hello world, this is a test.",
    "The rain in Spain stays mainly in the plain.",
    "One two three four five.",
    "Speech tokens for a language model.",
    "Good morning, how are you today?",
    "The cat sat on the mat.",
)


@functools.cache
def speech(text: str, voice: str = ESPEAK_VOICES[0].name) -> np.ndarray:
    """espeak-ng speech (fast: ~1 ms per second of audio), cached across tests. Do not mutate."""
    audio = synthesize(text, Voice("espeak-ng", voice))
    audio.setflags(write=False)
    return audio


def recording(
    audio_id: str, sentence_indices: tuple[int, ...], voice: str = ESPEAK_VOICES[0].name
) -> Recording:
    texts = [SENTENCES[i] for i in sentence_indices]
    return long_form(audio_id, [speech(t, voice) for t in texts], texts, speaker=voice)


def seconds(audio: np.ndarray) -> float:
    return len(audio) / MIMI_SAMPLE_RATE


def write_yodas2_corpus(
    root: str, num_shards: int, recordings_per_shard: int = 2, sentences_per_recording: int = 3
) -> list[Recording]:
    """A clean YODAS2 corpus of espeak recordings; returns the recordings in shard order."""
    written = []
    for s in range(num_shards):
        recs = [
            recording(
                f"vid{s:02d}{r}", tuple((s + r + k) % len(SENTENCES) for k in range(sentences_per_recording))
            )
            for r in range(recordings_per_shard)
        ]
        write_yodas2_shard(root, "en", f"{s:08d}", recs)
        written += recs
    return written


def write_broken_yodas2_corpus(root: str) -> dict[str, int]:
    """One good shard with bad records inside, one corrupt shard; returns the expected skip counts.

    Shard 00000000: ``good`` (3 segments; one empty transcript and one past the audio's end added),
    ``noisy.flac`` that is not audio, a captions line of invalid UTF-8, a captions line with no audio.
    Shard 00000001: a tar truncated mid-member.
    """
    good = recording("good", (0, 1, 2))
    end = seconds(good.audio)
    segments = good.segments + ((end - 1.0, end - 0.5, "   "), (end + 1.0, end + 3.0, "after the end"))
    good = Recording(good.audio_id, good.audio, segments, good.speaker)
    write_yodas2_shard(root, "en", "00000000", [good, recording("noisy", (3,)), recording("orphan", (4,))])
    # Replace noisy's audio with bytes that are not audio, drop orphan's audio, add a non-UTF-8 line.
    base = fileio.join(root, "en")
    members = [
        ("good.flac", _tar_member(base + "/audio/00000000.tar", "good.flac")),
        ("noisy.flac", b"not audio"),
    ]
    fileio.atomic_write_bytes(base + "/audio/00000000.tar", tar_bytes(members))
    captions = fileio.read_bytes(base + "/text/00000000.jsonl")
    fileio.atomic_write_bytes(
        base + "/text/00000000.jsonl", captions + b'{"audio_id": "caf\xe9", "segments": []}\n'
    )
    # A second shard whose tar is cut in the middle of its first member.
    write_yodas2_shard(root, "en", "00000001", [recording("cut", (5,))])
    tar = fileio.read_bytes(base + "/audio/00000001.tar")
    fileio.atomic_write_bytes(base + "/audio/00000001.tar", tar[: len(tar) // 2])
    return {
        "empty_text": 1,
        "segment_outside_audio": 1,
        "unreadable_audio": 1,
        "missing_audio": 1,
        "non_utf8": 1,
        "corrupt_shard": 1,
    }


def _tar_member(url: str, name: str) -> bytes:
    from soda_jax.data.sources.tar_shards import iter_tar

    return dict(iter_tar(url))[name]


def write_broken_emilia_corpus(root: str) -> dict[str, int]:
    """Two shards: one with good and bad utterances, one truncated; returns expected skip counts."""
    good = [ShortUtterance(f"EN_{i:03d}", speech(SENTENCES[i]), SENTENCES[i], "spk0") for i in range(3)]
    bad_lang = ShortUtterance("ZH_000", speech(SENTENCES[3]), SENTENCES[3], "spk1", language="zh")
    empty = ShortUtterance("EN_EMPTY", speech(SENTENCES[4]), "", "spk1")
    write_emilia_shard(fileio.join(root, "a", "EN-B000000.tar"), [*good, bad_lang, empty])
    # Corrupt one utterance's audio and one json after the fact, keeping the tar well-formed.
    from soda_jax.data.sources.tar_shards import iter_tar

    members = list(iter_tar(fileio.join(root, "a", "EN-B000000.tar")))
    members += [
        ("EN_BADMP3.mp3", b"\xff\xfb garbage"),
        ("EN_BADMP3.json", b'{"id": "EN_BADMP3", "text": "x", "language": "en"}'),
    ]
    members += [
        ("EN_LATIN1.mp3", members[0][1]),
        ("EN_LATIN1.json", b'{"id": "EN_LATIN1", "text": "caf\xe9"}'),
    ]
    fileio.atomic_write_bytes(fileio.join(root, "a", "EN-B000000.tar"), tar_bytes(members))
    write_emilia_shard(fileio.join(root, "b", "EN-B000001.tar"), good[:1])
    tar = fileio.read_bytes(fileio.join(root, "b", "EN-B000001.tar"))
    fileio.atomic_write_bytes(fileio.join(root, "b", "EN-B000001.tar"), tar[: len(tar) // 2])
    return {"other_language": 1, "empty_text": 1, "unreadable_audio": 1, "non_utf8": 1, "corrupt_shard": 1}
