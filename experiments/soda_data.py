"""SODA's data, as steps: raw corpora -> Mimi codes -> interleaved caches, plus web text.

What it runs, its flags and its steps: `soda_jax.recipes.soda_data` (src/soda_jax/recipes/soda_data.py).
"""

import sys

from soda_jax.recipes.soda_data import main

if __name__ == "__main__":
    main(sys.argv[1:])
