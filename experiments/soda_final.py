"""SODA's final runs: the four catalogue models on SODA's data mix (seq 4096, batch 512, 500B tokens).

    python experiments/soda_final.py --prefix gs://BUCKET/soda [--dry_run]     # all four
    python experiments/soda_600m.py --prefix gs://BUCKET/soda                  # one

Every model trains on its TPU slice (`SODA_TPU_SLICES`) with its mesh (`SODA_PARALLELISM`); the data
steps (experiments/soda_data.py) are shared, so they run once for all of them.
"""

import sys

from experiments.defaults import default_train
from experiments.soda_data import soda_final_data
from experiments.soda_models import SODA_FINAL_RECIPE, SODA_MODELS, SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax.execution import ExecutorStep, executor_main

STEPS_PER_EVAL = 1000
"""Validation loss every 1000 steps (~2B tokens)."""


def soda_final_run(size: str) -> ExecutorStep:
    """``checkpoints/soda-{size}``: SODA's final run of the catalogue model ``size`` ("135m" .. "4b")."""
    shape = SODA_MODELS[size]
    return default_train(
        f"soda-{size}",
        soda_final_data(),
        shape,
        SODA_FINAL_RECIPE,
        tpu=SODA_TPU_SLICES[shape],
        parallelism=SODA_PARALLELISM[shape],
        steps_per_eval=STEPS_PER_EVAL,
    )


if __name__ == "__main__":
    runs = [soda_final_run(size) for size in SODA_MODELS]
    executor_main(runs, description="SODA final runs (135M, 600M, 1.7B, 4B)", args=sys.argv[1:])
