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
            vocab.size,
            vocab.text_size,
            vocab.audio_offset,
            vocab.codebook_size,
            num_codebooks,
            vocab.text_start_id,
            vocab.text_end_id,
            vocab.audio_start_id,
            vocab.audio_end_id,
            vocab.eos_id,
        )


def frame_state_of(prompt: np.ndarray, layout: VocabLayout) -> tuple[int, int]:
    """(span state, codebook slot of the next audio token) at the end of ``prompt``."""
    prompt = np.asarray(prompt)
    markers = np.flatnonzero(
        np.isin(prompt, [layout.text_start_id, layout.text_end_id, layout.audio_start_id, layout.audio_end_id])
    )
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
        [
            tokens == layout.text_start_id,
            tokens == layout.audio_start_id,
            (tokens == layout.text_end_id) | (tokens == layout.audio_end_id),
        ],
        [IN_TEXT, IN_AUDIO, OUTSIDE],
        span,
    )
    slot = jnp.where(tokens == layout.audio_start_id, 0, jnp.where(is_audio, (slot + 1) % layout.num_codebooks, slot))
    return span, slot


def allowed_mask(
    span: jax.Array, slot: jax.Array, constrained: jax.Array, padded_vocab: int, layout: VocabLayout
) -> jax.Array:
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


SAMPLE_BLOCK = 128
"""Vocabulary ids per block of the inverse-CDF draw (`draw_from`): a cumulative sum over the block
sums picks the block, one over the block's ids the token."""


def _sortable_bits(x: jax.Array) -> jax.Array:
    """float32 -> uint32 keys in the same order (the radix-sort mapping: sign bit flipped for
    non-negative numbers, every bit flipped for negative ones)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    return jnp.where(bits >> 31 == 0, bits | jnp.uint32(0x80000000), ~bits)


def top_k_cut(scaled: jax.Array, top_k: jax.Array) -> jax.Array:
    """Keep, per row of ``scaled`` [B, V], the ids whose value is at least the row's ``top_k``-th
    largest (ties at the edge kept; ``top_k`` 0 keeps all); the rest become `NEG_INF`.

    The k-th largest value is found without sorting: a bisection over the 2^32 order-preserving
    integer keys of the values (32 counting passes over the row), so it is exact."""
    keys = _sortable_bits(scaled)
    k = jnp.minimum(top_k, scaled.shape[-1]).astype(jnp.int32)

    def halve(_, bounds):  # invariant: count(keys >= lo) >= k; the answer is in [lo, hi]
        lo, hi = bounds
        mid = hi - (hi - lo) // 2  # upper middle, so lo == hi - 1 moves on
        enough = jnp.sum(keys >= mid[:, None], axis=-1) >= k
        return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid - 1)

    rows = scaled.shape[0]
    kth, _ = jax.lax.fori_loop(0, 32, halve, (jnp.zeros(rows, jnp.uint32), jnp.full(rows, 0xFFFFFFFF, jnp.uint32)))
    keep = (keys >= kth[:, None]) | (top_k[:, None] <= 0)
    return jnp.where(keep, scaled, NEG_INF)


FLOAT_ONE_BITS = 0x3F800000
"""The bits of float32 1.0: every probability's bits lie in [0, FLOAT_ONE_BITS]."""


def top_p_cut(probs: jax.Array, top_p: jax.Array) -> jax.Array:
    """Nucleus cut of ``probs`` [B, V] (rows summing to 1): keep id i iff the mass of the ids strictly
    more likely than it is below the row's ``top_p`` (the smallest set reaching ``top_p``, ties at
    the edge kept, as a descending sort with a cumulative sum keeps it); the rest become 0.

    No sort: that mass falls as the probability rises, so the kept ids are those at or above a
    threshold, found by a bisection over the bits of non-negative float32 (31 summing passes)."""

    def mass_above(threshold_bits):
        threshold = jax.lax.bitcast_convert_type(threshold_bits, jnp.float32)[:, None]
        return jnp.sum(jnp.where(probs > threshold, probs, 0.0), axis=-1)

    def halve(_, bounds):  # the answer: the smallest threshold whose mass above is below top_p
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        below = mass_above(mid) < top_p
        return jnp.where(below, lo, mid + 1), jnp.where(below, mid, hi)

    rows = probs.shape[0]
    lo, _ = jax.lax.fori_loop(0, 31, halve, (jnp.zeros(rows, jnp.int32), jnp.full(rows, FLOAT_ONE_BITS, jnp.int32)))
    threshold = jax.lax.bitcast_convert_type(lo, jnp.float32)[:, None]
    return jnp.where((probs >= threshold) | (top_p[:, None] >= 1.0), probs, 0.0)


