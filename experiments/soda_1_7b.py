"""SODA-1.7B: the final run on SODA's data mix (seq 4096, batch 512, 500B tokens) on a TPU slice.

    python experiments/soda_1_7b.py --prefix gs://BUCKET/soda [--dry_run]
"""

from experiments._defaults_train import default_train
from experiments.soda_models import SODA_1_7B, SODA_PARALLELISM, SODA_TPU_SLICES, soda_final_data, soda_final_recipe
from soda_jax.execution import executor_main

soda_1_7b = default_train(
    "soda-1.7b",
    data=soda_final_data(),
    model=SODA_1_7B,
    train_config=soda_final_recipe(SODA_1_7B),
    tpu=SODA_TPU_SLICES[SODA_1_7B],
    parallelism=SODA_PARALLELISM[SODA_1_7B],
    steps_per_eval=1000,
)

if __name__ == "__main__":
    executor_main([soda_1_7b], description="SODA-1.7B final run")
