"""`FlatJit`: the same results as the function it wraps, one trace per argument structure, no stale
program when a static leaf or a shape changes, donation of the first argument."""

from __future__ import annotations

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from soda_jax.training.dispatch import FlatJit


class State(eqx.Module):
    weight: hax.NamedArray
    step: jax.Array
    scale: float = eqx.field(static=True)


def make_step(counter: list[int]):
    def step(state: State, batch: hax.NamedArray, options: dict) -> tuple[State, jax.Array]:
        counter.append(1)  # runs once per trace
        loss = (state.weight * batch).sum().scalar() * state.scale * options["sign"]
        return State(state.weight + batch.sum("batch"), state.step + 1, state.scale), loss

    return step


Batch, Embed = hax.Axis("batch", 4), hax.Axis("embed", 3)


def fresh_state(scale: float = 2.0) -> State:
    return State(hax.ones(Embed), jnp.array(0), scale)


def test_matches_the_wrapped_function_and_traces_once():
    traces: list[int] = []
    fast = FlatJit(make_step(traces))
    reference = make_step([])  # the plain (eager) function
    batch = hax.named(jnp.arange(12.0).reshape(4, 3), (Batch, Embed))
    state, expected_state = fresh_state(), fresh_state()
    for _ in range(3):
        state, loss = fast(state, batch, {"sign": 1})
        expected_state, expected = reference(expected_state, batch, {"sign": 1})
        np.testing.assert_allclose(loss, expected)
        np.testing.assert_allclose(state.weight.array, expected_state.weight.array)
    assert state.weight.axes == (Embed,) and int(state.step) == 3 and state.scale == 2.0
    assert len(traces) == 1


def test_a_changed_static_leaf_or_shape_traces_again():
    traces: list[int] = []
    fast = FlatJit(make_step(traces))
    batch = hax.named(jnp.ones((4, 3)), (Batch, Embed))
    _, plus = fast(fresh_state(), batch, {"sign": 1})
    _, minus = fast(fresh_state(), batch, {"sign": -1})  # a Python leaf: a constant of the trace
    assert float(minus) == -float(plus) and len(traces) == 2
    _, doubled = fast(fresh_state(scale=4.0), batch, {"sign": 1})  # a static field of the module
    assert float(doubled) == 2 * float(plus) and len(traces) == 3
    wider = hax.named(jnp.ones((8, 3)), (Batch.resize(8), Embed))
    state, loss = fast(fresh_state(), wider, {"sign": 1})
    assert float(loss) == 2 * float(plus) and len(traces) == 4
    np.testing.assert_allclose(state.weight.array, 9.0)


def test_the_first_argument_is_donated_and_unhashable_leaves_fall_back():
    traces: list[int] = []
    fast = FlatJit(make_step(traces))
    batch = hax.named(jnp.ones((4, 3)), (Batch, Embed))
    state = fresh_state()
    new_state, _ = fast(state, batch, {"sign": 1})
    assert state.weight.array.is_deleted() and state.step.is_deleted()
    assert not batch.array.is_deleted()
    _, loss = fast(new_state, batch, {"sign": np.array(1.0)})  # a numpy leaf is unhashable: the plain call
    assert float(loss) == pytest.approx(float((new_state.weight * batch).sum().scalar()) * 2.0)
