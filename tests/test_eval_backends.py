"""The offline scorers on real speech: PocketSphinx on pytest-audioeval's natural clips,
resemblyzer on flite voices (the mini task sets: tests/test_eval_heldout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from soda_jax.data.synth import FLITE_VOICES, Voice, synthesize
from soda_jax.eval.asr_backends import ASR_SAMPLE_RATE, PocketSphinxAsr
from soda_jax.eval.context import to_16k
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

