"""SODA-4B: the final run on SODA's data mix, on its TPU slice.

python experiments/soda_4b.py --prefix gs://BUCKET/soda [--dry_run]
"""

import sys

from soda_jax.execution import executor_main
from soda_jax.recipes.soda_final import soda_final_run

soda_4b = soda_final_run("4b")

if __name__ == "__main__":
    executor_main([soda_4b], description="SODA-4B final run", args=sys.argv[1:])
