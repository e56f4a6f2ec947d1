"""The one config of the training step (`soda_jax.training.train`)."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

from soda_jax.data.mixture import MixtureSpec
from soda_jax.models.shapes import ModelShape
from soda_jax.training.loss import CROSS_ENTROPY_CHOICES, CrossEntropy
from soda_jax.training.parallelism import ParallelismConfig
from soda_jax.training.recipe import TrainRecipe

Precision = Literal["auto", "f32", "bf16"]
"""``auto``: bf16 compute on TPU/GPU, f32 on CPU (bf16 matmuls measured slower on CPU: docs/training.md)."""
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
LayerLoop = Literal["auto", "scan", "unrolled"]
"""``auto``: ``unrolled`` on CPU, ``scan`` on TPU/GPU (docs/training.md)."""
LAYER_LOOPS: tuple[LayerLoop, ...] = get_args(LayerLoop)


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When levanter's checkpointer (tensorstore) saves, and what it keeps."""

    every_steps: int | None = 10_000
    """Permanent checkpoints every this many steps (None: only the final one)."""
    every_minutes: float | None = 15.0
    """Temporary checkpoints at least this often (wall clock; None: none)."""
    keep_last_temporary: int = 2
    """Temporary checkpoints kept; 2 so that dropping one that led to a NaN leaves a good one."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Train one decoder LM; everything is written under ``output_path`` (docs/data-contracts.md §3)."""

    data: MixtureSpec
    """The token caches and their mix (`soda_jax.data.mixture.soda_mixture`); levanter's data config
    is built from it inside the step, so only soda-jax's own spec is versioned."""
    model: ModelShape
    """Architecture; the vocabulary comes from the data, the sequence length from ``recipe``."""
    output_path: str
    """Run directory: checkpoints/, hf/, metrics.jsonl, summary.json. Re-running resumes here."""
    recipe: TrainRecipe = TrainRecipe()
    """Sequence length, batch, steps, optimizer, z-loss, seed."""
    parallelism: ParallelismConfig = ParallelismConfig()
    """Mesh shape and axis mapping."""
    checkpoints: CheckpointPolicy = CheckpointPolicy()
    """Checkpoint intervals and retention."""
    precision: Precision = "auto"
    """Compute dtype: one of `PRECISIONS`. Parameters and optimizer state are always f32."""
    layer_loop: LayerLoop = "auto"
    """How the layers run, one of `LAYER_LOOPS`: ``scan`` compiles one layer and loops over stacked
    weights (fast compiles at SODA's depths); ``unrolled`` compiles each layer (faster steps on CPU,
    measured). The two store parameters differently: resume a run with the choice it started with."""
    cross_entropy: CrossEntropy = "fused"
    """``fused`` (blockwise, no [tokens, vocab] logits) or ``full`` logits: `soda_jax.training.loss`."""
    gradient_checkpointing: bool = True
    """Recompute layer activations in the backward pass (memory for compute; off for tiny CPU models)."""
    steps_per_eval: int = 1000
    """Validation loss every this many steps (and always at the end)."""
    max_eval_batches: int | None = 16
    """Validation batches per component per evaluation (None: the whole validation split)."""
    export_hf: bool = True
    """Write the final model to ``{output_path}/hf`` for transformers (safetensors + config)."""
    wandb_project: str | None = None
    """Also log to this W&B project (the JSON-lines log is always written)."""
    tensorboard: bool = False
    """Also log to TensorBoard under ``{output_path}/tensorboard`` (needs tensorboardX)."""
    peak_flops_per_device: float | None = None
    """Peak FLOP/s of one device for MFU; None asks levanter's device table (TPU/GPU; none on CPU)."""
    compilation_cache_dir: str | None = None
    """JAX persistent compilation cache (shared across runs and restarts)."""
    init_from: str | None = None
    """Fine-tuning: start from this model's weights (a training step's output or a transformers
    Qwen3 directory), fresh optimizer state, step 0 (`soda_jax.training.init_from`)."""
    resume_from: str | None = None
    """Branching: start from this finished training step's output (its final checkpoint: weights,
    optimizer state and step, and its metrics) when this run has no checkpoint of its own. Its
    recipe must be this run's apart from the length, with the same learning rate up to the branch
    point (`soda_jax.training.branching`)."""
    stop_at_step: int | None = None
    """Stop (and save) after this many steps, though the schedule is ``recipe``'s: a stable segment
    that longer runs branch from (None: train all ``recipe.num_train_steps``)."""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.layer_loop not in LAYER_LOOPS:
            raise ValueError(f"layer_loop must be one of {LAYER_LOOPS}, got {self.layer_loop!r}")
        if self.cross_entropy not in CROSS_ENTROPY_CHOICES:
            raise ValueError(f"cross_entropy must be one of {CROSS_ENTROPY_CHOICES}, got {self.cross_entropy!r}")
        if self.resume_from is not None and self.init_from is not None:
            raise ValueError("resume_from (continue a run) and init_from (fine-tune from weights) exclude each other")
        if self.steps_per_eval <= 0:
            raise ValueError(f"steps_per_eval must be positive, got {self.steps_per_eval}")
