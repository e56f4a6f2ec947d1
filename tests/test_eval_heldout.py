"""The demo's mini task sets: ASR/TTS items cut from the corpus's held-out recordings (never trained
on), at word boundaries, in the public layouts, deterministic, bad records counted; the real step
through the executor, and pairs intelligible to PocketSphinx."""

from __future__ import annotations

import json

import numpy as np

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.contracts import STATS_FILE
from soda_jax.data import caches
from soda_jax.data.interleave_step import InterleaveConfig
from soda_jax.data.synth import (
    DEFAULT_SENTENCES,
    DEMO_VOICES,
    FLITE_VOICES,
    ShortUtterance,
    SynthDemoConfig,
    file_hashes,
    synthesize,
    synthesize_demo_corpus,
    tar_bytes,
    write_emilia_shard,
)
from soda_jax.eval.asr_backends import ASR_SAMPLE_RATE, PocketSphinxAsr
from soda_jax.eval.heldout import (
    ALIGNMENT_FAILED,
    ONLY_UTTERANCE,
    SHOT_SPLIT,
    TEST_SPLIT,
    HeldOutSpec,
    write_heldout_sets,
)
from soda_jax.eval.miniset import SENTENCE_PAIRS, WORD_PAIRS
from soda_jax.eval.readers import BadInput, audio_cell, read_librispeech, read_seed_tts, read_table_rows
from soda_jax.execution import Executor, ExecutorStep, this_output_path, versioned

WORDS = ("garden", "window", "coffee", "river")
GAP_SECONDS = 0.25
ALL_HELD_OUT = 0.999999
"""A validation fraction that holds every recording out (split_of needs < 1)."""
TOLERANCE = 0.03
"""What the 10 ms alignment may be off by at a word's edge."""


def trimmed(wave: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wave) > threshold)
    return wave[loud[0] : loud[-1] + 1]


def spaced_words(voice) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """WORDS said one at a time, trimmed, GAP_SECONDS of silence between: the audio and each word's true span."""
    gap = np.zeros(round(GAP_SECONDS * MIMI_SAMPLE_RATE), np.float32)
    pieces, spans, cursor = [gap], [], len(gap)
    for word in WORDS:
        speech = trimmed(synthesize(word, voice))
        spans.append((cursor / MIMI_SAMPLE_RATE, (cursor + len(speech)) / MIMI_SAMPLE_RATE))
        pieces += [speech, gap]
        cursor += len(speech) + len(gap)
    return np.concatenate(pieces), spans


def test_held_out_speech_is_cut_at_word_boundaries_deterministically_and_bad_records_count(tmp_path):
    kal, slt = FLITE_VOICES[0], FLITE_VOICES[3]
    audio, truth = spaced_words(kal)
    good = [
        ShortUtterance("EN_T_000000", audio, "Garden, window, coffee, river.", kal.speaker),
        ShortUtterance("EN_T_000001", synthesize("The river flows.", kal), "The river flows.", kal.speaker),
        ShortUtterance("EN_T_000002", synthesize("Good morning.", slt), "Good morning.", slt.speaker),
        # not in PocketSphinx's dictionary: cannot be aligned
        ShortUtterance("EN_T_000003", synthesize("Good evening.", slt), "Zzxqv blorft.", slt.speaker),
    ]
    corpus = str(tmp_path / "corpus")
    write_emilia_shard(f"{corpus}/emilia/EN-B000000.tar", good)
    meta = {
        "id": "EN_T_000004",
        "text": "An unreadable recording.",
        "duration": 1.0,
        "speaker": kal.speaker,
        "language": "en",
    }
    broken = tar_bytes([("EN_T_000004.mp3", b"not audio at all" * 64), ("EN_T_000004.json", json.dumps(meta).encode())])
    fileio.atomic_write_bytes(f"{corpus}/emilia/EN-B000001.tar", broken)

    # two words fit in item_seconds, three do not; only the last word fits in shot_seconds
    (w1_start, _), (_, w2_end), (w3_start, w3_end), (w4_start, w4_end) = truth
    spec = HeldOutSpec(
        corpus, ALL_HELD_OUT, item_seconds=w3_end - w1_start - 0.1, shot_seconds=w4_end - w4_start + 0.15
    )
    assert all(caches.split_of(u.id, spec.validation_fraction, spec.split_salt) == caches.VALIDATION for u in good)
    record = write_heldout_sets(spec, str(tmp_path / "a"))

    sources = record["sources"]
    by_segment = {v["segment"]: (k, v) for k, v in sources[TEST_SPLIT].items()}
    item_id, item = by_segment["EN_T_000000"]
    assert item["text"] == "Garden, window,"
    assert abs(item["start"] - (w1_start - 0.05)) <= TOLERANCE
    assert w2_end - TOLERANCE <= item["end"] <= w3_start + TOLERANCE  # in the silence between words 2 and 3
    ((shot_id, shot),) = [(k, v) for k, v in sources[SHOT_SPLIT].items() if v["segment"] == "EN_T_000000"]
    assert shot["text"] == "river." and w3_end - TOLERANCE <= shot["start"] <= w4_start
    assert set(by_segment) == {"EN_T_000000", "EN_T_000001", "EN_T_000002"}

    skipped = record["skipped"]
    assert skipped["corpus"]["counts"] == {"unreadable_audio": 1}
    assert (
        skipped["items"]["counts"] == {ALIGNMENT_FAILED: 1}
        and "EN_T_000003" in skipped["items"]["examples"][ALIGNMENT_FAILED][0]
    )
    assert skipped["tts"]["counts"] == {ONLY_UTTERANCE: 1}  # slt has one aligned utterance
    assert record["counts"]["tts_items"] == 2 and record["splits"]["validation"]["utterances"] == 4

    # the public layouts, read back by the evaluation's readers
    root = tmp_path / "a"
    test = {u.id: u for u in read_librispeech(str(root / "librispeech"), TEST_SPLIT)}
    assert not any(isinstance(u, BadInput) for u in test.values())
    assert test[item_id].text == "GARDEN WINDOW"
    wave = test[item_id].audio.load()
    assert abs(len(wave) / MIMI_SAMPLE_RATE - (item["end"] - item["start"])) < 0.01
    shots = {u.id: u for u in read_librispeech(str(root / "librispeech"), SHOT_SPLIT)}
    assert shots[shot_id].text == "RIVER"
    tts = list(read_seed_tts(str(root / "seed-tts" / "en" / "meta.lst")))
    first = next(t for t in tts if t.id == item_id)
    other_id, other = by_segment["EN_T_000001"]
    assert first.target_text == "Garden, window," and first.prompt_text == other["text"]  # the other kal16 item
    assert {t.id for t in tts} == {item_id, other_id} and first.prompt_audio.path.endswith(
        f"prompt-wavs/{other_id}.wav"
    )
    assert (root / "seed-tts" / "en" / "wavs" / f"{item_id}.wav").exists()

    # deterministic: the same bytes again
    write_heldout_sets(spec, str(tmp_path / "b"))
    assert file_hashes(str(root)) == file_hashes(str(tmp_path / "b"))


