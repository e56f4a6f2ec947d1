"""The logits processor's sort-free cuts and draw against the full-sort reference, and the decode
loop's segments.

The cuts must keep exactly the ids the descending sort with a cumulative sum keeps (the processor's
earlier implementation, written out here as the reference); the inverse-CDF draw must follow the
weights (a chi-square bound over many draws) and never pick an id of weight 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from soda_jax.inference.generate import MAX_SEGMENTS, MIN_SEGMENT, pack_rows, segment_ends
from soda_jax.inference.sampling import (
    NEG_INF,
    SAMPLE_BLOCK,
    draw_from,
    first_argmax,
    sample_tokens,
    top_k_cut,
    top_p_cut,
)

VOCAB = 1000
"""Ids per row of the random logits (not a multiple of `SAMPLE_BLOCK`: the last block is partial)."""


def sorted_cut(scaled: jax.Array, top_k: jax.Array, top_p: jax.Array) -> jax.Array:
    """The reference: one descending sort for both cuts, thresholds as values (ties at the edge kept)."""
    ordered = -jnp.sort(-scaled, axis=-1)
    vocab = scaled.shape[-1]
    k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
    kth = jnp.take_along_axis(ordered, (k - 1)[:, None], axis=-1)
    ordered = jnp.where(ordered >= kth, ordered, NEG_INF)
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs
    keep = (before < top_p[:, None]) | (top_p[:, None] >= 1.0)  # 1 keeps all (a cumulative sum can round to 1 early)
    pth = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    return (scaled >= kth) & (scaled >= pth)


def random_logits(rows: int, seed: int) -> np.ndarray:
    """Logits with the shapes that matter: peaked and flat rows, exact ties, masked (NEG_INF) ids."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, VOCAB)).astype(np.float32) * rng.choice([0.3, 1.0, 4.0, 12.0], size=(rows, 1))
    logits[:, 5:40] = logits[:, 5:6]  # a block of ties
    logits[rows // 2 :, VOCAB // 3 :] = NEG_INF  # half the rows: two thirds masked (the frame constraint's shape)
    return logits


@pytest.mark.parametrize("seed", [0, 1])
def test_sort_free_cuts_keep_what_the_sort_keeps(seed):
    rows = 64
    logits = jnp.asarray(random_logits(rows, seed))
    rng = np.random.default_rng(seed + 10)
    top_k = jnp.asarray(rng.choice([0, 1, 7, 35, 36, 200, VOCAB], size=rows).astype(np.int32))
    top_p = jnp.asarray(rng.choice([1e-6, 0.3, 0.8, 0.9, 0.999, 1.0], size=rows).astype(np.float32))
    expected = np.asarray(sorted_cut(logits, top_k, top_p))
    after_k = top_k_cut(logits, top_k)
    kept = np.asarray(top_p_cut(jax.nn.softmax(after_k, axis=-1), top_p) > 0)
    # ids whose probability underflows to 0 cannot be drawn either way: compare where it is positive
    reachable = np.asarray(jax.nn.softmax(after_k, axis=-1) > 0)
    assert reachable.sum() > rows
    np.testing.assert_array_equal(kept & reachable, expected & reachable)


def test_top_k_keeps_ties_at_the_edge_and_zero_keeps_all():
    row = jnp.asarray([[3.0, 1.0, 2.0, 2.0, -5.0, 2.0]])
    np.testing.assert_array_equal(np.asarray(top_k_cut(row, jnp.asarray([2])) > NEG_INF), [[1, 0, 1, 1, 0, 1]])
    np.testing.assert_array_equal(np.asarray(top_k_cut(row, jnp.asarray([0])) > NEG_INF), [[1] * 6])
    np.testing.assert_array_equal(np.asarray(top_k_cut(-row, jnp.asarray([1])) > NEG_INF), [[0, 0, 0, 0, 1, 0]])


def test_draw_follows_the_weights_and_never_picks_a_zero():
    weights = np.zeros(VOCAB, np.float32)
    live = np.array([0, 3, 127, 128, 129, 500, 998, 999])  # block edges and the partial last block
    weights[live] = [1, 2, 3, 4, 5, 6, 7, 8]
    draws = 40_000
    uniform = jax.random.uniform(jax.random.PRNGKey(0), (draws,))
    ids = np.asarray(draw_from(jnp.broadcast_to(jnp.asarray(weights), (draws, VOCAB)), uniform))
    assert set(np.unique(ids)) <= set(live)
    counts = np.bincount(ids, minlength=VOCAB)[live]
    expected = draws * weights[live] / weights.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3, (chi2, counts, expected)  # 7 degrees of freedom, p = 0.001
    edges = jnp.asarray([0.0, 1.0 - 2**-24, 0.5])  # the extremes of [0, 1) land on live ids
    picked = np.asarray(draw_from(jnp.broadcast_to(jnp.asarray(weights), (3, VOCAB)), edges))
    assert set(picked) <= set(live) and picked[0] == 0 and picked[1] == 999


def test_sample_tokens_draws_from_the_cut_distribution():
    logits = jnp.asarray(np.log(np.array([[0.5, 0.3, 0.15, 0.05] + [1e-9] * (SAMPLE_BLOCK - 4)], np.float32)))
    draws = 20_000
    keys = jax.random.split(jax.random.PRNGKey(1), draws)
    rows = jnp.broadcast_to(logits, (draws, SAMPLE_BLOCK))
    allowed = jnp.ones_like(rows, bool)
    ones = jnp.ones(draws, jnp.float32)
    ids = np.asarray(sample_tokens(rows, allowed, ones, 0.75 * ones, jnp.zeros(draws, jnp.int32), keys))
    assert set(np.unique(ids)) == {0, 1}  # nucleus 0.75: 0.5 alone is below it, 0.5 + 0.3 reaches it
    assert abs((ids == 0).mean() - 0.5 / 0.8) < 0.02
    greedy = np.asarray(
        sample_tokens(rows[:4], allowed[:4], jnp.zeros(4), 0.75 * ones[:4], jnp.zeros(4, jnp.int32), keys[:4])
    )
    np.testing.assert_array_equal(greedy, 0)


def test_first_argmax_is_argmax_with_ties_masks_and_nans():
    rows = np.asarray(random_logits(6, 0))
    rows[1, [3, 17, 40]] = rows[1].max() + 1.0  # a tie: the first index wins
    rows[2, :] = NEG_INF  # every id masked: index 0, as argmax
    rows[3, [5, 9]] = np.nan  # the first NaN, as argmax
    rows[4, :] = 7.0
    rows[5, -1] = np.inf
    values = jnp.asarray(rows)
    np.testing.assert_array_equal(jax.jit(first_argmax)(values), jnp.argmax(values, axis=-1))
    assert first_argmax(values).dtype == jnp.int32


def test_segments_double_up_to_the_bucket():
    assert segment_ends(16) == [16]
    assert segment_ends(MIN_SEGMENT) == [MIN_SEGMENT]
    assert segment_ends(2 * MIN_SEGMENT) == [MIN_SEGMENT, 2 * MIN_SEGMENT]
    big = segment_ends(2048)
    assert len(big) == MAX_SEGMENTS and big[-1] == 2048 and all(b == 2 * a for a, b in zip(big, big[1:]))


def test_packing_places_every_sequence_once_within_the_width():
    lengths = [5, 16, 3, 9, 9, 1, 12, 16, 2]
    rows = pack_rows(lengths, 16)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 16 for row in rows)
    assert len(rows) == -(-sum(lengths) // 16)  # first fit decreasing reaches the bound here
