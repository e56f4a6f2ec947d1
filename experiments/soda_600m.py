"""SODA-600M: the final run on SODA's data mix, on its TPU slice.

python experiments/soda_600m.py --prefix gs://BUCKET/soda [--dry_run]
"""

import sys

from soda_jax.execution import executor_main
from soda_jax.recipes.soda_final import soda_final_run

soda_600m = soda_final_run("600m")

if __name__ == "__main__":
    executor_main([soda_600m], description="SODA-600M final run", args=sys.argv[1:])
