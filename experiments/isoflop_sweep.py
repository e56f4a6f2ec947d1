"""SODA's isoFLOP sweep (59 runs over forward budgets 1e18..1e20 = training 3e18..3e20) + analysis.

What it runs, its flags and its steps: `soda_jax.recipes.isoflop_sweep` (src/soda_jax/recipes/isoflop_sweep.py).
"""

import sys

from soda_jax.recipes.isoflop_sweep import main

if __name__ == "__main__":
    main(sys.argv[1:])
