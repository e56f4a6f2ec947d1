"""Which audio tokens of a frame-major sequence a likelihood score counts.

Audio is flattened frame-major (f0c0 f0c1 .. f0c7 f1c0 ..), so "the first k codebooks" are the
positions whose index within the frame is < k. SODA's ``--num_codebook_for_log_probs k`` did
``reshape(8, -1)[:k]`` on that sequence instead: the rows of that reshape are consecutive *time*
spans, so it kept the first k/8 of the utterance, every codebook. `soda_reshape_selection`
reproduces that, only so a test can show the difference.
"""

from __future__ import annotations

import numpy as np

from soda_jax.audio.vocab import MIMI_CODEBOOKS


def codebook_mask(num_audio_tokens: int, num_codebooks: int, *, frame_size: int = MIMI_CODEBOOKS) -> np.ndarray:
    """Boolean mask over ``num_audio_tokens`` frame-major tokens: True for codebooks ``0..num_codebooks-1``."""
    if not 1 <= num_codebooks <= frame_size:
        raise ValueError(f"num_codebooks must be in 1..{frame_size}, got {num_codebooks}")
    if num_audio_tokens % frame_size:
        raise ValueError(f"{num_audio_tokens} audio tokens is not a whole number of {frame_size}-token frames")
    return (np.arange(num_audio_tokens) % frame_size) < num_codebooks


def select_codebooks(values: np.ndarray, num_codebooks: int, *, frame_size: int = MIMI_CODEBOOKS) -> np.ndarray:
    """The entries of a frame-major per-token array that belong to the first ``num_codebooks``."""
    values = np.asarray(values)
    return values[codebook_mask(values.shape[0], num_codebooks, frame_size=frame_size)]


def soda_reshape_selection(values: np.ndarray, num_codebooks: int, *, frame_size: int = MIMI_CODEBOOKS) -> np.ndarray:
    """SODA's (wrong) selection: ``values.reshape(8, -1)[:k]``: the first k/8 of the time span."""
    return np.asarray(values).reshape(frame_size, -1)[:num_codebooks].reshape(-1)
