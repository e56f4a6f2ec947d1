"""Fixtures for the fine-tuning tests: a tokenized corpus in a toy language whose audio is a known
function of its words, so speech recognition on it is learnable by a tiny model."""

from __future__ import annotations

import numpy as np
from helpers_data import Segment, write_tokenized_utterances

from soda_jax import fileio
from soda_jax.audio.vocab import MIMI_CODEBOOKS

WORDS = ("red", "green", "blue", "cat", "dog", "bird", "one", "two", "three", "runs", "sleeps", "sings")
FRAMES_PER_WORD = 1


def word_codes(codebook_size: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Each word's fixed audio: ``[8, FRAMES_PER_WORD]`` codes."""
    rng = np.random.default_rng(seed)
    return {w: rng.integers(0, codebook_size, size=(MIMI_CODEBOOKS, FRAMES_PER_WORD)).astype(np.int16) for w in WORDS}


def write_word_corpus(
    root: str, *, recordings: int, segments: int = 2, codebook_size: int = 2048, seed: int = 0
) -> str:
    """A section-1 tokenized corpus: every segment says 2-4 random words, its codes the words' codes."""
    codes_of = word_codes(codebook_size)
    rng = np.random.default_rng(seed)
    shard = []
    for r in range(recordings):
        for i in range(segments):
            words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
            shard.append(
                Segment(f"rec{r:04d}", i, " ".join(words), "spk0", np.concatenate([codes_of[w] for w in words], axis=1))
            )
    write_tokenized_utterances(root, {"shard0": shard})
    if codebook_size != 2048:
        codec = fileio.read_json(fileio.join(root, "codec.json"))
        fileio.atomic_write_json(fileio.join(root, "codec.json"), codec | {"codebook_size": codebook_size})
    return root
