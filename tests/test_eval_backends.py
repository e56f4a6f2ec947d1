"""The offline scorers on real speech: PocketSphinx on pytest-audioeval's natural clips,
resemblyzer on flite voices (the mini task sets: tests/test_eval_heldout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    """On flite/espeak voices (two sentences each) and on pytest-audioeval's natural clips."""
    encoder = ResemblyzerSpeaker()
    sentences = (
        "The river flows gently through the green valley.",
        "He poured a cup of coffee and read the newspaper.",
    )
    voices = (FLITE_VOICES[1], FLITE_VOICES[3], Voice("espeak-ng", "en-us+f2"))  # awb, slt, espeak female
    clips = {(v, s): to_16k(synthesize(s, v)) for v in voices for s in sentences}
    same = [cosine_similarities(encoder, [clips[(v, sentences[0])]], [clips[(v, sentences[1])]])[0] for v in voices]
    different = [
        cosine_similarities(encoder, [clips[(a, sentences[0])]], [clips[(b, sentences[1])]])[0]
        for a in voices
        for b in voices
        if a != b
    ]
    assert min(same) > max(different), (same, different)

    # pytest-audioeval's natural clips (one speaker): closer to each other than to any synthetic voice
    natural = [audioeval_clip(name)[0] for name in ("counting", "hello_world", "quick_brown_fox")]
    natural_same = [cosine_similarities(encoder, [a], [b])[0] for i, a in enumerate(natural) for b in natural[i + 1 :]]
    natural_vs_synthetic = [
        cosine_similarities(encoder, [a], [clips[(v, sentences[0])]])[0] for a in natural for v in voices
    ]
    assert min(natural_same) > max(natural_vs_synthetic), (natural_same, natural_vs_synthetic)


def test_wavlm_backend_loads_a_local_directory(tmp_path):
    """The WavLM path (SODA's kind of scorer) on a random tiny `WavLMForXVector` saved locally: it
    loads offline from the directory and gives unit x-vectors, the same for the same wave."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    from soda_jax.eval.speaker import speaker_encoder

    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(32, 32),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=16,
        num_buckets=16,
        max_bucket_distance=32,
    )
    WavLMForXVector(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=ASR_SAMPLE_RATE).save_pretrained(tmp_path)
    encoder = speaker_encoder("wavlm", str(tmp_path))
    counting, _ = audioeval_clip("counting")
    hello, _ = audioeval_clip("hello_world")
    embeddings = encoder.embed([counting, hello, counting])
    assert embeddings.shape == (3, 16) and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    assert cosine_similarities(encoder, [counting], [counting])[0] == pytest.approx(1, abs=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])
