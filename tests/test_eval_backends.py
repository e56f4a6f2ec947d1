"""The offline scorers on real speech: PocketSphinx on pytest-audioeval's natural clips,
resemblyzer on flite voices; and the mini task sets read back by the public-layout readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from soda_jax.data.synth import FLITE_VOICES, Voice, synthesize
from soda_jax.eval.asr_backends import ASR_SAMPLE_RATE, PocketSphinxAsr
from soda_jax.eval.context import to_16k
from soda_jax.eval.layouts import BadInput, audio_cell, read_librispeech, read_seed_tts, read_table_rows
from soda_jax.eval.miniset import (
    SENTENCE_PAIRS,
    TEST_PHRASES,
    TTS_ITEMS,
    WORD_PAIRS,
    MiniTaskSetConfig,
    build_mini_tasksets,
)
from soda_jax.eval.normalize import soda_normalize
from soda_jax.eval.speaker import ResemblyzerSpeaker, cosine_similarities


def audioeval_clip(name: str) -> tuple[np.ndarray, str]:
    """A natural English clip shipped by pytest-audioeval (16 kHz) and its transcript."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_audioeval")
    assert spec is not None and spec.submodule_search_locations, "pytest-audioeval is a test dependency"
    root = Path(spec.submodule_search_locations[0]) / "samples" / "audio" / "en"
    wave, rate = sf.read(root / f"{name}.wav", dtype="float32")
    assert rate == ASR_SAMPLE_RATE
    return wave, (root / f"{name}.txt").read_text().strip()


def test_pocketsphinx_transcribes_counting_exactly():
    asr = PocketSphinxAsr()
    counting, reference = audioeval_clip("counting")
    hello, hello_reference = audioeval_clip("hello_world")
    hypotheses = asr.transcribe([counting, hello])
    assert hypotheses[0] == soda_normalize(reference) == "one two three four five six seven eight nine ten"
    assert hypotheses[1] == soda_normalize(hello_reference)
    assert asr.transcribe([np.zeros(1600, np.float32)]) == [""]  # silence: nothing recognised


def test_resemblyzer_scores_same_voice_above_different_voice():
    encoder = ResemblyzerSpeaker()
    sentences = ("The river flows gently through the green valley.", "He poured a cup of coffee and read the newspaper.")
    voices = (FLITE_VOICES[1], FLITE_VOICES[3], Voice("espeak-ng", "en-us+f2"))  # awb, slt, espeak female
    clips = {(v, s): to_16k(synthesize(s, v)) for v in voices for s in sentences}
    same = [cosine_similarities(encoder, [clips[(v, sentences[0])]], [clips[(v, sentences[1])]])[0] for v in voices]
    different = [
        cosine_similarities(encoder, [clips[(a, sentences[0])]], [clips[(b, sentences[1])]])[0]
        for a in voices for b in voices if a != b
    ]  # fmt: skip
    assert min(same) > max(different), (same, different)


def test_mini_task_sets_are_in_the_public_layouts(tmp_path):
    paths = build_mini_tasksets(MiniTaskSetConfig(output_path=str(tmp_path)))
    rows = list(read_table_rows(paths["swuggy"]))
    assert len(rows) == len(WORD_PAIRS) and {"positive", "negative", "positive_word", "negative_word", "id"} <= set(rows[0][1])
    where, row = rows[0]
    wave = audio_cell(row, "positive", where, paths["swuggy"]).load(ASR_SAMPLE_RATE)
    assert PocketSphinxAsr().transcribe([wave]) == [row["positive_word"]]  # intelligible real word
    sblimp = [r for _, r in read_table_rows(paths["sblimp"])]
    assert len(sblimp) == len(SENTENCE_PAIRS) and sblimp[0]["positive_transcription"] == SENTENCE_PAIRS[0][0]
    test = list(read_librispeech(paths["librispeech"], "test-clean"))
    assert len(test) == TEST_PHRASES and not any(isinstance(u, BadInput) for u in test)
    assert test[0].text.isupper() and test[0].audio.load().size > 0
    assert len([u for u in read_librispeech(paths["librispeech"], "dev-clean")]) > 0
    items = list(read_seed_tts(paths["seed_tts"]))
    assert len(items) == TTS_ITEMS and items[0].prompt_audio.load().size > 0
