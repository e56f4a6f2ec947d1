"""Sampling parameters and the logits processor: frame constraint, temperature, top-k, top-p.

Everything per sequence is an array, so one compiled decode step serves a batch whose sequences
use different parameters. The frame constraint needs a little state per sequence (inside an audio
span or not, and the codebook slot of the next audio token), carried by `FrameState`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from soda_jax.audio.vocab import AudioTextVocab, codebooks_for

NEG_INF = -1e30
"""Logit of a forbidden token (finite, so a fully masked row cannot produce NaNs)."""


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample one sequence."""

    temperature: float = 1.0
    """Softmax temperature; 0 is greedy (argmax)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches this (1: all)."""
    top_k: int = 0
    """Keep the k most likely tokens (0: no cut)."""
    max_new_tokens: int = 256
    """Generated tokens at most (the stop token counts)."""
    stop_ids: tuple[int, ...] = ()
    """Generation ends after any of these ids (it is kept in the output)."""
    seed: int = 0
    """Seed of this sequence's sampling: the same seed and prompt give the same output, whatever the batch."""
    audio_constraint: bool = True
    """Frame-constrained audio and the interleaved layout: inside an audio span the k-th token of a
    frame must be a codebook-k id and <|audio_end|> may only follow a whole frame; a text span holds
    text ids until <|text_end|>; no audio id outside an audio span (`allowed_mask`). Text between
    audio spans stays possible: whether a continuation goes on past <|audio_end|> (SODA's) is its
    stop markers' choice (`soda_jax.inference.prompts.CONTINUATION_TEXT`)."""

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


OUTSIDE, IN_TEXT, IN_AUDIO = 0, 1, 2
"""Where a sequence stands in the interleaved layout (the frame constraint's span state)."""


@dataclasses.dataclass(frozen=True)
class VocabLayout:
    """The ids the logits processor needs, as static Python ints (part of the compiled program)."""

    size: int
    """Real vocabulary size; ids at or past it (partition padding of the LM head) are never chosen."""
    text_size: int
    audio_offset: int
    codebook_size: int
    num_codebooks: int
    text_start_id: int
    text_end_id: int
    audio_start_id: int
    audio_end_id: int
    eos_id: int

    @classmethod
    def of(cls, vocab: AudioTextVocab, num_codebooks: int) -> VocabLayout:
        codebooks_for(num_codebooks)
        return cls(
            vocab.size, vocab.text_size, vocab.audio_offset, vocab.codebook_size, num_codebooks,
            vocab.text_start_id, vocab.text_end_id, vocab.audio_start_id, vocab.audio_end_id, vocab.eos_id,
        )  # fmt: skip


def frame_state_of(prompt: np.ndarray, layout: VocabLayout) -> tuple[int, int]:
    """(span state, codebook slot of the next audio token) at the end of ``prompt``."""
    prompt = np.asarray(prompt)
    markers = np.flatnonzero(np.isin(prompt, [layout.text_start_id, layout.text_end_id, layout.audio_start_id, layout.audio_end_id]))
    if not markers.size:
        return OUTSIDE, 0
    last = prompt[markers[-1]]
    if last == layout.text_start_id:
        return IN_TEXT, 0
    if last == layout.audio_start_id:
        return IN_AUDIO, int(prompt.shape[0] - markers[-1] - 1) % layout.num_codebooks
    return OUTSIDE, 0


def next_frame_state(tokens: jax.Array, span: jax.Array, slot: jax.Array, layout: VocabLayout):
    """Span state and slot after appending ``tokens`` [B]."""
    is_audio = (tokens >= layout.audio_offset) & (tokens < layout.size)
    span = jnp.select(
        [tokens == layout.text_start_id, tokens == layout.audio_start_id, (tokens == layout.text_end_id) | (tokens == layout.audio_end_id)],
        [IN_TEXT, IN_AUDIO, OUTSIDE],
        span,
    )
    slot = jnp.where(tokens == layout.audio_start_id, 0, jnp.where(is_audio, (slot + 1) % layout.num_codebooks, slot))
    return span, slot


def allowed_mask(span: jax.Array, slot: jax.Array, constrained: jax.Array, padded_vocab: int, layout: VocabLayout) -> jax.Array:
    """Which ids [B, padded_vocab] each sequence may choose next.

    Constrained: inside an audio span only the slot's codebook (and <|audio_end|> at a frame
    boundary); inside a text span text ids and <|text_end|>; outside a span text ids, the two
    openers and EOS. Unconstrained: any real id. Padding rows of the LM head never.
    """
    ids = jnp.arange(padded_vocab)[None, :]
    real = ids < layout.size
    text = ids < layout.text_size
    slot_lo = layout.audio_offset + slot[:, None] * layout.codebook_size
    in_slot = (ids >= slot_lo) & (ids < slot_lo + layout.codebook_size)
    audio_rule = in_slot | ((ids == layout.audio_end_id) & (slot[:, None] == 0))
    text_rule = text | (ids == layout.text_end_id)
    outside_rule = text | (ids == layout.text_start_id) | (ids == layout.audio_start_id)
    span = span[:, None]
    rule = jnp.where(span == IN_AUDIO, audio_rule, jnp.where(span == IN_TEXT, text_rule, outside_rule))
    return jnp.where(constrained[:, None], rule, real)


def sample_tokens(
    logits: jax.Array,
    allowed: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    top_k: jax.Array,
    keys: jax.Array,
) -> jax.Array:
    """One token per row of ``logits`` [B, V] (float32) under the per-row parameters."""
    masked = jnp.where(allowed, logits, NEG_INF)
    greedy = jnp.argmax(masked, axis=-1)
    scaled = masked / jnp.maximum(temperature, 1e-6)[:, None]

    def cut(scaled):
        # One descending sort serves both cuts; thresholds are values, so ties at the edge are kept.
        ordered = -jnp.sort(-scaled, axis=-1)
        vocab = scaled.shape[-1]
        k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
        kth = jnp.take_along_axis(ordered, (k - 1)[:, None], axis=-1)
        ordered = jnp.where(ordered >= kth, ordered, NEG_INF)
        probs = jax.nn.softmax(ordered, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly more likely tokens
        keep = before < top_p[:, None]
        pth = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
        return jnp.where((scaled >= kth) & (scaled >= pth), scaled, NEG_INF)

    needs_cut = jnp.any((top_k > 0) | (top_p < 1.0))
    scaled = jax.lax.cond(needs_cut, cut, lambda s: s, scaled)
    sampled = jax.vmap(jax.random.categorical)(keys, scaled)
    return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


def stacked(params: Sequence[SamplingParams]) -> dict[str, np.ndarray]:
    """Per-sequence parameter arrays for the compiled decode loop."""
    return {
        "temperature": np.array([p.temperature for p in params], np.float32),
        "top_p": np.array([p.top_p for p in params], np.float32),
        "top_k": np.array([p.top_k for p in params], np.int32),
        "constrained": np.array([p.audio_constraint for p in params], bool),
        "max_new": np.array([p.max_new_tokens for p in params], np.int32),
    }


def stop_table(params: Sequence[SamplingParams]) -> np.ndarray:
    """Stop ids [B, S] padded with -1 (S >= 1)."""
    width = max([len(p.stop_ids) for p in params] + [1])
    table = np.full((len(params), width), -1, np.int32)
    for i, p in enumerate(params):
        table[i, : len(p.stop_ids)] = p.stop_ids
    return table
