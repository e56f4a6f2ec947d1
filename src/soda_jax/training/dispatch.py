"""A training step dispatched through its array leaves: one C++ jit call per step.

haliax's ``named_jit`` re-partitions its arguments on every call (equinox filtering, sharding
inference, a cached ``eval_shape`` lookup): tens of milliseconds of Python per call on levanter's
trainer state, as much as a small model's step on a CPU (docs/training.md has the figures,
benchmarks/bench_dispatch.py measures them). `FlatJit` wraps such a
function once more in a plain ``jax.jit`` over the flat list of array leaves, so a call is a tree
flatten, one C++ dispatch and a tree unflatten. The wrapped function still runs (inside the trace)
with every sharding annotation it had; non-array leaves (static fields, axis names) are constants
of the trace and part of the cache key, with the leaves' shapes and dtypes, so a change of any of
them traces again instead of reusing a stale program.

`FastDispatchTrainer` is levanter's `Trainer` with its step dispatched this way (levanter_compat.py
lists the private attribute it overrides).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import cached_property
from typing import Any

import jax
from jax.tree_util import PyTreeDef, tree_flatten, tree_unflatten
from levanter.trainer import Trainer

_ARRAY = object()
"""Placeholder, in a list of leaves, for an array leaf (an input of the jitted program)."""


def _split(leaves: Sequence[Any]) -> tuple[list[jax.Array], tuple[Any, ...]]:
    """``leaves`` -> (the array leaves, the leaves with each array replaced by `_ARRAY`)."""
    arrays = [x for x in leaves if isinstance(x, jax.Array)]
    return arrays, tuple(_ARRAY if isinstance(x, jax.Array) else x for x in leaves)


def _merge(template: Sequence[Any], arrays: Sequence[jax.Array]) -> list[Any]:
    it = iter(arrays)
    return [next(it) if x is _ARRAY else x for x in template]


class FlatJit:
    """``fn(donated, *rest)`` jitted over the array leaves of its arguments; ``donated``'s arrays are
    donated (the training state: its buffers become the next state's)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self._programs: dict[Hashable, tuple[Callable, dict]] = {}

    def __call__(self, donated: Any, *rest: Any) -> Any:
        donated_arrays, donated_template, donated_def = self._flatten(donated)
        rest_arrays, rest_template, rest_def = self._flatten(rest)
        key: Hashable = (
            donated_def,
            rest_def,
            donated_template,
            rest_template,
            tuple(x.aval for x in donated_arrays),
            tuple(x.aval for x in rest_arrays),
        )
        try:
            entry = self._programs.get(key)  # hashes the key once a step
        except TypeError:  # an unhashable static leaf: no safe cache key, so the plain call
            return self.fn(donated, *rest)
        if entry is None:
            entry = self._programs[key] = self._trace(donated_def, donated_template, rest_def, rest_template)
        program, output = entry
        arrays = program(donated_arrays, rest_arrays)  # first: its first call traces, filling ``output``
        return tree_unflatten(output["def"], _merge(output["template"], arrays))

    @staticmethod
    def _flatten(tree: Any) -> tuple[list[jax.Array], tuple[Any, ...], PyTreeDef]:
        leaves, treedef = tree_flatten(tree)
        arrays, template = _split(leaves)
        return arrays, template, treedef

    def _trace(self, donated_def, donated_template, rest_def, rest_template) -> tuple[Callable, dict]:
        output: dict[str, Any] = {}  # filled at trace time: the output's structure and static leaves

        def flat(donated_arrays: list[jax.Array], rest_arrays: list[jax.Array]) -> list[jax.Array]:
            donated = tree_unflatten(donated_def, _merge(donated_template, donated_arrays))
            rest = tree_unflatten(rest_def, _merge(rest_template, rest_arrays))
            leaves, output["def"] = tree_flatten(self.fn(donated, *rest))
            arrays, output["template"] = _split(leaves)
            return arrays

        return jax.jit(flat, donate_argnums=0), output


class FastDispatchTrainer(Trainer):
    """levanter's `Trainer` whose hook-free training step (the one every step takes when no jit hook
    is registered, as in `soda_jax.training.train`) is dispatched by `FlatJit`."""

    @cached_property
    def _jit_train_step_fn_no_hook(self):
        return FlatJit(Trainer._jit_train_step_fn_no_hook.func(self))
