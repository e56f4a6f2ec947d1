"""SODA's text-share study: Nemotron-CC at 0, 5, 25, 50 and 100% of the mix, on the 150M.

What it runs, its flags and its steps: `soda_jax.recipes.study_text_share` (src/soda_jax/recipes/study_text_share.py).
"""

import sys

from soda_jax.recipes.study_text_share import main

if __name__ == "__main__":
    main(sys.argv[1:])
