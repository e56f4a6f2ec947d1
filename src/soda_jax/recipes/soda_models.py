"""SODA's models and recipes, named once: shapes (from `soda_jax.models`), TPU slices, training recipes.

Recipes read like the paper: `SODA_FINAL_RECIPE` is seq 4096 x batch 512 for 500B tokens with SODA's
Cautious optimizer and LR rule; the design-choice studies' recipes are Marin's exp1699 files'
(batch 128, a token budget and a learning rate per study); `DEMO_RECIPE` trains the CPU demo model
in about a minute.
"""

from __future__ import annotations

import math

from soda_jax.models import BENCH_20M, DEMO_6M, SODA_1_7B, SODA_4B, SODA_135M, SODA_600M, ModelShape
from soda_jax.models.catalogue import SODA_150M
from soda_jax.training import OptimizerRecipe, ParallelismConfig, TrainRecipe
from soda_jax.training.recipe import (
    LR_AT_REFERENCE,
    LR_REFERENCE_BATCH,
    LR_REFERENCE_WIDTH,
    recipe_for_tokens,
)

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


# -- SODA's design-choice studies (docs/design-studies.md), as Marin's exp1699 files run them --------------
SODA_STUDY_MODEL = SODA_150M
"""The model of SODA's data-source and text-share studies (Marin's ``qwen3_150m``)."""
SODA_STUDY_TPU = "v5p-8"
"""Where Marin trained the 150M study runs."""
SODA_STUDY_BATCH_SIZE = 128
"""Sequences (of 4096 tokens) per step in every study run: 0.5M tokens."""
SODA_DATA_SOURCES_TOKENS = 3_000_000_000
"""exp1699_data_mix_150m.py's budget (its 10B line is commented out): 5,723 steps."""
SODA_TEXT_SHARE_TOKENS = 10_000_000_000
"""exp1699_nemotron_sweep.py's budget: 19,074 steps."""
SODA_TOKEN_TYPES_TOKENS = 30_000_000_000
"""exp1699_ablate_tokens.py's budget: 57,221 steps."""
SODA_TOKEN_TYPES_MODEL = SODA_1_7B
"""SODA ran its token-type ablation on the 1.7B (exp1699_ablate_tokens.py), not the 150M."""
SODA_TOKEN_TYPES_TPUS = ("v5p-16", "v5p-32", "v5p-64")
"""Marin put the three 1.7B arms on a v5p-16, -32 and -64; here each goes to the smallest of these its
compiled step fits (the pre-flight compile, `default_train`)."""
SODA_TOKEN_TYPES_LR_BASE = 0.002
"""exp1699_ablate_tokens.py's base LR, "reduced from 3e-3 to match the IsoFLOP experiment"."""
SODA_DATA_SOURCES_LR = (
    LR_AT_REFERENCE
    * math.sqrt(SODA_STUDY_BATCH_SIZE / LR_REFERENCE_BATCH)
    * math.sqrt(SODA_STUDY_MODEL.hidden_dim / LR_REFERENCE_WIDTH)
)
"""0.0015, as exp1699_data_mix_150m.py computes it: its width factor is sqrt(width / 1024), the
inverse of the final runs' sqrt(1024 / width) (`soda_learning_rate` would give 0.003)."""
SODA_TEXT_SHARE_LR = LR_AT_REFERENCE * math.sqrt(SODA_STUDY_BATCH_SIZE / LR_REFERENCE_BATCH)
"""0.00212, as exp1699_nemotron_sweep.py computes it: the batch factor only."""
SODA_TOKEN_TYPES_LR = (
    SODA_TOKEN_TYPES_LR_BASE
    * math.sqrt(SODA_STUDY_BATCH_SIZE / LR_REFERENCE_BATCH)
    * math.sqrt(SODA_TOKEN_TYPES_MODEL.hidden_dim / LR_REFERENCE_WIDTH)
)
"""0.002, as exp1699_ablate_tokens.py computes it (the same inverted width factor, at d=2048)."""


def soda_study_recipe(tokens: int, learning_rate: float) -> TrainRecipe:
    """A study run: seq 4096 x batch 128 for ``tokens``, the final runs' Cautious optimizer and
    schedule (betas 0.98, eps 1e-16, weight decay 0.033 AdamC, 10% warmup, linear decay over the
    last 20%, clip 1) at a fixed ``learning_rate``, z-loss 1e-4."""
    return recipe_for_tokens(
        tokens, batch_size=SODA_STUDY_BATCH_SIZE, optimizer=OptimizerRecipe(learning_rate=learning_rate)
    )


SODA_DATA_SOURCES_RECIPE = soda_study_recipe(SODA_DATA_SOURCES_TOKENS, SODA_DATA_SOURCES_LR)
SODA_TEXT_SHARE_RECIPE = soda_study_recipe(SODA_TEXT_SHARE_TOKENS, SODA_TEXT_SHARE_LR)
SODA_TOKEN_TYPES_RECIPE = soda_study_recipe(SODA_TOKEN_TYPES_TOKENS, SODA_TOKEN_TYPES_LR)


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

DEMO_LEARN_MODEL = ModelShape(
    hidden_dim=192, intermediate_dim=576, num_layers=6, num_heads=6, num_kv_heads=2, head_dim=32
)
"""The learning demo's model (experiments/demo_learn.py): 2.6M non-embedding parameters, 9.1M with the
commands' 16,900-id vocabulary (512 BPE text ids + 4 markers + 16,384 audio ids); docs/demo.md has
the smaller model it replaced and why."""
DEMO_LEARN_STEPS = 900
DEMO_LEARN_RECIPE = TrainRecipe(
    seq_len=DEMO_SEQ_LEN,
    batch_size=DEMO_BATCH_SIZE,
    num_train_steps=DEMO_LEARN_STEPS,
    optimizer=OptimizerRecipe(learning_rate=3e-3, beta1=0.9, beta2=0.98, epsilon=1e-8),
)
"""The learning demo's recipe: `DEMO_RECIPE`'s optimizer and schedule for longer (docs/demo.md has
the learning curve it was chosen from)."""

BENCH_MODEL = BENCH_20M
"""The model benchmarks/bench_train.py times (~22M parameters with a 16k vocabulary)."""

__all__ = [
    "BENCH_MODEL",
    "DEMO_6M",
    "DEMO_LEARN_MODEL",
    "DEMO_LEARN_RECIPE",
    "DEMO_RECIPE",
    "SODA_135M",
    "SODA_150M",
    "SODA_1_7B",
    "SODA_4B",
    "SODA_600M",
    "SODA_DATA_SOURCES_RECIPE",
    "SODA_FINAL_RECIPE",
    "SODA_MODELS",
    "SODA_PARALLELISM",
    "SODA_STUDY_MODEL",
    "SODA_STUDY_TPU",
    "SODA_TEXT_SHARE_RECIPE",
    "SODA_TOKEN_TYPES_MODEL",
    "SODA_TOKEN_TYPES_RECIPE",
    "SODA_TOKEN_TYPES_TPUS",
    "SODA_TPU_SLICES",
    "soda_study_recipe",
]
