"""The training loss on CPU: a mean next-token cross-entropy whose gradient is made in its forward pass.

The loss is the one `soda_jax.training.loss` defines: ``sum(w * (lse - logit[label] + z * lse^2)) / sum(w)``
over the flattened positions, with ``lse`` the log-partition of the position's logits. It is a scalar,
so its gradient with respect to the logits of each position is known while the logits are at hand:
``w / sum(w) * (softmax * (1 + 2 z lse) - onehot(label))``. The kernel walks the positions in blocks of
``token_block`` rows; each block computes its ``[token_block, vocab]`` logits once, turns them into that
gradient in place, and contracts it right away into the gradients of the hidden states and of the
output projection. The backward pass only scales those two by the incoming cotangent.

Against levanter's vocabulary-blocked kernel (``fused``), which keeps only the log-partition and
recomputes every block of logits in the backward pass, this does three matmuls of the output
projection instead of four and no scatter; against materialised logits (``full``), each block's
logits stay in the cache instead of making several passes over ``[tokens, vocab]`` in memory
(docs/training.md has the figures). On TPU/GPU levanter's kernels stay (`loss.default_token_block`).

Without a gradient (``jax.jit(loss)``) the primal path runs: the same blocks, loss only.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def _block_loss(x_block: jax.Array, head: jax.Array, labels: jax.Array, weights: jax.Array, z_loss_weight: float):
    """One block's weighted loss sum, with the pieces its gradient needs: ``(loss, exp(logits - max),
    sum of those, lse, label one-hot mask)``."""
    logits = jnp.dot(x_block, head, preferred_element_type=jnp.float32)
    peak = jnp.max(logits, axis=-1, keepdims=True)
    exps = jnp.exp(logits - peak)
    total = jnp.sum(exps, axis=-1)
    lse = peak[:, 0] + jnp.log(total)
    is_label = jnp.arange(head.shape[1], dtype=labels.dtype)[None, :] == labels[:, None]
    label_logit = jnp.sum(jnp.where(is_label, logits, 0.0), axis=-1)
    loss = jnp.sum(weights * (lse - label_logit + z_loss_weight * lse * lse))
    return loss, exps, total, lse, is_label


def _blocked(x, head, labels, weights, z_loss_weight: float, token_block: int, with_grad: bool):
    """``(loss, (d loss / d x, d loss / d head) or None)`` over blocks of ``token_block`` positions."""
    tokens, width = x.shape
    token_block = min(token_block, tokens)  # fewer positions than a block: one block, unpadded
    blocks = -(-tokens // token_block)
    pad = blocks * token_block - tokens
    denominator = jnp.sum(weights.astype(jnp.float32))
    scale = jnp.where(denominator != 0, 1.0 / jnp.where(denominator != 0, denominator, 1.0), 0.0)
    scaled = weights.astype(jnp.float32) * scale  # zero-weight runs give 0, as levanter's mean does
    if pad:  # padded rows weigh nothing
        x = jnp.pad(x, ((0, pad), (0, 0)))
        labels = jnp.pad(labels, (0, pad))
        scaled = jnp.pad(scaled, (0, pad))
    inputs = (x.reshape(blocks, token_block, width), labels.reshape(blocks, token_block), scaled.reshape(blocks, -1))

    def body(carry, block):
        loss_sum, grad_head = carry
        x_block, label_block, weight_block = block
        loss, exps, total, lse, is_label = _block_loss(x_block, head, label_block, weight_block, z_loss_weight)
        if not with_grad:
            return (loss_sum + loss, grad_head), None
        row_scale = weight_block * (1.0 + 2.0 * z_loss_weight * lse) / total
        grad_logits = (exps * row_scale[:, None] - jnp.where(is_label, weight_block[:, None], 0.0)).astype(x.dtype)
        grad_x = jax.lax.dot_general(
            grad_logits, head, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32
        ).astype(x.dtype)
        grad_head = grad_head + jax.lax.dot_general(
            x_block, grad_logits, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32
        )
        return (loss_sum + loss, grad_head), grad_x

    grad_head_init = jnp.zeros(head.shape if with_grad else (), jnp.float32)
    (loss, grad_head), grad_x = jax.lax.scan(body, (jnp.zeros((), jnp.float32), grad_head_init), inputs)
    if not with_grad:
        return loss, None
    return loss, (grad_x.reshape(blocks * token_block, width)[:tokens], grad_head.astype(head.dtype))


@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def token_blocked_mean_loss(
    x: jax.Array, head: jax.Array, labels: jax.Array, weights: jax.Array, z_loss_weight: float, token_block: int
) -> jax.Array:
    """``sum(weights * (nll + z_loss_weight * lse^2)) / sum(weights)`` (0 when the weights sum to 0) of
    hidden states ``x`` ``[tokens, embed]`` under the output projection ``head`` ``[embed, vocab]``, for
    the next ids ``labels`` ``[tokens]``; a float32 scalar."""
    return _blocked(x, head, labels, weights, z_loss_weight, token_block, with_grad=False)[0]


def _forward(x, head, labels, weights, z_loss_weight, token_block):
    loss, (grad_x, grad_head) = _blocked(x, head, labels, weights, z_loss_weight, token_block, with_grad=True)
    return loss, (grad_x, grad_head, labels, weights)


def _backward(z_loss_weight, token_block, residuals, cotangent):
    del z_loss_weight, token_block
    grad_x, grad_head, labels, weights = residuals
    # labels are integers (float0 cotangent); the weights are data, not trained: no gradient flows to them
    return (
        grad_x * cotangent.astype(grad_x.dtype),
        grad_head * cotangent.astype(grad_head.dtype),
        np.zeros(labels.shape, jax.dtypes.float0),
        jnp.zeros_like(weights),
    )


token_blocked_mean_loss.defvjp(_forward, _backward)
