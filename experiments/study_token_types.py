"""SODA's token-type study: semantic tokens only, all 8 codebooks, and 8 codebooks with text.

What it runs, its flags and its steps: `soda_jax.recipes.study_token_types` (src/soda_jax/recipes/study_token_types.py).
"""

import sys

from soda_jax.recipes.study_token_types import main

if __name__ == "__main__":
    main(sys.argv[1:])
