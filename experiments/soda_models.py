"""SODA's models and recipes, named once: shapes (from `soda_jax.models`), TPU slices, training recipes.

Recipes read like the paper: `SODA_FINAL_RECIPE` is seq 4096 x batch 512 for 500B tokens with SODA's
Cautious optimizer and LR rule; `DEMO_RECIPE` trains the CPU demo model in about a minute.
"""

from __future__ import annotations

from soda_jax.models import BENCH_20M, DEMO_6M, SODA_1_7B, SODA_4B, SODA_135M, SODA_600M, ModelShape
from soda_jax.training import OptimizerRecipe, ParallelismConfig, TrainRecipe

SODA_TPU_SLICES: dict[ModelShape, str] = {
    SODA_135M: "v5p-32",
    SODA_600M: "v5p-64",
    SODA_1_7B: "v5p-128",
    SODA_4B: "v5p-256",
}
"""The TPU slice SODA trained each model on."""

SODA_PARALLELISM: dict[ModelShape, ParallelismConfig] = {shape: ParallelismConfig() for shape in SODA_TPU_SLICES}
"""Mesh per model: FSDP over all chips of its slice (``data=-1``), with remat (`TrainConfig`'s
default). Chosen from compiled memory (`soda_jax.aot.layouts.best_layout`, benchmarks/compile_final_runs.py):
at seq 4096 x batch 512 no model fits its slice without remat (157-305 GiB per chip), and with remat
FSDP alone leaves more HBM free than FSDP + 2-way tensor parallelism for every model (peak per chip
13.2 vs 17.7 GiB at 135M, 12.9 vs 24.9 at 600M, 11.8 vs 19.0 at 1.7B, 10.2 vs 13.3 at 4B; README)."""


SODA_FINAL_RECIPE = TrainRecipe()
"""SODA's final run: seq 4096, batch 512, 500B tokens, Cautious, LR from batch and width (`soda_learning_rate`)."""

SODA_MODELS: dict[str, ModelShape] = {"135m": SODA_135M, "600m": SODA_600M, "1.7b": SODA_1_7B, "4b": SODA_4B}
"""The catalogue by the size names SODA uses."""


DEMO_SEQ_LEN = 256
DEMO_BATCH_SIZE = 8
DEMO_STEPS = 120
DEMO_RECIPE = TrainRecipe(
    seq_len=DEMO_SEQ_LEN,
    batch_size=DEMO_BATCH_SIZE,
    num_train_steps=DEMO_STEPS,
    optimizer=OptimizerRecipe(learning_rate=3e-3, beta1=0.9, beta2=0.98, epsilon=1e-8),
)
"""CPU demo: ~0.25M tokens on `DEMO_6M` in about a minute on 2 cores (docs/training.md); the loss
falls visibly. Same schedule shape as SODA (warmup 10%, linear decay over the last 20%)."""

BENCH_MODEL = BENCH_20M
"""The model benchmarks/bench_train.py times (~22M parameters with a 16k vocabulary)."""

__all__ = [
    "BENCH_MODEL", "DEMO_6M", "DEMO_RECIPE", "SODA_135M", "SODA_1_7B", "SODA_4B", "SODA_600M",
    "SODA_FINAL_RECIPE", "SODA_MODELS", "SODA_PARALLELISM", "SODA_TPU_SLICES",
]  # fmt: skip
