"""Pin tests: each fails when a levanter behaviour that training/levanter_compat.py works around changes.

A failure here after a levanter pin bump names the workaround to revisit (or drop).
"""

from __future__ import annotations

import functools
import inspect
import json

import jax.numpy as jnp
import levanter.trainer
import pytest
from levanter.checkpoint import discover_latest_checkpoint
from levanter.data.text import LmDataConfig

from soda_jax.training.grad_norm import with_grad_norm
from soda_jax.training.levanter_compat import (
    COMMIT_MARKER,
    NONFINITE_LOSS_MESSAGES,
    checkpoint_dir,
    is_nonfinite_loss_error,
    learning_rate_of,
)
from soda_jax.training.recipe import OptimizerRecipe


def test_levanter_signals_a_nonfinite_loss_by_message_only():
    source = inspect.getsource(levanter.trainer)
    for message in NONFINITE_LOSS_MESSAGES:
        assert f'RuntimeError("{message}")' in source, f"levanter no longer raises RuntimeError({message!r})"
    assert is_nonfinite_loss_error(RuntimeError("Loss is NaN")) and not is_nonfinite_loss_error(RuntimeError("Loss"))


def test_levanter_dispatches_a_hook_free_step_through_the_property_we_override():
    trainer = levanter.trainer.Trainer
    assert isinstance(inspect.getattr_static(trainer, "_jit_train_step_fn_no_hook"), functools.cached_property)
    assert "self._jit_train_step_fn_no_hook" in inspect.getsource(trainer.train_step)


def commit(root, step: int, marker: str | None = None) -> None:
    directory = root / f"step-{step}"
    directory.mkdir(parents=True)
    body = json.dumps({"step": step + 1, "timestamp": "2026-01-01T00:00:00", "is_temporary": False})
    (directory / COMMIT_MARKER).write_text(body if marker is None else marker)


def test_levanter_finds_checkpoints_by_our_names_and_passes_over_a_torn_marker(tmp_path):
    root = tmp_path / "checkpoints"
    commit(root, 2)
    commit(root, 4)
    assert discover_latest_checkpoint(str(root)) == checkpoint_dir(str(root), 4)
    commit(root, 6, marker='{"st')  # a run killed while committing step 6
    (root / "step-8").mkdir()  # ... or before it wrote a marker at all
    # levanter resumes from step 4 and would later write into step-6/ and step-8/ again:
    # `checkpoints.discard_uncommitted_checkpoints` removes them first
    assert discover_latest_checkpoint(str(root)) == checkpoint_dir(str(root), 4)


def test_levanter_optimizer_state_carries_the_learning_rate():
    optimizer = OptimizerRecipe(learning_rate=0.01, warmup=0.0).levanter_config(8, 64).build(10)
    state = with_grad_norm(optimizer).init({"w": jnp.zeros(3)})
    assert learning_rate_of(state) == pytest.approx(0.01)


def test_levanter_data_config_builds_datasets_through_the_hook_the_mixture_overrides():
    assert list(inspect.signature(LmDataConfig.build_token_datasets).parameters) == ["self", "caches", "Pos", "split"]
