"""The training step `soda_jax.training.train` runs, lowered and compiled ahead of time for a TPU slice.

Nothing here touches a TPU: `jax.experimental.topologies` describes the slice's chips (libtpu's
compiler runs on the CPU host), the trainer state and the batch are abstract
(`jax.ShapeDtypeStruct` with the shardings levanter would give them), and XLA's TPU compiler
reports per-chip memory and cost. The step is levanter's own ``Trainer._train_step`` built from
the same `TrainConfig` pieces `train` uses (`step_parts`, `trainer_config`): model, optimizer
state, mixed precision, mesh and axis mappings, remat and layer loop.

Two things make tracing work on abstract devices (measured, docs/tpu.md): the step is traced
under ``jax.sharding.use_abstract_mesh`` (levanter evaluates some values eagerly at trace time,
which fails on devices that cannot run anything), and parameter and compute axis mappings stay
separate (FSDP's ``embed -> data`` only for parameters).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import equinox as eqx
import haliax as hax
import haliax.tree_util as htu
import jax
import jax.numpy as jnp
from haliax import Axis
from haliax.partitioning import infer_resource_partitions
from levanter.layers.attention import AttentionBackend

from soda_jax.execution.tpu_slices import TpuSlice
from soda_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)

TPU_BACKEND = "tpu"
EOS_ID = 0
"""Any id: the batch is abstract; an EOS id makes the mask carry segment ids, as packed training data does."""


@dataclasses.dataclass
class CompiledStep:
    """A compiled step and what it was compiled from."""

    compiled: Any
    """`jax.stages.Compiled`: ``memory_analysis()``, ``cost_analysis()``, ``as_text()``; None when the
    compiler refused the program for lack of HBM (`out_of_memory`)."""
    state_shape: Any
    """The abstract `TrainerState` (model, optimizer state, step, key) with per-leaf shardings."""
    mesh: jax.sharding.Mesh
    """The mesh over the slice's (abstract) chips."""
    padded_vocab_size: int
    """The vocabulary rounded for partitioning, as the run would round it."""
    scanned_layers: bool
    """Whether the layers run as a loop (``lax.scan``) over stacked weights."""
    attention: Any
    """The attention kernel compiled (levanter's choice on a TPU host: splash)."""
    seconds: float
    """Wall time of tracing, lowering and compiling."""
    out_of_memory: str | None = None
    """XLA's message when it refused to compile because the temporaries alone exceed a chip's HBM."""


OUT_OF_HBM = "Ran out of memory on HBM"
"""How libtpu's compiler starts its RESOURCE_EXHAUSTED message for a program that cannot fit."""


def topology_devices(tpu: TpuSlice, num_slices: int = 1) -> list:
    """The abstract devices of ``num_slices`` slices of ``tpu`` (needs libtpu, no TPU)."""
    # Compiling touches no chip: let several processes (tests, a pre-flight next to a compile) load
    # libtpu at once instead of contending for its single-process lock file.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        from jax.experimental import topologies

        description = topologies.get_topology_desc(
            platform=TPU_BACKEND, topology_name=tpu.jax_topology_name, num_slices=num_slices
        )
    except Exception as error:  # libtpu missing or too old: say how to get it
        raise RuntimeError(
            f"cannot describe {tpu.name} ({tpu.jax_topology_name}) without the TPU compiler: "
            f"{type(error).__name__}: {error}. Install the 'tpu-aot' extra (pip install -e '.[tpu-aot]')."
        ) from error
    return list(description.devices)


def slice_mesh(config: TrainConfig, devices: list, num_slices: int) -> jax.sharding.Mesh:
    """levanter's mesh for ``config.parallelism`` over ``devices`` (``replica_dcn`` = slices)."""
    from levanter.utils.mesh import create_mesh_from_axis_specs

    ici, dcn = config.parallelism.mesh_config().axis_shapes(len(devices), num_slices)
    return create_mesh_from_axis_specs(ici_axes=ici, dcn_axes=dcn, devices=devices)


