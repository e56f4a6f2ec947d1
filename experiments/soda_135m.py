"""SODA-135M: the final run on SODA's data mix (seq 4096, batch 512, 500B tokens) on a TPU slice.

    python experiments/soda_135m.py --prefix gs://BUCKET/soda [--dry_run]
"""

from experiments._defaults_train import default_train
from experiments.soda_models import SODA_135M, SODA_PARALLELISM, SODA_TPU_SLICES, soda_final_data, soda_final_recipe
from soda_jax.execution import executor_main

soda_135m = default_train(
    "soda-135m",
    data=soda_final_data(),
    model=SODA_135M,
    train_config=soda_final_recipe(SODA_135M),
    tpu=SODA_TPU_SLICES[SODA_135M],
    parallelism=SODA_PARALLELISM[SODA_135M],
    steps_per_eval=1000,
)

if __name__ == "__main__":
    executor_main([soda_135m], description="SODA-135M final run")