def test_mini_task_set_step_takes_only_held_out_recordings(tmp_path):
    from soda_jax.recipes.defaults import default_mini_tasksets

    fraction = 0.35  # holds out Emilia utterances 7, 9 and 11 (all slt) and YODAS2 recording 2 (kal16)
    corpus = ExecutorStep(
        "raw/test-speech",
        synthesize_demo_corpus,
        SynthDemoConfig(
            this_output_path(),
            sentences=versioned(DEFAULT_SENTENCES[:12]),
            voices=versioned(DEMO_VOICES[:4]),
            sentences_per_recording=3,
        ),
    )
    mini = default_mini_tasksets(corpus, validation_fraction=fraction)
    assert (
        mini.config.heldout.split_salt == InterleaveConfig("in", "out", "tok").split_salt
    )  # the interleave step's split
    executor = Executor(str(tmp_path / "prefix"), use_ray=False)
    executor.run([mini])
    root = executor.output_path(mini)

    stats = fileio.read_json(fileio.join(root, STATS_FILE))
    heldout = stats["heldout"]
    held_out = {s for split in heldout["sources"].values() for s in (v["segment"] for v in split.values())}
    recordings = {v["recording"] for split in heldout["sources"].values() for v in split.values()}
    assert all(caches.split_of(r, fraction, "soda-validation") == caches.VALIDATION for r in recordings)
    expected_emilia = {
        f"EN_DEMO_{i:06d}"
        for i in range(12)
        if caches.split_of(f"EN_DEMO_{i:06d}", fraction, "soda-validation") == "validation"
    }
    assert expected_emilia == {"EN_DEMO_000007", "EN_DEMO_000009", "EN_DEMO_000011"}
    emilia = {s for s in held_out if s.startswith("EN_DEMO_")}
    yodas = {s.split("-")[0] for s in held_out if not s.startswith("EN_DEMO_")}
    assert emilia <= expected_emilia and len(emilia) >= 2
    assert yodas == {"demo0002"}  # segments of the one held-out long-form recording, no other
    assert heldout["splits"]["validation"] == {"recordings": 4, "utterances": 6}
    assert heldout["counts"]["asr_items"] >= 4 and heldout["counts"]["tts_items"] >= 4
    assert stats["swuggy"] == len(WORD_PAIRS) and stats["sblimp"] == len(SENTENCE_PAIRS)

    rows = list(read_table_rows(fileio.join(root, "swuggy")))
    assert {"positive", "negative", "positive_word", "negative_word", "id"} <= set(rows[0][1])
    where, row = rows[0]
    wave = audio_cell(row, "positive", where, fileio.join(root, "swuggy")).load(ASR_SAMPLE_RATE)
    assert PocketSphinxAsr().transcribe([wave]) == [row["positive_word"]]  # intelligible real word
    sblimp = [r for _, r in read_table_rows(fileio.join(root, "sblimp"))]
    assert sblimp[0]["positive_transcription"] == SENTENCE_PAIRS[0][0]
    test = list(read_librispeech(fileio.join(root, "librispeech"), TEST_SPLIT))
    assert len(test) == heldout["counts"]["asr_items"] and all(u.text.isupper() and u.audio.load().size for u in test)
    assert all(len(u.audio.load()) <= MIMI_SAMPLE_RATE * 1.0 + 1 for u in test)  # item_seconds
    items = list(read_seed_tts(fileio.join(root, "seed-tts", "en", "meta.lst")))
    assert len(items) == heldout["counts"]["tts_items"] and items[0].prompt_audio.load().size > 0
