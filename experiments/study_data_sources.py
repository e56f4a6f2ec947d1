"""SODA's data-source study: YODAS2 alone, Emilia alone, both, and both with MLS, on the 150M.

What it runs, its flags and its steps: `soda_jax.recipes.study_data_sources`
(src/soda_jax/recipes/study_data_sources.py).
"""

import sys

from soda_jax.recipes.study_data_sources import main

if __name__ == "__main__":
    main(sys.argv[1:])
