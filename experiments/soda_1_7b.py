"""SODA-1.7B: the final run on SODA's data mix, on its TPU slice.

python experiments/soda_1_7b.py --prefix gs://BUCKET/soda [--dry_run]
"""

import sys

from soda_jax.execution import executor_main
from soda_jax.recipes.soda_final import soda_final_run

soda_1_7b = soda_final_run("1.7b")

if __name__ == "__main__":
    executor_main([soda_1_7b], description="SODA-1.7B final run", args=sys.argv[1:])
