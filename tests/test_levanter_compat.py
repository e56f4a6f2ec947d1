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


def test_the_decoder_finds_the_qwen3_parts_it_calls_where_it_calls_them():
    import haliax.nn as hnn
    import jax
    from haliax import Axis

    from soda_jax.models import TEST_TINY, qwen3_config
    from soda_jax.training.levanter_compat import QWEN3_ATTENTION_PARTS, QWEN3_LAYER_PARTS

    for scanned in (True, False):
        config = qwen3_config(TEST_TINY, 64, gradient_checkpointing=False, scan_layers=scanned)
        model = jax.eval_shape(lambda key, c=config: c.build(Axis("vocab", 128), key=key), jax.random.PRNGKey(0))
        layers = model.transformer.layers
        assert isinstance(layers, hnn.Stacked) == scanned
        if scanned:
            assert isinstance(layers.Block, Axis) and layers.stacked is not None
        layer = layers.stacked if scanned else layers.unstacked()[0]  # one layer's module, stacked or not
        missing = [part for part in QWEN3_LAYER_PARTS if not hasattr(layer, part)]
        missing += [part for part in QWEN3_ATTENTION_PARTS if not hasattr(layer.self_attn, part)]
        assert not missing, f"levanter's Qwen3 no longer has {missing}: revisit soda_jax.inference.decoder"
        assert callable(model.transformer.config.attention_config) and hasattr(model.transformer, "norm")
        assert hasattr(model.embeddings, "embed") and hasattr(model.embeddings, "unembed") and hasattr(model, "lm_head")


def test_jax_keeps_its_distributed_client_where_we_read_it():
    from jax._src import distributed

    from soda_jax.training.train import jax_distributed_initialized

    assert hasattr(distributed.global_state, "client")
    assert jax_distributed_initialized() is False  # this test process never joined a jax.distributed job


def test_fray_still_names_peak_flops_by_device_kind():
    from fray.device_flops import device_flops_for_jax_device

    assert device_flops_for_jax_device("TPU v5p") or device_flops_for_jax_device("TPU v5")
    assert not device_flops_for_jax_device("definitely not a device")
