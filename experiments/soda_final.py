"""SODA's final runs: the four catalogue models on SODA's data mix (seq 4096, batch 512, 500B tokens).

    python experiments/soda_final.py --prefix gs://BUCKET/soda --run_only checkpoints/soda-600m [--dry_run]

Every model trains on its TPU slice (`SODA_TPU_SLICES`) with its mesh (`SODA_PARALLELISM`); the data
steps (experiments/soda_data.py) are shared, so they run once for all four.
"""

import sys

from experiments.defaults import default_train
from experiments.soda_data import soda_final_data
from experiments.soda_models import SODA_FINAL_RECIPE, SODA_MODELS, SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax.execution import executor_main

STEPS_PER_EVAL = 1000
"""Validation loss every 1000 steps (~2B tokens)."""

data = soda_final_data()
final_runs = [
    default_train(
        f"soda-{size}",
        data,
        shape,
        SODA_FINAL_RECIPE,
        tpu=SODA_TPU_SLICES[shape],
        parallelism=SODA_PARALLELISM[shape],
        steps_per_eval=STEPS_PER_EVAL,
    )
    for size, shape in SODA_MODELS.items()
]

if __name__ == "__main__":
    executor_main(final_runs, description="SODA final runs (135M, 600M, 1.7B, 4B)", args=sys.argv[1:])