def rounded_for_mesh(axis: Axis, mapping, mesh: jax.sharding.Mesh) -> Axis:
    """``axis`` padded to a multiple of the mesh axes ``mapping`` splits it over: what haliax's
    ``round_axis_for_partitioning`` does for a run, computed from ``mesh`` (it finds no current
    concrete mesh under an abstract one)."""
    physical = mapping.get(axis.name)
    if physical is None:
        return axis
    names = (physical,) if isinstance(physical, str) else tuple(physical)
    divisor = 1
    for name in names:
        divisor *= mesh.shape[name]
    return Axis(axis.name, -(-axis.size // divisor) * divisor)


def abstract_batch(Batch: Axis, Pos: Axis, mesh, compute_mapping) -> Any:
    """An abstract `LmExample` batch as the data loader yields it: tokens, loss weights, causal
    mask with segment ids; sharded over the batch axes of the compute mapping."""
    from levanter.data.text.examples import GrugLmExample, named_lm_example_from_grug

    def one(tokens):
        return named_lm_example_from_grug(GrugLmExample.causal(tokens.array, eos_id=EOS_ID), Pos)

    tokens = hax.NamedArray(jax.ShapeDtypeStruct((Batch.size, Pos.size), jnp.int32), (Batch, Pos))
    shape = eqx.filter_eval_shape(hax.vmap(one, Batch), tokens)
    return _with_shardings(shape, mesh, compute_mapping)


def _with_shardings(tree: Any, mesh, mapping) -> Any:
    """``tree``'s abstract leaves as `jax.ShapeDtypeStruct`s carrying haliax's sharding for ``mapping``."""
    shardings = infer_resource_partitions(tree, mapping, mesh=mesh)

    def attach(leaf, sharding):
        if isinstance(leaf, hax.NamedArray):
            return hax.NamedArray(attach(leaf.array, sharding), leaf.axes)
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
        return leaf

    return htu.tree_map(attach, tree, shardings)


def lower_like_named_jit(fn, state, *rest, axis_resources, mesh: jax.sharding.Mesh):
    """``haliax.named_jit(fn, axis_resources=..., out_axis_resources=..., donate_args=(True,))``'s
    lowering of ``fn(state, *rest)``, for abstract arguments.

    named_jit itself cannot take them: it treats every leaf that is not a concrete array as static.
    Here the `jax.ShapeDtypeStruct` leaves are the jit arguments (their shardings the input
    shardings), the outputs are sharded by ``axis_resources`` and the state is donated, as there.
    """
    is_abstract = lambda x: isinstance(x, jax.ShapeDtypeStruct)  # noqa: E731
    dynamic, static = eqx.partition((state, rest), is_abstract, is_leaf=is_abstract)
    out_static: list = []

    def run(dynamic_state, dynamic_rest):
        state, rest = eqx.combine((dynamic_state, dynamic_rest), static)
        with hax.axis_mapping(axis_resources):
            out = fn(state, *rest)
        out_arrays, out_static_part = eqx.partition(out, eqx.is_array)
        out_static[:] = [out_static_part]
        return out_arrays

    out_shape = jax.eval_shape(run, *dynamic)
    out_shardings = infer_resource_partitions(out_shape, axis_resources, mesh=mesh)
    return jax.jit(run, out_shardings=out_shardings, donate_argnums=(0,)).lower(*dynamic)


@contextlib.contextmanager
def layers_per_loop_iteration(unroll: int) -> Iterator[None]:
    """While tracing, scanned layers run ``unroll`` per loop iteration (``lax.scan(unroll=...)``).

    levanter's models call ``Stacked.fold`` without an ``unroll``; the FLOP count
    (`soda_jax.aot.check`) compiles the same loop with 1 and 2 layers per iteration, because XLA
    counts a loop body once."""
    if unroll == 1:
        yield
        return
    original = hax.nn.Stacked.fold

    def fold(self, init, *args, unroll=None, **kwargs):
        return original(self, init, *args, unroll=unroll_by, **kwargs)

    unroll_by = unroll
    hax.nn.Stacked.fold = fold
    try:
        yield
    finally:
        hax.nn.Stacked.fold = original


def compile_train_step(
    config: TrainConfig,
    vocab_size: int,
    tpu: TpuSlice,
    *,
    num_slices: int = 1,
    attention: AttentionBackend | None = None,
    layer_unroll: int = 1,
    one_chip: bool = False,
) -> CompiledStep:
    """Lower and compile ``config``'s training step for ``num_slices`` slices of ``tpu`` on this host.

    ``attention`` overrides the kernel (default: splash, what levanter picks on a TPU host);
    ``layer_unroll`` puts that many scanned layers in one loop iteration; ``one_chip`` compiles for the
    first chip of the slice alone, with no collectives (all three only for FLOP counting)."""
    from levanter.trainer import Trainer, TrainerState

    from soda_jax.training.train import step_parts, trainer_config

    started = time.time()
    devices = topology_devices(tpu, num_slices)
    mesh = slice_mesh(config, devices[:1], 1) if one_chip else slice_mesh(config, devices, num_slices)
    model_config, optimizer, loss_fn = step_parts(config, backend=TPU_BACKEND)
    if attention is not None:
        model_config = dataclasses.replace(model_config, attn_backend=attention)
    elif model_config.attn_backend is None:  # what levanter picks when it runs on a TPU host
        model_config = dataclasses.replace(model_config, attn_backend=AttentionBackend.SPLASH)
    tconfig = trainer_config(config, run_id="aot", backend=TPU_BACKEND)
    trainer = Trainer(tconfig, optimizer, loss_fn, add_default_hooks=False)
    param_mapping, compute_mapping = tconfig.parameter_axis_mapping, tconfig.compute_axis_mapping
    recipe = config.recipe

    # Only the abstract mesh is current: a concrete mesh of these devices would make haliax's
    # trace-time checks (``is_in_jit``, rotary tables) try to run on chips that are not here.
    with (
        jax.sharding.use_abstract_mesh(mesh.abstract_mesh),
        hax.axis_mapping(param_mapping),
        layers_per_loop_iteration(layer_unroll),
    ):
        Vocab = rounded_for_mesh(Axis("vocab", vocab_size), param_mapping, mesh)
        Pos = model_config.max_Pos.resize(recipe.seq_len)

        def init_state(key):
            model = model_config.build(Vocab, key=key)
            return TrainerState.init(
                optimizer,
                model,
                key=key,
                is_trainable=True,
                mp=trainer.mp,
                quantization=tconfig.quantization,
                model_averaging=tconfig.model_averaging,
            )

        state = _with_shardings(eqx.filter_eval_shape(init_state, jax.random.PRNGKey(0)), mesh, param_mapping)
        batch = abstract_batch(Axis(tconfig.batch_axis_name or "batch", recipe.batch_size), Pos, mesh, compute_mapping)
        lowered = lower_like_named_jit(
            functools.partial(trainer._train_step, _no_hooks=True),
            state,
            (batch,),
            {},
            axis_resources=param_mapping,
            mesh=mesh,
        )
    try:
        compiled, out_of_memory = lowered.compile(), None
    except jax.errors.JaxRuntimeError as error:  # too big is a result (with numbers), not a crash
        if OUT_OF_HBM not in str(error):
            raise
        compiled, out_of_memory = None, str(error)
    seconds = time.time() - started
    logger.info(
        "compiled %s's training step for %s x%d in %.1f s%s",
        config.model,
        tpu.name,
        num_slices,
        seconds,
        " (out of HBM)" if out_of_memory else "",
    )
    return CompiledStep(
        compiled, state, mesh, Vocab.size, model_config.scan_layers, model_config.attn_backend, seconds, out_of_memory
    )
