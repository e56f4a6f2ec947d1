"""Training on levanter: recipe, mesh mapping, the `train` step, metrics, HF export.

The recipe's names are imported with the package; the others (`TrainConfig`, `CheckpointPolicy`,
`ParallelismConfig`, `NonFiniteLossError`) on first use, since their modules import levanter and JAX,
which the recipe alone (the isoFLOP grid, `soda_jax.scaling.sweep`) does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from soda_jax.training.recipe import (
    OptimizerRecipe,
    TrainRecipe,
    recipe_for_tokens,
    soda_learning_rate,
    steps_for_tokens,
)

if TYPE_CHECKING:
    from soda_jax.training.config import CheckpointPolicy, TrainConfig
    from soda_jax.training.nonfinite import NonFiniteLossError
    from soda_jax.training.parallelism import ParallelismConfig

_LAZY = {
    "CheckpointPolicy": "config",
    "TrainConfig": "config",
    "NonFiniteLossError": "nonfinite",
    "ParallelismConfig": "parallelism",
}
"""The names imported on first use, and their module in this package."""

__all__ = [
    "CheckpointPolicy", "NonFiniteLossError", "OptimizerRecipe", "ParallelismConfig", "TrainConfig", "TrainRecipe",
    "recipe_for_tokens", "soda_learning_rate", "steps_for_tokens",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
