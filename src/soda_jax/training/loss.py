"""The next-token loss (with SODA's z-loss), computed one of two ways.

* ``fused`` (the default): levanter's blockwise cross-entropy kernel; never materialises the
  [tokens, vocab] logits. The memory saver on TPU/GPU at SODA's sizes, and on CPU (with
  `CPU_VOCAB_BLOCK`) the faster one for every model measured (docs/training.md).
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

CrossEntropy = Literal["fused", "full"]
"""How the loss is computed (see the module docstring)."""
CROSS_ENTROPY_CHOICES: tuple[CrossEntropy, ...] = get_args(CrossEntropy)

CPU_VOCAB_BLOCK = 1024
"""Vocabulary ids per block of the fused kernel on CPU (chosen by `benchmarks/bench_cross_entropy.py`;
docs/training.md has the figures)."""


def default_vocab_block(backend: str | None = None) -> int | None:
    """The fused kernel's vocabulary block on ``backend`` (default: the current one): `CPU_VOCAB_BLOCK`
    on CPU, None (levanter's tuned choice) on TPU/GPU."""
    return CPU_VOCAB_BLOCK if (backend or jax.default_backend()) == "cpu" else None


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
        activations = model.activations(example.tokens, example.attn_mask, key=key)
        activations, aux_loss = activations if isinstance(activations, tuple) else (activations, 0)
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


def next_token_loss_fn(
    cross_entropy: CrossEntropy, z_loss_weight: float | None, vocab_block: int | None = None
) -> Callable:
    """``loss_fn(model, example, *, key=None) -> scalar`` for levanter's Trainer and validation.

    ``vocab_block``: ids per block of the fused kernel (training passes `default_vocab_block` of its
    backend); None leaves the choice to levanter."""
    if cross_entropy not in CROSS_ENTROPY_CHOICES:
        raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY_CHOICES}, got {cross_entropy!r}")

    def loss_fn(model, example, *, key=None):
        loss, aux_loss = next_token_losses(
            model, example, cross_entropy, vocab_block, z_loss_weight=z_loss_weight, key=key
        )
        return loss + aux_loss

    return loss_fn
