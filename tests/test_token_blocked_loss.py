"""The CPU training loss (`soda_jax.training.token_blocked_loss`) against materialised logits."""

from __future__ import annotations

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from soda_jax.models import TEST_TINY, qwen3_config
from soda_jax.training.loss import CPU_TOKEN_BLOCK, default_token_block, next_token_loss_fn
from soda_jax.training.token_blocked_loss import token_blocked_mean_loss


def reference_loss(x, head, labels, weights, z_loss_weight):
    logits = x @ head
    lse = jax.nn.logsumexp(logits, axis=-1)
    nll = lse - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    return jnp.sum(weights * (nll + z_loss_weight * lse**2)) / jnp.sum(weights)


@pytest.mark.parametrize("token_block", [16, 37, 300])  # several blocks, a padded last block, one block
def test_kernel_matches_materialised_logits_in_loss_and_gradient(token_block):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    tokens, width, vocab, z_loss_weight = 100, 8, 53, 0.01
    x = jax.random.normal(keys[0], (tokens, width))
    head = 0.3 * jax.random.normal(keys[1], (width, vocab))
    labels = jax.random.randint(keys[2], (tokens,), 0, vocab)
    weights = (jax.random.uniform(keys[3], (tokens,)) > 0.3).astype(jnp.float32)

    def kernel(x, head):
        return token_blocked_mean_loss(x, head, labels, weights, z_loss_weight, token_block)

    loss, grads = jax.value_and_grad(kernel, argnums=(0, 1))(x, head)
    expected, expected_grads = jax.value_and_grad(reference_loss, argnums=(0, 1))(x, head, labels, weights, 0.01)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(jax.jit(kernel)(x, head)) == pytest.approx(float(expected), rel=1e-6)  # the primal path
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    # the cotangent scales both gradients (the kernel made them for a cotangent of 1)
    scaled = jax.grad(lambda x, head: 3.0 * kernel(x, head), argnums=(0, 1))(x, head)
    for got, want in zip(scaled, expected_grads):
        np.testing.assert_allclose(np.asarray(got), 3.0 * np.asarray(want), rtol=1e-5, atol=1e-7)


def test_zero_weights_give_zero_loss_and_gradient():
    x, head = jnp.ones((6, 4)), jnp.ones((4, 5))
    loss, grads = jax.value_and_grad(
        lambda x, head: token_blocked_mean_loss(x, head, jnp.zeros(6, jnp.int32), jnp.zeros(6), 0.0, 4), argnums=(0, 1)
    )(x, head)
    assert float(loss) == 0.0 and all(float(jnp.abs(g).max()) == 0.0 for g in grads)


def test_training_loss_on_cpu_is_the_fused_and_full_loss():
    from levanter.models.lm_model import LmExample

    assert default_token_block("cpu") == CPU_TOKEN_BLOCK and default_token_block("tpu") is None
    seq_len, vocab = 16, 97
    model = qwen3_config(TEST_TINY, seq_len, gradient_checkpointing=False, scan_layers=False).build(
        hax.Axis("vocab", vocab), key=jax.random.PRNGKey(0)
    )
    Batch, Pos = hax.Axis("batch", 3), model.Pos.resize(seq_len)
    tokens = hax.random.randint(jax.random.PRNGKey(1), (Batch, Pos), 0, vocab)
    weights = hax.named((np.arange(seq_len) % 5 != 0).astype(np.float32), Pos).broadcast_axis(Batch)
    example = hax.vmap(LmExample.causal, Batch)(tokens)
    example = eqx.tree_at(lambda e: e.loss_weight, example, example.loss_weight * weights)
    results = {}
    for name, token_block in (("full", None), ("fused", None), ("fused", 7)):
        loss_fn = next_token_loss_fn(name, z_loss_weight=0.01, token_block=token_block)
        loss, grads = eqx.filter_value_and_grad(lambda m: loss_fn(m, example).scalar())(model)  # noqa: B023
        results[name, token_block] = float(loss), jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    blocked_loss, blocked_grads = results["fused", 7]
    for reference in (("full", None), ("fused", None)):
        assert blocked_loss == pytest.approx(results[reference][0], rel=1e-5), reference
        for want, got in zip(results[reference][1], blocked_grads):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6, err_msg=str(reference))
