"""Batched, KV-cached generation in one compiled program per shape bucket, and full-forward scoring.

`generate` left-pads the prompts of a batch to a common bucket length, prefills the cache in one
forward, then runs the decode loop inside the same jit (``jax.lax.while_loop``: one forward of one
token per sequence per iteration, the logits processor of `soda_jax.inference.sampling`, stop and
length checks), leaving the loop when every sequence is done. Batch, prompt length and generation
length are rounded up to powers of two, so a handful of compiled programs serve a whole evaluation.

`score` is the levanter model's full forward over packed rows with a blockwise log-sum-exp over the
vocabulary: the log-probability of every token given its prefix, without the full logits.
Likelihood evaluations use it, and tests compare the cached decode with it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
import numpy as np
from haliax import Axis

from soda_jax.inference.decoder import (
    BATCH,
    KEY_POSITION,
    POSITION,
    DecodeWeights,
    empty_cache,
    forward,
    grow_cache,
)
from soda_jax.inference.loader import LoadedModel
from soda_jax.inference.sampling import (
    SamplingParams,
    VocabLayout,
    allowed_mask,
    frame_state_of,
    next_frame_state,
    sample_tokens,
    stacked,
    stop_table,
)

logger = logging.getLogger(__name__)

MIN_PROMPT_BUCKET = 16
MIN_NEW_BUCKET = 16
MIN_SEGMENT = 64
"""New tokens of the decode loop's first segment at least (`segment_ends`)."""
MAX_SEGMENTS = 4
"""Segments of the decode loop at most: each is one more compiled copy of the decode step."""
FINISH_STOP = "stop"
"""Ended on one of its stop ids (kept as the last new token)."""
FINISH_LENGTH = "length"
"""Reached ``max_new_tokens``."""
FINISH_CONTEXT = "context"
"""Reached the model's context length before ``max_new_tokens``."""


class PromptTooLongError(ValueError):
    """A prompt that leaves no room to generate within the model's context."""


@dataclasses.dataclass(frozen=True)
class Generation:
    """One sequence's result."""

    prompt: np.ndarray
    """The prompt ids (int32)."""
    tokens: np.ndarray
    """New ids (int32), the stop id included when it ended on one."""
    finish_reason: str
    """`FINISH_STOP`, `FINISH_LENGTH` or `FINISH_CONTEXT`."""
    logprobs: np.ndarray
    """Log-probability of each new id under the model (its raw softmax, before temperature,
    top-k/top-p and the frame constraint), float32."""
    logits: np.ndarray | None = None
    """The raw logits ``[new tokens, vocab rows]`` each token was drawn from (``keep_logits=True`` only: tests)."""


