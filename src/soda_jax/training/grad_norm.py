"""An optax transform that records the global gradient norm in the optimizer state.

levanter's step hooks see the trainer state after every step but not the gradients, and its
in-step (jit) hooks skip the first steps and force a second compile. Putting the norm in the
optimizer state makes it readable after every step at no extra cost.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import optax


class GradNormState(NamedTuple):
    grad_norm: jnp.ndarray
    """Global L2 norm of the last step's gradients, before clipping."""


def record_grad_norm() -> optax.GradientTransformation:
    """Identity on the updates; stores their global norm (put it first in a chain: raw gradients)."""

    def init(params):
        del params
        return GradNormState(jnp.zeros((), jnp.float32))

    def update(updates, state, params=None):
        del state, params
        return updates, GradNormState(optax.global_norm(updates).astype(jnp.float32))

    return optax.GradientTransformation(init, update)


def with_grad_norm(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` preceded by `record_grad_norm`: state is ``(GradNormState, optimizer's state)``."""
    return optax.chain(record_grad_norm(), optimizer)


def grad_norm_of(opt_state) -> float:
    return float(opt_state[0].grad_norm)
