"""Evaluate any checkpoint on SODA's benchmark set from local copies, beside SODA's reported numbers.

What it runs, its flags and its steps: `soda_jax.recipes.soda_eval` (src/soda_jax/recipes/soda_eval.py).
"""

import sys

from soda_jax.recipes.soda_eval import main

if __name__ == "__main__":
    main(sys.argv[1:])
