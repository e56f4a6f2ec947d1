"""SODA's final runs: the four catalogue models on SODA's data mix, evaluated and starred on the sweep's curves.

What it runs, its flags and its steps: `soda_jax.recipes.soda_final` (src/soda_jax/recipes/soda_final.py).
"""

import sys

from soda_jax.recipes.soda_final import main

if __name__ == "__main__":
    main(sys.argv[1:])
