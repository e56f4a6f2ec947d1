"""The inference decode step (`soda_jax.inference.decoder.forward` on one new token per sequence with
a dense KV cache), compiled ahead of time for a TPU slice on this host: per-chip memory of the
parameters, the KV cache and the step's temporaries.

It is the step `soda_jax.inference.generate` runs in its decode loop, on the training mesh of
``config.parallelism`` (parameters sharded as in training, the batch and its caches over the data
axes), with f32 parameters and caches as the loader and ``empty_cache`` make them. The cache holds
``columns`` positions (prompt + new tokens) for each of ``batch`` sequences.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
from haliax import Axis
from levanter.layers.attention import AttentionBackend

from soda_jax.aot.report import bytes_per_chip, memory_report
from soda_jax.aot.train_step import (
    TPU_BACKEND,
    _with_shardings,
    lower_like_named_jit,
    rounded_for_mesh,
    slice_mesh,
    topology_devices,
)
from soda_jax.execution.tpu_slices import GIB, tpu_slice
from soda_jax.inference.decoder import BATCH, KEY_POSITION, POSITION, empty_cache, forward
from soda_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)


class _DecodeState(eqx.Module):
    """The step's first argument: the caches (donated: the step writes the new token's keys and
    values into them) and the model."""

    caches: Any
    model: Any

    @property
    def opt_state(self) -> None:
        """None: `memory_report` counts no optimizer state for inference."""
        return None


def decode_report(
    config: TrainConfig, tpu: str, *, vocab_size: int, batch: int, columns: int, model_name: str | None = None
) -> dict[str, Any]:
    """Compile one decode step of ``config.model`` for ``tpu`` with ``batch`` sequences of ``columns``
    cached positions; per-chip memory (parameters, KV cache, temporaries) against the chip's HBM."""
    from soda_jax.training.train import step_parts

    slice_ = tpu_slice(tpu)
    started = time.time()
    devices = topology_devices(slice_)
    mesh = slice_mesh(config, devices, 1)
    model_config, _, _ = step_parts(config, backend=TPU_BACKEND)
    model_config = dataclasses.replace(
        model_config, attn_backend=AttentionBackend.VANILLA, gradient_checkpointing=False
    )
    mesh_config = config.parallelism.mesh_config()
    param_mapping, compute_mapping = (
        dict(mesh_config.resolved_param_mapping),
        dict(mesh_config.resolved_compute_mapping),
    )
    Batch, Columns = Axis(BATCH, batch), Axis(KEY_POSITION, columns)
    One = Axis(POSITION, 1)

    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), hax.axis_mapping(param_mapping):
        Vocab = rounded_for_mesh(Axis("vocab", vocab_size), param_mapping, mesh)
        model = _with_shardings(
            eqx.filter_eval_shape(lambda k: model_config.build(Vocab, key=k), jax.random.PRNGKey(0)),
            mesh,
            param_mapping,
        )
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), hax.axis_mapping(compute_mapping):
        caches = _with_shardings(
            eqx.filter_eval_shape(lambda: empty_cache(model, batch, columns)), mesh, compute_mapping
        )

        def named(shape, dtype, axes):
            return hax.NamedArray(jax.ShapeDtypeStruct(shape, dtype), axes)

        inputs = _with_shardings(
            (
                named((batch, 1), jnp.int32, (Batch, One)),
                named((batch, 1), jnp.int32, (Batch, One)),
                named((batch, columns), jnp.bool_, (Batch, Columns)),
            ),
            mesh,
            compute_mapping,
        )
        start = jax.ShapeDtypeStruct(
            (), jnp.int32, sharding=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        )

        def step(state: _DecodeState, tokens, positions, key_valid, start):
            logits, updated = forward(state.model, tokens, positions, state.caches, start, key_valid)
            return logits, updated

        lowered = lower_like_named_jit(
            step, _DecodeState(caches, model), *inputs, start, axis_resources=compute_mapping, mesh=mesh
        )
    compiled = lowered.compile()
    seconds = time.time() - started
    memory = memory_report(compiled, _DecodeState(caches, model), slice_).as_dict()
    kv_cache = bytes_per_chip(caches)
    memory["kv_cache_gib"] = round(kv_cache / GIB, 3)
    logger.info("compiled %s's decode step for %s in %.1f s", config.model, slice_.name, seconds)
    return {
        "model_name": model_name or str(config.model),
        "tpu": slice_.name,
        "chips": slice_.num_chips,
        "mesh": dict(mesh.shape),
        "batch_size": batch,
        "cache_columns": columns,
        "kv_cache_bytes_per_chip": kv_cache,
        "cache_dtype": "float32",
        "parameter_dtype": "float32",
        "compile_seconds": round(seconds, 1),
        "memory": memory,
    }


def format_decode_report(report: dict[str, Any]) -> str:
    memory = report["memory"]
    return "\n".join(
        [
            f"{report['model_name']} decode step: batch {report['batch_size']} x {report['cache_columns']} "
            f"cached positions on {report['tpu']} ({report['chips']} chips, mesh {report['mesh']}), "
            f"compiled in {report['compile_seconds']} s",
            f"  per chip: parameters {memory['parameters_gib']:.2f} GiB + KV cache {memory['kv_cache_gib']:.2f} GiB "
            f"({report['cache_dtype']}) + temporaries {memory['temporaries_gib']:.2f} + code {memory['code_gib']:.3f} "
            f"= {memory['peak_gib']:.2f} GiB of {memory['budget_gib']:.1f} GiB budget: "
            + ("FITS" if memory["fits"] else "DOES NOT FIT"),
        ]
    )
