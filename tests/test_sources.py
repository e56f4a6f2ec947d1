"""YODAS2 and Emilia readers on real espeak-ng speech, including bad records and corrupt shards."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from helpers_audio import (
    SENTENCES,
    needs_espeak,
    recording,
    seconds,
    speech,
    write_broken_emilia_corpus,
    write_broken_yodas2_corpus,
    write_yodas2_corpus,
)
from system_deps import needs

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, AudioReadError, decode_audio, load_audio, to_mono
from soda_jax.data.sources import SkipCounter, emilia, get_source, yodas2
from soda_jax.data.synth import (
    CHORUS_VOICES,
    Recording,
    SynthDemoConfig,
    synthesize_demo_corpus,
    write_yodas2_shard,
)

pytestmark = needs_espeak


def read_all(source, root, languages=()):
    skips = SkipCounter()
    utterances = [u for shard in source.list_shards(root, languages) for u in source.read_shard(shard, skips)]
    return utterances, skips


# ------------------------------------------------------------------------------------- audio I/O
def test_decode_resamples_and_mixes_down(tmp_path):
    rate, tone = 16_000, np.sin(np.linspace(0, 200 * np.pi, 16_000)).astype(np.float32) * 0.5
    stereo = np.stack([tone, -tone * 0.5], axis=1)
    for fmt in ("WAV", "FLAC", "MP3"):
        path = tmp_path / f"tone.{fmt.lower()}"
        sf.write(path, stereo, rate, format=fmt)
        audio = load_audio(str(path))
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(len(audio) - MIMI_SAMPLE_RATE) < MIMI_SAMPLE_RATE * 0.1  # 1 s (mp3 adds codec delay)
    np.testing.assert_allclose(to_mono(stereo), tone * 0.25, atol=1e-6)


def test_undecodable_audio_names_the_file():
    with pytest.raises(AudioReadError, match="shard.tar:x.mp3"):
        decode_audio(b"definitely not audio", "shard.tar:x.mp3")


# ----------------------------------------------------------------------------------------- YODAS2
def test_chunk_ids_and_long_segment_split():
    assert yodas2.chunk_id("abc", 3, 1.234, 61.5) == "abc-00003-00000123-00006150"
    words = " ".join(f"w{i}" for i in range(10))
    pieces = yodas2.split_long_segment(10.0, 140.0, words)
    assert len(pieces) == 3 and all(e - s <= yodas2.MAX_SEGMENT_SECONDS for s, e, _ in pieces)
    assert pieces[0][0] == 10.0 and pieces[-1][1] == 140.0
    assert " ".join(t for _, _, t in pieces) == words  # every word once, in order
    assert yodas2.split_long_segment(0.0, 60.0, "short") == [(0.0, 60.0, "short")]


def test_yodas2_reads_segments_in_time_order(tmp_path):
    written = write_yodas2_corpus(str(tmp_path), num_shards=2)
    utterances, skips = read_all(yodas2, str(tmp_path))
    assert skips.total == 0
    assert [s.name for s in yodas2.list_shards(str(tmp_path))] == ["en000-00000000", "en000-00000001"]
    assert len(utterances) == sum(len(r.segments) for r in written)
    by_recording = {r.audio_id: r for r in written}
    for u in utterances:
        rec = by_recording[u.recording_id]
        start, end, text = rec.segments[u.segment_index]
        assert (u.text, u.language, u.speaker) == (text, "en", u.recording_id)  # no speaker labels: the video
        assert u.segment_id == yodas2.chunk_id(u.recording_id, u.segment_index, start, end)
        # The segment's audio is the recording's samples in [start, end) at the captions' centisecond
        # precision (16-bit wav).
        assert abs(u.start - start) <= 0.005 and abs(u.end - end) <= 0.005
        first = round(u.start * MIMI_SAMPLE_RATE)
        np.testing.assert_allclose(u.audio, rec.audio[first : first + len(u.audio)], atol=1e-4)
        assert abs(seconds(u.audio) - (u.end - u.start)) < 1e-3


def test_yodas2_splits_segments_longer_than_a_minute(tmp_path):
    base = recording("long", (0,))
    audio = np.tile(base.audio, int(130 / seconds(base.audio)) + 1)
    text = " ".join(SENTENCES)
    write_yodas2_shard(str(tmp_path), "en000", 0, [Recording("long", audio, ((1.0, 128.0, text),))])
    utterances, _ = read_all(yodas2, str(tmp_path))
    assert [u.segment_index for u in utterances] == [0, 1, 2]
    assert all(u.end - u.start <= yodas2.MAX_SEGMENT_SECONDS for u in utterances)
    assert " ".join(u.text for u in utterances) == text
    assert utterances[1].segment_id == yodas2.chunk_id("long", 1, utterances[1].start, utterances[1].end)


def test_yodas2_bad_input_is_counted_not_fatal(tmp_path):
    expected = write_broken_yodas2_corpus(str(tmp_path))
    utterances, skips = read_all(yodas2, str(tmp_path))
    assert dict(skips.counts) == expected
    assert [u.text for u in utterances] == list(SENTENCES[:3])  # the good recording survives intact
    assert any("noisy.wav" in e for e in skips.examples["unreadable_audio"])
    assert any("en000/audio/00000001.tar.gz" in e for e in skips.examples["corrupt_shard"])
    assert any("en000/text/00000002.json" in e for e in skips.examples["unparsable_captions"])


def test_yodas2_language_filter_and_memory_filesystem(tmp_path):
    import fsspec

    root = "memory://yodas2-test"
    write_yodas2_shard(root, "en000", 0, [recording("a", (0,))])
    write_yodas2_shard(root, "de000", 0, [recording("b", (1,))])
    try:
        assert [s.name for s in yodas2.list_shards(root)] == ["de000-00000000", "en000-00000000"]
        utterances, _ = read_all(yodas2, root, languages=("de",))
        assert [(u.recording_id, u.language) for u in utterances] == [("b", "de")]
    finally:
        fsspec.filesystem("memory").rm("/yodas2-test", recursive=True)


# ----------------------------------------------------------------------------------------- Emilia
def test_emilia_bad_input_is_counted_not_fatal(tmp_path):
    expected = write_broken_emilia_corpus(str(tmp_path))
    assert [s.name for s in emilia.list_shards(str(tmp_path))] == ["a-EN-B000000", "b-EN-B000001"]
    utterances, skips = read_all(emilia, str(tmp_path), languages=("en",))
    assert dict(skips.counts) == expected
    assert [u.segment_id for u in utterances] == ["EN_000", "EN_001", "EN_002"]
    for i, u in enumerate(utterances):
        assert (u.recording_id, u.segment_index, u.text, u.speaker) == (
            f"EN_{i:03d}",
            0,
            SENTENCES[i],
            "spk0",
        )
        assert u.start == 0.0 and u.end == pytest.approx(seconds(u.audio))
        # mp3 is lossy and adds encoder delay: the length is close, not exact.
        assert abs(seconds(u.audio) - seconds(speech(SENTENCES[i]))) < 0.1


def test_emilia_without_language_filter_keeps_every_language(tmp_path):
    write_broken_emilia_corpus(str(tmp_path))
    utterances, skips = read_all(emilia, str(tmp_path))
    assert "other_language" not in skips.counts
    assert "zh" in {u.language for u in utterances}


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown speech source 'librispeech'"):
        get_source("librispeech")


@needs("flite")
def test_demo_corpus_is_deterministic_and_readable(tmp_path):
    config = dict(sentences=SENTENCES[:4], sentences_per_recording=2, recordings_per_shard=1, utterances_per_shard=2)
    roots = [synthesize_demo_corpus(SynthDemoConfig(str(tmp_path / run), **config)) for run in ("a", "b")]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 3 + 2 + 1  # two yodas2 shards (tar.gz, json, txt), two emilia tars, stats.json
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    long_form_utts, skips = read_all(yodas2, roots[0]["yodas2"])
    short_utts, _ = read_all(emilia, roots[0]["emilia"])
    assert skips.total == 0
    assert [u.text for u in long_form_utts] == [u.text for u in short_utts] == list(SENTENCES[:4])
    assert len({u.speaker for u in short_utts}) == 3  # Emilia's three voices rotate per utterance
    voices = fileio.read_json(str(tmp_path / "a" / "stats.json"))["yodas2_voices"]  # the layout has no speakers
    assert sorted(voices) == sorted({u.recording_id for u in long_form_utts})
    assert not {u.speaker for u in short_utts} & set(voices.values())  # no clip in both layouts


@needs("flite")
def test_each_reading_of_the_demo_corpus_is_new_audio(tmp_path):
    config = SynthDemoConfig(
        str(tmp_path), sentences=SENTENCES[:2], sentences_per_recording=2, voices=CHORUS_VOICES[:6], readings=3
    )
    roots = synthesize_demo_corpus(config)
    long_form_utts, _ = read_all(yodas2, roots["yodas2"])
    short_utts, _ = read_all(emilia, roots["emilia"])
    voices = fileio.read_json(str(tmp_path / "stats.json"))["yodas2_voices"]  # YODAS2 has no speaker field
    for utts, voice_of in ((long_form_utts, lambda u: voices[u.recording_id]), (short_utts, lambda u: u.speaker)):
        assert [u.text for u in utts] == list(SENTENCES[:2]) * 3
        assert len({(u.text, voice_of(u)) for u in utts}) == 6  # no sentence read twice by one voice
    assert len({u.recording_id for u in long_form_utts}) == 3  # a recording per reading, one speaker each
    assert not {u.speaker for u in short_utts} & set(voices.values())
    with pytest.raises(ValueError, match="readings must be 1..3"):
        synthesize_demo_corpus(dataclasses.replace(config, readings=4))
