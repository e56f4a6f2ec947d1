"""The distilled tiny Mimi (`soda_jax.audio.distilled_mimi`): its teacher, a distillation that learns, k-means
codebooks that use only their active codes, deterministic builds, and a saved directory both codec backends
load with the same codes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from soda_jax.audio import distilled_mimi as dm
from soda_jax.audio.codec import MimiCodec

RATE = 24_000
FRAME = 1920
VOWELS = {
    "a": (800, 1200, 2500),
    "e": (500, 1800, 2500),
    "i": (300, 2300, 3000),
    "o": (500, 900, 2400),
    "u": (300, 800, 2300),
}
"""Formant frequencies (Hz) of five vowel-like sounds: the synthetic words are made of them."""
WORDS = ("aiu", "uea", "oie", "eoa", "iau", "ueo")
"""Six synthetic words, three vowels each, no two alike."""
TRAIN_PITCH_RANGE = (100.0, 200.0)
"""Pitches (Hz) the training words are read at, drawn at random."""
READINGS = 8
"""Training recordings of each word (each at a random pitch, after a random lead of silence)."""
REFERENCE_PITCH, QUERY_PITCH = 120.0, 140.0
"""Pitches of the words compared: each query word against every reference word."""
SHIFT = 480
"""20 ms of silence in front of a query word: a quarter of a frame, so every frame's samples move."""
CONFIG = dm.DistilledMimiConfig(seed=0, steps=150, batch_size=4, crop_frames=10, active_codes=16, num_codebooks=2)
SAME_WORD_MARGIN = 0.2
"""How much closer (normalised edit distance of codebook 0) a word's codes must be to the same word's than
to other words' on average."""


