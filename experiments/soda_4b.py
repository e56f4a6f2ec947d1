"""SODA-4B: the final run on SODA's data mix (seq 4096, batch 512, 500B tokens) on a TPU slice.

    python experiments/soda_4b.py --prefix gs://BUCKET/soda [--dry_run]
"""

from experiments._defaults_train import default_train
from experiments.soda_models import SODA_4B, SODA_PARALLELISM, SODA_TPU_SLICES, soda_final_data, soda_final_recipe
from soda_jax.execution import executor_main

soda_4b = default_train(
    "soda-4b",
    data=soda_final_data(),
    model=SODA_4B,
    train_config=soda_final_recipe(SODA_4B),
    tpu=SODA_TPU_SLICES[SODA_4B],
    parallelism=SODA_PARALLELISM[SODA_4B],
    steps_per_eval=1000,
)

if __name__ == "__main__":
    executor_main([soda_4b], description="SODA-4B final run")
