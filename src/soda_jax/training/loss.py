"""The next-token loss (with SODA's z-loss), computed one of two ways.

* ``fused`` (the default): levanter's blockwise cross-entropy kernel; never materialises the
  [tokens, vocab] logits. The memory saver on TPU/GPU at SODA's sizes, and on CPU the faster one
  at the demo's 48k-id vocabulary for every width measured (d 64 to 384: docs/training.md).
* ``full``: logits materialised, then softmax cross-entropy; faster on CPU only for small
  vocabularies with wide models (the 16.7k-id, d-384 benchmark model: 1.14x).

Both give the same loss: the mean over positions (the last of each sequence and zero-weight
positions excluded) of ``-log p(next token) + z_loss_weight * logsumexp(logits)^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import jax.numpy as jnp
from levanter.models.loss import next_token_loss

CrossEntropy = Literal["fused", "full"]
"""How the loss is computed (see the module docstring)."""
CROSS_ENTROPY_CHOICES: tuple[CrossEntropy, ...] = get_args(CrossEntropy)


def next_token_loss_fn(cross_entropy: CrossEntropy, z_loss_weight: float | None) -> Callable:
    """``loss_fn(model, example, *, key=None) -> scalar`` for levanter's Trainer and validation."""
    if cross_entropy not in CROSS_ENTROPY_CHOICES:
        raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY_CHOICES}, got {cross_entropy!r}")
    if cross_entropy == "fused":

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
