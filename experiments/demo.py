"""`make demo`: the whole pipeline on CPU, from synthesised speech to a trained model.

What it runs, its flags and its steps: `soda_jax.recipes.demo` (src/soda_jax/recipes/demo.py).
"""

import sys

from soda_jax.recipes.demo import main

if __name__ == "__main__":
    main(sys.argv[1:])
