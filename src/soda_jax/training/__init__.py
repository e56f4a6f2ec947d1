"""Training on levanter: recipe, mesh mapping, the `train` step, metrics, HF export."""

from soda_jax.training.config import CheckpointPolicy, TrainConfig
from soda_jax.training.nonfinite import NonFiniteLossError
from soda_jax.training.parallelism import ParallelismConfig
from soda_jax.training.recipe import (
    OptimizerRecipe,
    TrainRecipe,
    recipe_for_tokens,
    soda_learning_rate,
    steps_for_tokens,
)

__all__ = [
    "CheckpointPolicy", "NonFiniteLossError", "OptimizerRecipe", "ParallelismConfig", "TrainConfig", "TrainRecipe",
    "recipe_for_tokens", "soda_learning_rate", "steps_for_tokens",
]  # fmt: skip
