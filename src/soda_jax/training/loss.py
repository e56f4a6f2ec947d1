"""The next-token loss (with SODA's z-loss), computed one of two ways.

* ``fused``: levanter's blockwise cross-entropy kernel; never materialises the [tokens, vocab]
  logits (the memory saver on TPU/GPU at SODA's sizes).
* ``full``: logits materialised, then softmax cross-entropy; on CPU the fused kernel's vocabulary
  blocks and recomputed logits cost more than they save (benchmarks/bench_train.py).

Both give the same loss: the mean over positions (the last of each sequence and zero-weight
positions excluded) of ``-log p(next token) + z_loss_weight * logsumexp(logits)^2``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from levanter.models.loss import next_token_loss

CROSS_ENTROPY_CHOICES = ("auto", "fused", "full")
"""``auto``: ``full`` on CPU, ``fused`` on TPU/GPU."""


def resolve_cross_entropy(choice: str) -> str:
    """``fused`` or ``full`` for a `TrainConfig.cross_entropy` on the current backend."""
    if choice not in CROSS_ENTROPY_CHOICES:
        raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY_CHOICES}, got {choice!r}")
    if choice == "auto":
        return "full" if jax.default_backend() == "cpu" else "fused"
    return choice


def next_token_loss_fn(cross_entropy: str, z_loss_weight: float | None) -> Callable:
    """``loss_fn(model, example, *, key=None) -> scalar`` for levanter's Trainer and validation."""
    if resolve_cross_entropy(cross_entropy) == "fused":

        def fused_loss(model, example, *, key=None):
            return model.compute_next_token_loss(example, key=key, logsumexp_weight=z_loss_weight)

        return fused_loss

    def full_loss(model, example, *, key=None):
        logits = model(example.tokens, example.attn_mask, key=key).astype(jnp.float32)
        return next_token_loss(
            model.Pos, model.Vocab, logits, example.tokens,
            loss_weight=example.loss_weight, logsumexp_weight=z_loss_weight,
        )  # fmt: skip

    return full_loss
