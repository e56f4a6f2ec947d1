"""levanter model and optimizer configs for sweep runs (SODA's sweep recipe)."""

from __future__ import annotations

import dataclasses

from levanter.layers.rotary import Llama3RotaryEmbeddingsConfig
from levanter.models.qwen import Qwen3Config
from levanter.optim.cautious import CautiousConfig

from soda_jax.scaling.sweep import ModelShape, SweepRun


@dataclasses.dataclass(frozen=True)
class SweepOptimizerRecipe:
    """SODA's sweep optimizer apart from lr and beta2 (which come from each run): Cautious, no z-loss."""

    weight_decay: float = 0.1
    """Decoupled ("AdamC") weight decay."""
    warmup: float = 0.1
    """Fraction of steps of linear warmup."""
    decay: float = 0.2
    """Fraction of steps of linear decay at the end."""
    min_lr_ratio: float = 0.0
    """Final lr as a fraction of the peak."""
    beta1: float = 0.95
    """Adam beta1."""
    epsilon: float = 1e-15
    """Adam epsilon."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""


def qwen3_config(shape: ModelShape, seq_len: int) -> Qwen3Config:
    """The levanter Qwen3 config of a shape: untied embeddings, Llama-3 rotary, explicit head_dim."""
    return Qwen3Config(
        max_seq_len=seq_len,
        hidden_dim=shape.hidden,
        intermediate_dim=shape.intermediate,
        num_layers=shape.layers,
        num_heads=shape.heads,
        num_kv_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=False,
        rope=Llama3RotaryEmbeddingsConfig(),
    )


def cautious_config(run: SweepRun, recipe: SweepOptimizerRecipe = SweepOptimizerRecipe()) -> CautiousConfig:
    """The levanter optimizer config of a sweep run (its lr and beta2, the recipe's other settings)."""
    return CautiousConfig(
        learning_rate=run.learning_rate,
        beta2=run.beta2,
        beta1=recipe.beta1,
        epsilon=recipe.epsilon,
        weight_decay=recipe.weight_decay,
        adamc_weight_decay=True,
        max_grad_norm=recipe.max_grad_norm,
        warmup=recipe.warmup,
        decay=recipe.decay,
        min_lr_ratio=recipe.min_lr_ratio,
        lr_schedule="linear",
    )
