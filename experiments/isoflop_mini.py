"""A real miniature isoFLOP sweep on the demo corpus, small enough for a 2-core CPU.

What it runs, its flags and its steps: `soda_jax.recipes.isoflop_mini` (src/soda_jax/recipes/isoflop_mini.py).
"""

import sys

from soda_jax.recipes.isoflop_mini import main

if __name__ == "__main__":
    main(sys.argv[1:])
