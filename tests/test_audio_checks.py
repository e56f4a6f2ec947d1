"""Bad audio that used to pass uncounted: each case is now skipped under its own reason."""

import io
import json

import numpy as np
import soundfile as sf
from helpers_audio import SENTENCES, needs_espeak, recording, speech

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data import audio_checks
from soda_jax.data.sources import SkipCounter, emilia, yodas2
from soda_jax.data.synth import encode_audio, tar_bytes, write_yodas2_shard

pytestmark = needs_espeak


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def emilia_member(key: str, audio: bytes, suffix: str, text, duration: float | None) -> list[tuple[str, bytes]]:
    meta = {"id": key, "text": text, "language": "en", "speaker": "s"}
    if duration is not None:
        meta["duration"] = duration
    return [(f"{key}.{suffix}", audio), (f"{key}.json", json.dumps(meta).encode())]


def read_emilia(root: str) -> tuple[list, SkipCounter]:
    skips = SkipCounter()
    utterances = [u for shard in emilia.list_shards(root) for u in emilia.read_shard(shard, skips)]
    return utterances, skips


def test_emilia_bad_audio_is_skipped_by_reason(tmp_path):
    voice = speech(SENTENCES[1])
    seconds = len(voice) / MIMI_SAMPLE_RATE
    mp3 = encode_audio(voice, "MP3")
    nan = voice.copy()
    nan[1000:1010] = np.nan
    stereo_cancelling = np.stack([voice, -voice], axis=1)
    three_words_at_100_hz = wav_bytes(speech("one two three")[::240], 100)  # header says 100 Hz
    members = [
        *emilia_member("GOOD", mp3, "mp3", SENTENCES[1], round(seconds, 3)),
        *emilia_member("NULL_TEXT", mp3, "mp3", None, round(seconds, 3)),
        *emilia_member("TRUNCATED", mp3[: int(len(mp3) * 0.3)], "mp3", SENTENCES[1], round(seconds, 3)),
        *emilia_member("HUNDRED_HZ", three_words_at_100_hz, "wav", "one two three", None),
        *emilia_member("NAN", wav_bytes(nan, MIMI_SAMPLE_RATE, "FLOAT"), "wav", SENTENCES[1], None),
        *emilia_member("OPPOSITE_PHASE", wav_bytes(stereo_cancelling, MIMI_SAMPLE_RATE), "wav", SENTENCES[1], None),
        *emilia_member("ZEROS", wav_bytes(np.zeros_like(voice), MIMI_SAMPLE_RATE), "wav", SENTENCES[1], None),
        *emilia_member(
            "TOO_FAST", wav_bytes(voice[: MIMI_SAMPLE_RATE // 2], MIMI_SAMPLE_RATE), "wav", SENTENCES[1], None
        ),
    ]
    fileio.atomic_write_bytes(str(tmp_path / "EN-B000000.tar"), tar_bytes(members))
    utterances, skips = read_emilia(str(tmp_path))
    assert [u.segment_id for u in utterances] == ["GOOD"]
    assert utterances[0].text == SENTENCES[1]
    assert dict(skips.counts) == {
        "empty_text": 1,  # a null transcript, not the text "None"
        "duration_mismatch": 1,
        "implausible_sample_rate": 1,
        "non_finite_audio": 1,
        "silent_audio": 2,
        "implausible_speaking_rate": 1,
    }
    assert "TRUNCATED" in skips.examples["duration_mismatch"][0]
    assert "100 Hz" in skips.examples["implausible_sample_rate"][0]


def test_yodas2_null_caption_and_implausible_segments(tmp_path):
    good = recording("rec", (0, 1, 2))
    (s0, e0, t0), (s1, e1, _), (s2, e2, t2) = good.segments
    captions = {
        yodas2.chunk_id("rec", 0, s0, e0): t0,
        yodas2.chunk_id("rec", 1, s1, e1): None,  # null caption
        yodas2.chunk_id("rec", 2, s2, s2 + 0.3): t2 * 3,  # a whole paragraph in 0.3 s
        yodas2.chunk_id("rec", 3, 0.0, 0.35): "hello",  # the leading pause: silence
    }
    write_yodas2_shard(str(tmp_path), "en000", 0, [good])
    _, text_url, _ = yodas2.shard_urls(str(tmp_path), "en000", 0)
    fileio.atomic_write_text(text_url, json.dumps([{"audio_id": "rec", "text": captions}]))
    skips = SkipCounter()
    utterances = [u for shard in yodas2.list_shards(str(tmp_path)) for u in yodas2.read_shard(shard, skips)]
    assert [u.text for u in utterances] == [t0]
    assert dict(skips.counts) == {"empty_text": 1, "implausible_speaking_rate": 1, "silent_audio": 1}


def test_yodas2_stated_duration_is_compared(tmp_path):
    good = recording("rec", (0,))
    write_yodas2_shard(str(tmp_path), "en000", 0, [good])
    _, _, duration_url = yodas2.shard_urls(str(tmp_path), "en000", 0)
    fileio.atomic_write_text(duration_url, f"rec {3 * len(good.audio) / MIMI_SAMPLE_RATE:.2f}\n")
    skips = SkipCounter()
    assert not [u for shard in yodas2.list_shards(str(tmp_path)) for u in yodas2.read_shard(shard, skips)]
    assert dict(skips.counts) == {"duration_mismatch": 1}


def test_limits_accept_ordinary_speech():
    for sentence in SENTENCES:
        audio = speech(sentence)
        skips = SkipCounter()
        assert audio_checks.plausible_utterance(sentence, audio, "x", skips), skips.to_dict()
    assert audio_checks.transcript(None) == "" and audio_checks.transcript(" hi ") == "hi"
    assert not audio_checks.duration_mismatch(2.05, 2.0) and audio_checks.duration_mismatch(0.77, 2.8)