def bucket(n: int, minimum: int) -> int:
    """``n`` rounded up to a power of two, at least ``minimum``."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def batch_bucket(n: int, multiple: int) -> int:
    size = bucket(n, 1)
    return -(-size // multiple) * multiple


def _seed_keys(seeds: np.ndarray) -> jax.Array:
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, dtype=jnp.uint32))


def segment_ends(new_bucket: int) -> list[int]:
    """Where the decode loop's segments end (new-token counts, the last ``new_bucket``): each ends
    at twice the one before, the first at ``new_bucket`` halved until `MIN_SEGMENT` or `MAX_SEGMENTS`.

    A segment's steps attend over the prompt's columns and its own end's: never more than twice the
    filled columns of the generated part, where one loop over the whole bucket would attend over all
    of it from the first token (``new_bucket`` 2048 for 1500 TTS tokens)."""
    ends = [new_bucket]
    while len(ends) < MAX_SEGMENTS and ends[0] // 2 >= MIN_SEGMENT:
        ends.insert(0, ends[0] // 2)
    return ends


@functools.partial(eqx.filter_jit, donate="none")
def _generate_bucket(
    model,
    weights: DecodeWeights,
    tokens,
    pad,
    params,
    stops,
    keys,
    span,
    slot,
    *,
    layout: VocabLayout,
    new_bucket: int,
    keep_logits: bool = False,
):
    """Prefill + decode loop for one bucket. Arrays are [B] or [B, P]; returns new tokens [B, N],
    their log-probs [B, N], lengths [B] and whether each stopped on a stop id.

    The cache holds exactly the prompt's columns for the prefill, then grows at the start of each
    segment of the loop (`segment_ends`) to the columns that segment can fill; inside a segment
    every step writes its token's keys and values in place. The prefill's and the loop's projections
    use ``weights``, the model's `decode_weights` (`LoadedModel.decode_weights`: made once per model)."""
    Batch = Axis(BATCH, tokens.shape[0])
    Prompt = Axis(POSITION, tokens.shape[1])

    def key_valid(columns: int):
        return hax.shard(hax.named(jnp.arange(columns)[None, :] >= pad[:, None], (Batch, Axis(KEY_POSITION, columns))))

    caches = empty_cache(model, Batch.size, Prompt.size)
    positions = hax.named(jnp.maximum(jnp.arange(Prompt.size)[None, :] - pad[:, None], 0), (Batch, Prompt))
    logits, caches = forward(
        model, hax.shard(hax.named(tokens, (Batch, Prompt))), positions, caches, 0, key_valid(Prompt.size), weights
    )
    last = logits[POSITION, -1].array.astype(jnp.float32)
    vocab_rows = last.shape[-1]

    out = jnp.zeros((Batch.size, new_bucket), jnp.int32)
    out_logp = jnp.zeros((Batch.size, new_bucket), jnp.float32)
    out_logits = jnp.zeros((Batch.size, new_bucket if keep_logits else 0, vocab_rows), jnp.float32)
    done = params["max_new"] <= 0
    lengths = jnp.zeros(Batch.size, jnp.int32)
    stopped = jnp.zeros(Batch.size, bool)

    def segment(state, end: int, valid):
        def cond(state):
            t, done = state[0], state[6]
            return (t < end) & ~jnp.all(done)

        def body(state):
            t, last, caches, out, out_logp, out_logits, done, lengths, stopped, span, slot = state
            allowed = allowed_mask(span, slot, params["constrained"], vocab_rows, layout)
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
            token = sample_tokens(last, allowed, params["temperature"], params["top_p"], params["top_k"], step_keys)
            token = jnp.where(done, 0, token)
            logp = jnp.take_along_axis(last, token[:, None], axis=-1)[:, 0] - jax.nn.logsumexp(last, axis=-1)
            out = out.at[:, t].set(token)
            out_logp = out_logp.at[:, t].set(jnp.where(done, 0.0, logp))
            if keep_logits:
                out_logits = out_logits.at[:, t].set(last)
            hit_stop = jnp.any(token[:, None] == stops, axis=-1) & ~done
            lengths = jnp.where(done, lengths, t + 1)
            stopped = stopped | hit_stop
            done = done | hit_stop | (t + 1 >= params["max_new"])
            span, slot = next_frame_state(token, span, slot, layout)
            column = Prompt.size + t
            step_positions = hax.named((column - pad)[:, None], (Batch, Axis(POSITION, 1)))
            step_tokens = hax.shard(hax.named(token[:, None], (Batch, Axis(POSITION, 1))))
            logits, caches = forward(model, step_tokens, step_positions, caches, column, valid, weights)
            last = logits[POSITION, 0].array.astype(jnp.float32)
            return t + 1, last, caches, out, out_logp, out_logits, done, lengths, stopped, span, slot

        return jax.lax.while_loop(cond, body, state)

    state = (jnp.int32(0), last, caches, out, out_logp, out_logits, done, lengths, stopped, span, slot)
    for end in segment_ends(new_bucket):
        columns = Prompt.size + end
        state = (*state[:2], grow_cache(state[2], columns), *state[3:])
        state = segment(state, end, key_valid(columns))
    return state[3], state[4], state[7], state[8], state[5]


def generate(
    loaded: LoadedModel,
    prompts: Sequence[np.ndarray],
    params: SamplingParams | Sequence[SamplingParams],
    *,
    max_batch: int = 64,
    keep_logits: bool = False,
) -> list[Generation]:
    """Generate a continuation of each prompt (batched in groups of ``max_batch`` of similar length).

    ``keep_logits`` also returns every step's raw logits (memory: new tokens x vocabulary per
    sequence; for tests and debugging)."""
    prompts = [np.asarray(p, dtype=np.int32) for p in prompts]
    if isinstance(params, SamplingParams):
        params = [params] * len(prompts)
    params = list(params)
    if len(params) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling parameters")
    context = loaded.context_length
    for i, p in enumerate(prompts):
        if p.ndim != 1 or not p.size:
            raise ValueError(f"prompt {i} must be a non-empty 1-D id array, got shape {p.shape}")
        if p.size >= context:
            raise PromptTooLongError(f"prompt {i} has {p.size} tokens; the model's context is {context}")
        if p.min() < 0 or p.max() >= loaded.vocab.size:
            raise ValueError(f"prompt {i} holds ids outside the vocabulary [0, {loaded.vocab.size})")
    order = sorted(range(len(prompts)), key=lambda i: prompts[i].size)
    results: list[Generation | None] = [None] * len(prompts)
    for start in range(0, len(order), max_batch):
        group = order[start : start + max_batch]
        for i, g in zip(
            group, _generate_group(loaded, [prompts[i] for i in group], [params[i] for i in group], keep_logits)
        ):
            results[i] = g
    return results  # type: ignore[return-value]