def vowel(formants, f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic series at ``f0`` shaped by Gaussian peaks at ``formants`` (with a little noise)."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    source = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(RATE / 2 / f0)))
    source = source + 0.05 * rng.standard_normal(n)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    envelope = sum(np.exp(-0.5 * ((freqs - f) / 120.0) ** 2) for f in formants)
    shaped = np.fft.irfft(np.fft.rfft(source) * envelope, n)
    return shaped * 0.3 / np.abs(shaped).max()


def word(name: str, f0: float, lead: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(lead)] + [vowel(VOWELS[v], f0, 0.16, rng) for v in name] + [np.zeros(RATE // 10)]
    return np.concatenate(parts).astype(np.float32)


def training_words() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        word(w, float(rng.uniform(*TRAIN_PITCH_RANGE)), int(rng.integers(FRAME)), seed=1000 + i)
        for i, w in enumerate(WORDS * READINGS)
    ]


def edit_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Levenshtein distance of two code sequences over the length of the longer."""
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + int(a[i - 1] != b[j - 1]))
        previous = current
    return previous[-1] / max(len(a), len(b))


def word_distances(codec: MimiCodec) -> np.ndarray:
    """``[query word, reference word]`` edit distances of codebook 0: queries at another pitch than the
    references, 20 ms later, with other noise."""
    references = codec.encode([word(w, REFERENCE_PITCH, 0, seed=100 + i) for i, w in enumerate(WORDS)])
    queries = codec.encode([word(w, QUERY_PITCH, SHIFT, seed=200 + i) for i, w in enumerate(WORDS)])
    return np.array([[edit_distance(q[0], r[0]) for r in references] for q in queries])


def same_and_different(distances: np.ndarray) -> tuple[float, float]:
    off_diagonal = ~np.eye(len(distances), dtype=bool)
    return float(np.diag(distances).mean()), float(distances[off_diagonal].mean())


@pytest.fixture(scope="module")
def distilled():
    torch.set_num_threads(1)  # one thread count for the whole module: bitwise-repeatable builds
    waves = training_words()
    model, losses = dm.build_distilled_mimi(waves, CONFIG)
    return model, losses, waves


def test_teacher_is_zero_on_silence_and_follows_the_sound_more_than_the_gain():
    wave = word("aiu", 120.0, 0, seed=0)
    features = dm.teacher_features(wave, RATE, FRAME)
    assert features.shape == (-(-len(wave) // FRAME), dm.TEACHER_CEPSTRA)
    np.testing.assert_allclose(dm.teacher_features(np.zeros(3 * FRAME, np.float32), RATE, FRAME), 0.0, atol=1e-5)
    voiced = slice(1, 6)  # frames inside the vowels
    louder = dm.teacher_features(4 * wave, RATE, FRAME)[voiced]
    other = dm.teacher_features(word("uea", 120.0, 0, seed=0), RATE, FRAME)[voiced]
    gain_change = np.linalg.norm(louder - features[voiced], axis=1)
    word_change = np.linalg.norm(other - features[voiced], axis=1)
    assert (gain_change < 0.5 * word_change).all(), (gain_change, word_change)


def test_distillation_learns_the_teacher(distilled):
    _, losses, _ = distilled
    assert len(losses) == CONFIG.steps
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_codes_follow_the_word_not_the_pitch_or_the_phase(distilled):
    model, _, _ = distilled
    distances = word_distances(MimiCodec(model, num_codebooks=2))
    same, different = same_and_different(distances)
    assert same < different - SAME_WORD_MARGIN, distances.round(2)
    assert (distances.argmin(axis=1) == np.arange(len(WORDS))).sum() >= 4, distances.round(2)


def test_random_mimi_codes_do_not_follow_the_word():
    """The same measure on the random tiny Mimi: what the distillation is for (and the test above can fail)."""
    distances = word_distances(MimiCodec.random(seed=0, codebook_init="frames", num_codebooks=2))
    same, different = same_and_different(distances)
    assert not same < different - SAME_WORD_MARGIN, distances.round(2)


def test_only_active_codes_are_used(distilled):
    model, _, waves = distilled
    codes = np.concatenate(MimiCodec(model, num_codebooks=2).encode(waves), axis=1)
    assert codes.max() < CONFIG.active_codes
    assert len(np.unique(codes[0])) > CONFIG.active_codes // 2  # k-means spread the frames over the codes


def test_build_is_deterministic_for_a_seed():
    torch.set_num_threads(1)
    waves = training_words()[:6]
    quick = dm.DistilledMimiConfig(seed=3, steps=2, batch_size=2, crop_frames=4, active_codes=4, num_codebooks=2)
    first, _ = dm.build_distilled_mimi(waves, quick)
    again, _ = dm.build_distilled_mimi(waves, quick)
    other, _ = dm.build_distilled_mimi(waves, dm.DistilledMimiConfig(**{**quick.__dict__, "seed": 4}))
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_saved_directory_loads_in_both_backends_with_equal_codes(distilled, tmp_path):
    model, losses, waves = distilled
    path = str(tmp_path / "mimi-distilled")
    dm.save_distilled_mimi(model, path, dm.describe(CONFIG, waves, losses, RATE))
    assert {"config.json", "model.safetensors", dm.CONFIG_FILE} <= set(os.listdir(path))
    assert json.loads((tmp_path / "mimi-distilled" / dm.CONFIG_FILE).read_text())["config"]["seed"] == CONFIG.seed
    queries = [word(w, QUERY_PITCH, SHIFT, seed=300 + i) for i, w in enumerate(WORDS)]
    in_memory = MimiCodec(model, num_codebooks=2).encode(queries)
    torch_codes = MimiCodec.from_pretrained(path, num_codebooks=2).encode(queries)
    jax_codec = MimiCodec.from_pretrained(
        path, backend="jax", converted_dir=str(tmp_path / "converted"), num_codebooks=2
    )
    jax_codes = jax_codec.encode(queries)
    for expected, got_torch, got_jax in zip(in_memory, torch_codes, jax_codes):
        np.testing.assert_array_equal(got_torch, expected)
        np.testing.assert_array_equal(got_jax, expected)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="steps"):
        dm.DistilledMimiConfig(steps=0)
    with pytest.raises(ValueError, match="recordings"):
        dm.build_distilled_mimi([], dm.DistilledMimiConfig())
    with pytest.raises(ValueError, match="codebooks"):
        dm.build_distilled_mimi([np.zeros(FRAME, np.float32)], dm.DistilledMimiConfig(num_codebooks=9))
