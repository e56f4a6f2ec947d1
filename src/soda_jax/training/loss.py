"""The next-token loss (with SODA's z-loss), computed one of two ways.

* ``fused`` (the default): never materialises the [tokens, vocab] logits. On TPU/GPU (and for the
  per-position losses of validation) levanter's vocabulary-blocked kernel, the memory saver at SODA's
  sizes; the training loss on CPU runs `soda_jax.training.token_blocked_loss` instead (blocks of
  `CPU_TOKEN_BLOCK` positions, its gradient made in the forward pass: no recomputed logits), the
  faster one on this CPU (docs/training.md).
* ``full``: logits materialised, then softmax cross-entropy (slower on CPU; kept as the plain
  reference the fused kernel is tested against).

Both give the same loss: the mean over positions (the last of each sequence and zero-weight
positions excluded) of ``-log p(next token) + z_loss_weight * logsumexp(logits)^2``.

The fused kernel walks the vocabulary in blocks. On TPU/GPU levanter picks the block (tuned tables);
on CPU its heuristic takes 8,192-id blocks, which pad a 16,900-id vocabulary to 24,576 and leave each
block's [tokens, 8192] temporaries far outside the cache: smaller blocks (`CPU_VOCAB_BLOCK`) are
faster on CPU (measured: `benchmarks/bench_cross_entropy.py`, docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import haliax as hax
import jax
import jax.numpy as jnp
from levanter.models.loss import maybe_fused_next_token_loss, next_token_loss

from soda_jax.training.token_blocked_loss import token_blocked_mean_loss

CrossEntropy = Literal["fused", "full"]
"""How the loss is computed (see the module docstring)."""
CROSS_ENTROPY_CHOICES: tuple[CrossEntropy, ...] = get_args(CrossEntropy)

CPU_VOCAB_BLOCK = 1024
"""Vocabulary ids per block of the fused kernel on CPU (chosen by `benchmarks/bench_cross_entropy.py`;
docs/training.md has the figures)."""
CPU_TOKEN_BLOCK = 256
"""Positions per block of the token-blocked training loss on CPU (`soda_jax.training.token_blocked_loss`):
a block's float32 logits are ``256 x vocab x 4`` bytes (17 MB at 16.7k ids), so a block's passes over
them mostly stay in the last-level cache instead of memory (docs/training.md has the figures)."""


def default_token_block(backend: str | None = None) -> int | None:
    """Positions per block of the training loss's token-blocked kernel on ``backend`` (default: the
    current one): `CPU_TOKEN_BLOCK` on CPU, None (levanter's vocabulary-blocked kernel) on TPU/GPU."""
    return CPU_TOKEN_BLOCK if (backend or jax.default_backend()) == "cpu" else None


def default_vocab_block(backend: str | None = None) -> int | None:
    """The fused kernel's vocabulary block on ``backend`` (default: the current one): `CPU_VOCAB_BLOCK`
    on CPU, None (levanter's tuned choice) on TPU/GPU."""
    return CPU_VOCAB_BLOCK if (backend or jax.default_backend()) == "cpu" else None


def _activations(model, example, key):
    """The model's last hidden states for ``example`` and its auxiliary loss (0 when it has none)."""
    activations = model.activations(example.tokens, example.attn_mask, key=key)
    return activations if isinstance(activations, tuple) else (activations, 0)


def next_token_losses(
    model,
    example,
    cross_entropy: CrossEntropy,
    vocab_block: int | None,
    *,
    reduction=hax.mean,
    z_loss_weight: float | None = None,
    key=None,
):
    """The next-token NLL of ``example`` under ``model`` (plus ``z_loss_weight * logsumexp^2``), times
    each position's loss weight: per position with ``reduction=None``, else reduced (the mean over the
    weighted positions). Returns ``(loss, aux_loss)``; ``aux_loss`` is the model's own (0 for Qwen3)."""
    if cross_entropy == "fused":
        # levanter's LmHeadModel.compute_next_token_loss, with the vocabulary block passed down
        activations, aux_loss = _activations(model, example, key)
        loss = maybe_fused_next_token_loss(
            model.Pos,
            model.Embed,
            model.Vocab,
            activations,
            model.get_lm_head(),
            example.tokens,
            loss_weight=example.loss_weight,
            reduction=reduction,
            logsumexp_weight=z_loss_weight,
            dtype=jnp.float32,
            block_size=vocab_block,
        )
        return loss, aux_loss
    logits = model(example.tokens, example.attn_mask, key=key).astype(jnp.float32)
    loss = next_token_loss(
        model.Pos,
        model.Vocab,
        logits,
        example.tokens,
        loss_weight=example.loss_weight,
        reduction=reduction,
        logsumexp_weight=z_loss_weight,
    )
    return loss, 0


def token_blocked_next_token_loss(model, example, z_loss_weight: float | None, token_block: int, *, key=None):
    """The mean next-token loss of ``example`` (``fused``'s, the same positions and weights) through
    `token_blocked_mean_loss`; returns ``(loss, aux_loss)`` as `next_token_losses` does."""
    activations, aux_loss = _activations(model, example, key)
    Embed = activations.resolve_axis(model.Embed.name)
    Pos = activations.resolve_axis(model.Pos.name)
    positions = tuple(axis for axis in activations.axes if axis.name != Embed.name)
    not_last = hax.logical_not(hax.nn.one_hot(-1, Pos, dtype=jnp.bool_)).astype(jnp.float32)
    weights = not_last if example.loss_weight is None else example.loss_weight * not_last
    labels = hax.roll(example.tokens, -1, Pos)
    loss = token_blocked_mean_loss(
        activations.rearrange((*positions, Embed)).array.reshape(-1, Embed.size),
        model.get_lm_head().rearrange((Embed, model.Vocab)).array,
        hax.broadcast_to(labels, positions).rearrange(positions).array.reshape(-1).astype(jnp.int32),
        hax.broadcast_to(weights, positions).rearrange(positions).array.reshape(-1),
        float(z_loss_weight or 0.0),
        token_block,
    )
    return hax.named(loss, ()), aux_loss


def next_token_loss_fn(
    cross_entropy: CrossEntropy,
    z_loss_weight: float | None,
    vocab_block: int | None = None,
    token_block: int | None = None,
) -> Callable:
    """``loss_fn(model, example, *, key=None) -> scalar`` for levanter's Trainer and validation.

    ``vocab_block``: ids per block of levanter's fused kernel; None leaves the choice to levanter.
    ``token_block``: with ``fused``, positions per block of `token_blocked_mean_loss` instead of
    levanter's kernel (training passes `default_token_block` of its backend); None: levanter's."""
    if cross_entropy not in CROSS_ENTROPY_CHOICES:
        raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY_CHOICES}, got {cross_entropy!r}")

    def loss_fn(model, example, *, key=None):
        if cross_entropy == "fused" and token_block is not None:
            loss, aux_loss = token_blocked_next_token_loss(model, example, z_loss_weight, token_block, key=key)
            return loss + aux_loss
        loss, aux_loss = next_token_losses(
            model, example, cross_entropy, vocab_block, z_loss_weight=z_loss_weight, key=key
        )
        return loss + aux_loss

    return loss_fn