def bucket_arguments(
    loaded: LoadedModel, prompts: list[np.ndarray], params: list[SamplingParams], keep_logits: bool = False
) -> tuple[tuple, dict]:
    """The positional and keyword arguments of `_generate_bucket` for one group of prompts (call it
    under ``loaded``'s mesh and compute mapping): prompts left-padded to their length bucket, the batch
    filled to its bucket with rows that generate nothing."""
    layout = VocabLayout.of(loaded.vocab, loaded.num_codebooks)
    context = loaded.context_length
    budgets = [min(p.max_new_tokens, context - x.size) for p, x in zip(params, prompts)]
    n = len(prompts)
    batch = batch_bucket(n, loaded.data_parallel_size)
    prompt_len = bucket(max(x.size for x in prompts), MIN_PROMPT_BUCKET)
    new_len = bucket(max(budgets), MIN_NEW_BUCKET)

    tokens = np.zeros((batch, prompt_len), np.int32)
    pad = np.full(batch, prompt_len, np.int32)  # filler rows: all pad, nothing to generate
    states = np.zeros((batch, 2), np.int32)
    for i, x in enumerate(prompts):
        tokens[i, prompt_len - x.size :] = x
        pad[i] = prompt_len - x.size
        states[i] = frame_state_of(x, layout)
    filler = SamplingParams(temperature=0.0, max_new_tokens=1)
    padded = params + [filler] * (batch - n)
    arrays = stacked(padded)
    arrays["max_new"] = np.array(budgets + [0] * (batch - n), np.int32)
    keys = _seed_keys(np.array([p.seed for p in padded], np.uint32))
    args = (
        loaded.model,
        loaded.decode_weights,
        jnp.asarray(tokens),
        jnp.asarray(pad),
        {k: jnp.asarray(v) for k, v in arrays.items()},
        jnp.asarray(stop_table(padded)),
        keys,
        jnp.asarray(states[:, 0]),
        jnp.asarray(states[:, 1]),
    )
    return args, {"layout": layout, "new_bucket": new_len, "keep_logits": keep_logits}


def _generate_group(
    loaded: LoadedModel, prompts: list[np.ndarray], params: list[SamplingParams], keep_logits: bool
) -> list[Generation]:
    args, kwargs = bucket_arguments(loaded, prompts, params, keep_logits)
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        new, logp, lengths, stopped, logits = _generate_bucket(*args, **kwargs)
    new, logp, lengths, stopped, logits = (np.asarray(jax.device_get(a)) for a in (new, logp, lengths, stopped, logits))
    results = []
    for i, x in enumerate(prompts):
        count = int(lengths[i])
        if stopped[i]:
            reason = FINISH_STOP
        elif count >= params[i].max_new_tokens:
            reason = FINISH_LENGTH
        else:
            reason = FINISH_CONTEXT
        kept = logits[i, :count].copy() if keep_logits else None
        results.append(Generation(x, new[i, :count].copy(), reason, logp[i, :count].copy(), kept))
    return results


# --------------------------------------------------------------------------------------- score
@functools.partial(eqx.filter_jit, donate="none")
def _score_rows(model, tokens, segments, positions, *, vocab_block: int | None):
    """Log-probability of each row's next token at every position [rows, width] (the last position's,
    and a segment's last token's, are of the next segment's first token: ignored by the caller)."""
    from levanter.layers.attention import AttentionMask
    from levanter.models.loss import fused_cross_entropy_loss_and_logsumexp_penalty

    Batch, Pos = Axis(BATCH, tokens.shape[0]), Axis(POSITION, tokens.shape[1])
    ids = hax.shard(hax.named(tokens, (Batch, Pos)))
    segment_ids = hax.named(segments, (Batch, Pos))
    mask = AttentionMask.causal(segment_ids=(segment_ids, segment_ids))
    activations = model.activations(ids, attn_mask=mask, pos_ids=hax.named(positions, (Batch, Pos)))
    activations = activations[0] if isinstance(activations, tuple) else activations
    loss = fused_cross_entropy_loss_and_logsumexp_penalty(
        activations,
        model.get_lm_head(),
        Contract=model.Embed,
        Label=model.Vocab,
        target_y=hax.roll(ids, -1, Pos),
        reduction=None,
        logsumexp_weight=0.0,
        block_size=vocab_block,
        dtype=jnp.float32,
    )
    return -loss.array


