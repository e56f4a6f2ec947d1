"""Real synthesised speech and small corpora (good and deliberately broken) for the audio tests."""

from __future__ import annotations

import functools
import json

import numpy as np
from system_deps import needs

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data.sources import yodas2
from soda_jax.data.sources.tar_shards import iter_tar
from soda_jax.data.synth import (
    ESPEAK_VOICES,
    Recording,
    ShortUtterance,
    Voice,
    long_form,
    synthesize,
    tar_bytes,
    tar_gz_bytes,
    write_emilia_shard,
    write_yodas2_shard,
)

needs_espeak = needs("espeak-ng")

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


def recording(audio_id: str, sentence_indices: tuple[int, ...], voice: str = ESPEAK_VOICES[0].name) -> Recording:
    texts = [SENTENCES[i] for i in sentence_indices]
    return long_form(audio_id, [speech(t, voice) for t in texts], texts, speaker=voice)


def seconds(audio: np.ndarray) -> float:
    return len(audio) / MIMI_SAMPLE_RATE


YODAS2_SUBSET = "en000"


def write_yodas2_corpus(
    root: str, num_shards: int, recordings_per_shard: int = 2, sentences_per_recording: int = 3
) -> list[Recording]:
    """A clean YODAS2 corpus (published layout, subset en000) of espeak recordings whose ids hold a
    '-' as real video ids may; returns the recordings in shard order."""
    written = []
    for s in range(num_shards):
        recs = [
            recording(f"vid-{s:02d}{r}", tuple((s + r + k) % len(SENTENCES) for k in range(sentences_per_recording)))
            for r in range(recordings_per_shard)
        ]
        write_yodas2_shard(root, YODAS2_SUBSET, s, recs)
        written += recs
    return written


def write_broken_yodas2_corpus(root: str) -> dict[str, int]:
    """Three shards of en000 with bad input of every kind the reader counts; returns the expected counts.

    Shard 0: ``good`` (3 captions, plus an empty one, one past the audio's end, one whose id does not
    parse and one with a lone surrogate), ``noisy.wav`` that is not audio, captions of ``orphan`` whose
    audio member is missing. Shard 1: a tar.gz cut in the middle. Shard 2: a captions file that is
    not JSON.
    """
    good = recording("good", (0, 1, 2))
    write_yodas2_shard(root, YODAS2_SUBSET, 0, [good, recording("noisy", (3,)), recording("orphan", (4,))])
    audio_url, text_url, _ = yodas2.shard_urls(root, YODAS2_SUBSET, 0)
    members = [("good.wav", dict(iter_tar(audio_url))["good.wav"]), ("noisy.wav", b"not audio")]
    fileio.atomic_write_bytes(audio_url, tar_gz_bytes(members))
    end = seconds(good.audio)
    videos = json.loads(fileio.read_text(text_url))
    videos[0]["text"].update(
        {
            yodas2.chunk_id("good", 3, end - 1.0, end - 0.5): "   ",
            yodas2.chunk_id("good", 4, end + 1.0, end + 3.0): "after the end",
            "good-00005-1.5-2.5": "seconds, not centiseconds",
            yodas2.chunk_id("good", 6, 0.5, 1.0): "caf\ud800",
        }
    )
    fileio.atomic_write_text(text_url, json.dumps(videos))  # ASCII: the surrogate stays an escape
    write_yodas2_shard(root, YODAS2_SUBSET, 1, [recording("cut", (5,))])
    audio_url, _, _ = yodas2.shard_urls(root, YODAS2_SUBSET, 1)
    archive = fileio.read_bytes(audio_url)
    fileio.atomic_write_bytes(audio_url, archive[: len(archive) // 2])
    write_yodas2_shard(root, YODAS2_SUBSET, 2, [recording("unread", (0,))])
    _, text_url, _ = yodas2.shard_urls(root, YODAS2_SUBSET, 2)
    fileio.atomic_write_text(text_url, fileio.read_text(text_url)[:-10])
    return {
        "empty_text": 1,
        "segment_outside_audio": 1,
        "bad_utterance_id": 1,
        "non_utf8": 1,
        "unreadable_audio": 1,
        "missing_audio": 1,
        "corrupt_shard": 1,
        "unparsable_captions": 1,
    }


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
