"""Starting a training run from a trained model (fine-tuning): ``TrainConfig.init_from``.

The source is either a soda-jax training step's output (its latest committed checkpoint under
``checkpoints/``; only the model is read) or a transformers directory of a Qwen3 model with
SODA's vocabulary layout (a downloaded SODA base model, or a run's own ``hf/`` export), read with
levanter's `HFCheckpointConverter`. Optimizer state and the step count are fresh: the run starts
at step 0 with the source's weights. The source's vocabulary and shape must be the run's: a
mismatch is an error naming both.
"""

from __future__ import annotations

import dataclasses
import logging

import equinox as eqx
import jax
import jax.random as jrandom
from haliax import Axis
from haliax.nn.scan import BlockSeq, Stacked
from haliax.partitioning import named_jit
from levanter.checkpoint import load_checkpoint
from levanter.compat.hf_checkpoints import HFCheckpointConverter
from levanter.models.qwen import Qwen3Config
from transformers.models.qwen3 import Qwen3Config as HfQwen3Config

from soda_jax import fileio
from soda_jax.contracts import CHECKPOINTS_DIR, HF_CONFIG_FILE
from soda_jax.training.checkpoints import latest_checkpoint
from soda_jax.training.manifest import check_layer_loop, layer_loop_name, read_manifest

logger = logging.getLogger(__name__)

HF_KIND, CHECKPOINT_KIND = "hf", "checkpoint"
"""`InitSource.kind`: a transformers directory, or a soda-jax training run."""
SHAPE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
)
"""transformers config fields that must match the run's model shape."""


@dataclasses.dataclass(frozen=True)
class InitSource:
    """What ``init_from`` points at, resolved."""

    path: str
    kind: str
    """`HF_KIND` (a transformers directory) or `CHECKPOINT_KIND` (a training step's output)."""
    vocab_size: int | None
    """Rows of the source's embedding matrix (None when the source does not record it)."""
    layer_loop: str | None = None
    """``scan`` or ``unrolled``: how a soda-jax checkpoint stores its layers (its training manifest's)."""


def resolve_source(path: str) -> InitSource:
    """Classify ``path`` and read its vocabulary size (a run's from its training manifest); an error
    when it is neither kind."""
    if fileio.exists(fileio.join(path, HF_CONFIG_FILE)):
        return InitSource(path, HF_KIND, int(fileio.read_json(fileio.join(path, HF_CONFIG_FILE))["vocab_size"]))
    if fileio.exists(fileio.join(path, CHECKPOINTS_DIR)):
        manifest = read_manifest(path)
        if manifest is None:
            return InitSource(path, CHECKPOINT_KIND, None)
        return InitSource(path, CHECKPOINT_KIND, manifest.padded_vocab_size, manifest.layer_loop)
    raise FileNotFoundError(
        f"init_from {path}: neither a transformers directory ({HF_CONFIG_FILE}) nor a training run ({CHECKPOINTS_DIR}/)"
    )


def initial_vocab_axis(source: InitSource, data_vocab_size: int, padded: Axis) -> Axis:
    """The run's vocab axis when starting from ``source``: the source's embedding rows, which must
    be the data caches' vocabulary (or the run's padding of it)."""
    if source.vocab_size is None:
        return padded
    if source.vocab_size not in (data_vocab_size, padded.size):
        raise ValueError(
            f"init_from {source.path}: the model has a vocabulary of {source.vocab_size} ids but the data caches' "
            f"vocabulary has {data_vocab_size} ids; fine-tune on caches built with the base model's tokenizer and codec"
        )
    return padded.resize(source.vocab_size)


def check_hf_shape(source: InitSource, model_config: Qwen3Config, Vocab: Axis) -> None:
    """The transformers config's shape fields must equal the run's model shape."""
    theirs = fileio.read_json(fileio.join(source.path, HF_CONFIG_FILE))
    ours = model_config.to_hf_config(Vocab.size).to_dict()
    different = {f: (theirs.get(f), ours.get(f)) for f in SHAPE_FIELDS if theirs.get(f) != ours.get(f)}
    if different:
        raise ValueError(f"init_from {source.path}: model shape differs from the run's (theirs, ours): {different}")


def unstack_layers(model, *, like):
    """``model`` (stacked layers) in the structure of ``like`` (the unrolled model's shape): the
    stacks split per layer, and the static config (which records the layer loop) taken from ``like``."""

    def is_stacked(x) -> bool:
        return isinstance(x, Stacked)

    unrolled = jax.tree.map(
        lambda x: BlockSeq(list(x.unstacked()), x.Block, x.gradient_checkpointing) if is_stacked(x) else x,
        model,
        is_leaf=is_stacked,
    )
    leaves, template = jax.tree.leaves(unrolled), jax.tree.leaves(like)
    if [leaf.shape for leaf in leaves] != [leaf.shape for leaf in template]:
        raise ValueError("unstacked parameters do not match the unrolled model's shapes")
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def load_initial_model(source: InitSource, model_config: Qwen3Config, Vocab: Axis, trainer, *, tokenizer: str | None):
    """The source's weights as a levanter model sharded like the run's parameters, in param dtype."""
    mapping = trainer.parameter_axis_mapping
    if source.kind == HF_KIND:
        check_hf_shape(source, model_config, Vocab)
        converter = HFCheckpointConverter(
            Qwen3Config, reference_checkpoint=source.path, HfConfigClass=HfQwen3Config, tokenizer=tokenizer
        )
        # haliax's BlockSeq (unrolled layers) cannot read a state dict (it calls a ``from_state_dict``
        # method its blocks lack): read into stacked layers, then unstack for an unrolled run.
        stacked_config = dataclasses.replace(model_config, scan_layers=True)
        model = converter.load_pretrained(
            model_config.model_type,
            ref=source.path,
            config=stacked_config,
            axis_mapping=mapping,
            dtype=trainer.mp.param_dtype,
        )
        if not model_config.scan_layers:
            model = unstack_layers(model, like=eqx.filter_eval_shape(model_config.build, Vocab, key=jrandom.PRNGKey(0)))
    else:
        check_layer_loop(source.layer_loop, layer_loop_name(model_config.scan_layers), where=f"init_from {source.path}")
        checkpoint = latest_checkpoint(fileio.join(source.path, CHECKPOINTS_DIR))
        if checkpoint is None:
            raise FileNotFoundError(f"init_from {source.path}: no committed checkpoint under {CHECKPOINTS_DIR}/")
        template = eqx.filter_eval_shape(model_config.build, Vocab, key=jrandom.PRNGKey(0))
        model = load_checkpoint(template, checkpoint, subpath="model", axis_mapping=mapping, mesh=trainer.device_mesh)
        logger.info("init_from: model weights of %s", checkpoint)
    return named_jit(trainer.mp.cast_to_param, mapping)(model)