@eqx.filter_jit
def _full_logits(model, tokens):
    from levanter.layers.attention import AttentionMask

    ids = hax.shard(hax.named(tokens, (Axis(BATCH, tokens.shape[0]), Axis(POSITION, tokens.shape[1]))))
    return model(ids, attn_mask=AttentionMask.causal()).array.astype(jnp.float32)


def full_logits(loaded: LoadedModel, tokens: np.ndarray) -> np.ndarray:
    """Logits ``[B, T, vocab rows]`` of the model's own full forward (causal) over rows of equal
    length: the reference the cached decode is tested against, and the no-cache baseline."""
    tokens = np.asarray(tokens, np.int32)
    rows = -(-tokens.shape[0] // loaded.data_parallel_size) * loaded.data_parallel_size
    padded = np.zeros((rows, tokens.shape[1]), np.int32)
    padded[: tokens.shape[0]] = tokens
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        return np.asarray(jax.device_get(_full_logits(loaded.model, jnp.asarray(padded))))[: tokens.shape[0]]


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Sequence indices packed into rows of ``width`` tokens, first fit by decreasing length."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


def score(loaded: LoadedModel, sequences: Sequence[np.ndarray], *, max_batch: int = 32) -> list[np.ndarray]:
    """Log-probability of each token of each sequence given the tokens before it.

    Returns, per sequence of length T, a float32 array of T - 1 values: entry j is
    ``log p(seq[j + 1] | seq[: j + 1])``.

    Sequences are packed (`pack_rows`) into rows as wide as the longest one's length bucket, each
    sequence its own attention segment with positions from 0, so it sees exactly its own prefix;
    ``max_batch`` rows per forward. The log-probs come from a blockwise log-sum-exp over the
    vocabulary (levanter's fused cross-entropy, training's kernel and CPU block,
    `soda_jax.training.loss.default_vocab_block`): the [rows, width, vocabulary] logits are never
    materialised. One call compiles one (rows, width) program, and one more for a smaller last forward.
    """
    from soda_jax.training.loss import default_vocab_block

    sequences = [np.asarray(s, dtype=np.int32) for s in sequences]
    for i, s in enumerate(sequences):
        if s.ndim != 1 or s.size < 2:
            raise ValueError(f"sequence {i} needs at least 2 tokens, got shape {s.shape}")
        if s.size > loaded.context_length:
            raise PromptTooLongError(
                f"sequence {i} has {s.size} tokens; the model's context is {loaded.context_length}"
            )
    if not sequences:
        return []
    width = min(bucket(max(s.size for s in sequences), MIN_PROMPT_BUCKET), max(loaded.context_length, 2))
    rows = pack_rows([s.size for s in sequences], width)
    per_forward = batch_bucket(min(max_batch, len(rows)), loaded.data_parallel_size)
    results: list[np.ndarray | None] = [None] * len(sequences)
    for start in range(0, len(rows), per_forward):
        chunk = rows[start : start + per_forward]
        count = batch_bucket(len(chunk), loaded.data_parallel_size)
        tokens = np.zeros((count, width), np.int32)
        segments = np.full((count, width), -1, np.int32)  # padding: a segment of its own
        positions = np.zeros((count, width), np.int32)
        placed = []
        for row, members in enumerate(chunk):
            offset = 0
            for segment, i in enumerate(members):
                size = sequences[i].size
                tokens[row, offset : offset + size] = sequences[i]
                segments[row, offset : offset + size] = segment
                positions[row, offset : offset + size] = np.arange(size)
                placed.append((i, row, offset))
                offset += size
        with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
            logp = _score_rows(
                loaded.model,
                *(jnp.asarray(a) for a in (tokens, segments, positions)),
                vocab_block=default_vocab_block(),
            )
        logp = np.asarray(jax.device_get(logp))
        for i, row, offset in placed:
            results[i] = logp[row, offset : offset + sequences[i].size - 1].copy()
    return results  # type: ignore[return-value]
