"""SODA-600M: the final run on SODA's data mix (seq 4096, batch 512, 500B tokens) on a TPU slice.

    python experiments/soda_600m.py --prefix gs://BUCKET/soda [--dry_run]
"""

from experiments._defaults_train import default_train
from experiments.soda_models import SODA_600M, SODA_PARALLELISM, SODA_TPU_SLICES, soda_final_data, soda_final_recipe
from soda_jax.execution import executor_main

soda_600m = default_train(
    "soda-600m",
    data=soda_final_data(),
    model=SODA_600M,
    train_config=soda_final_recipe(SODA_600M),
    tpu=SODA_TPU_SLICES[SODA_600M],
    parallelism=SODA_PARALLELISM[SODA_600M],
    steps_per_eval=1000,
)

if __name__ == "__main__":
    executor_main([soda_600m], description="SODA-600M final run")