def draw_from(weights: jax.Array, uniform: jax.Array) -> jax.Array:
    """One id per row of ``weights`` [B, V] (non-negative, not necessarily normalised) with
    probability proportional to its weight, by inverse CDF from ``uniform`` [B] in [0, 1).

    Two cumulative sums of `SAMPLE_BLOCK`-id blocks instead of one over the whole row (and one
    uniform per row instead of one Gumbel per id); never an id of weight 0."""
    rows, vocab = weights.shape
    blocks = -(-vocab // SAMPLE_BLOCK)
    grouped = jnp.pad(weights, ((0, 0), (0, blocks * SAMPLE_BLOCK - vocab))).reshape(rows, blocks, SAMPLE_BLOCK)
    block_mass = grouped.sum(axis=-1)
    through = jnp.cumsum(block_mass, axis=-1)
    target = uniform * through[:, -1]
    live_blocks = jnp.where(block_mass > 0, jnp.arange(blocks), -1)
    block = jnp.minimum(jnp.sum(through <= target[:, None], axis=-1), jnp.max(live_blocks, axis=-1))
    row = jnp.take_along_axis(grouped, block[:, None, None], axis=1)[:, 0]
    within = target - (
        jnp.take_along_axis(through, block[:, None], axis=-1)[:, 0]
        - jnp.take_along_axis(block_mass, block[:, None], axis=-1)[:, 0]
    )
    ids = jnp.arange(SAMPLE_BLOCK)
    first, last = jnp.min(jnp.where(row > 0, ids, SAMPLE_BLOCK), axis=-1), jnp.max(jnp.where(row > 0, ids, -1), axis=-1)
    index = jnp.clip(
        jnp.sum(jnp.cumsum(row, axis=-1) <= within[:, None], axis=-1), first, last
    )  # rounding never picks a 0
    return (block * SAMPLE_BLOCK + index).astype(jnp.int32)


def first_argmax(values: jax.Array) -> jax.Array:
    """``jnp.argmax(values, axis=-1)`` as int32 (the first index of the largest value; of the first
    NaN in a row that has one), as two single-output reductions, a max and a min over indices. XLA's
    CPU backend runs argmax's paired (value, index) reduction 1.7-4x slower (148 against 37 us for a
    16,688-id row at batch 1, 365 against 209 us at batch 8), a cost every greedy decode step pays."""
    top = values.max(axis=-1, keepdims=True)
    ids = jnp.arange(values.shape[-1], dtype=jnp.int32)
    hits = (values == top) | jnp.isnan(values)
    return jnp.min(jnp.where(hits, ids, values.shape[-1]), axis=-1).astype(jnp.int32)


def sample_tokens(
    logits: jax.Array,
    allowed: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    top_k: jax.Array,
    keys: jax.Array,
) -> jax.Array:
    """One token per row of ``logits`` [B, V] (float32) under the per-row parameters.

    Work no row needs is skipped for the whole batch (``lax.cond``): no sampling at all when every
    row is greedy, no top-k pass when no sampled row sets top-k, no nucleus pass when none sets top-p."""
    masked = jnp.where(allowed, logits, NEG_INF)
    greedy = first_argmax(masked)
    sampled_rows = temperature > 0

    def sample(masked):
        scaled = masked / jnp.maximum(temperature, 1e-6)[:, None]
        scaled = jax.lax.cond(jnp.any(sampled_rows & (top_k > 0)), top_k_cut, lambda s, _: s, scaled, top_k)
        probs = jax.nn.softmax(scaled, axis=-1)
        probs = jax.lax.cond(jnp.any(sampled_rows & (top_p < 1.0)), top_p_cut, lambda p, _: p, probs, top_p)
        uniform = jax.vmap(jax.random.uniform)(keys)
        return draw_from(probs, uniform)

    sampled = jax.lax.cond(jnp.any(sampled_rows), sample, lambda _: greedy, masked)
    return jnp.where(sampled_rows, sampled, greedy)


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
