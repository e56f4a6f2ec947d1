"""SODA's fine-tune: voice-preserving speech-to-speech translation on CVSS (as Marin's audio SFT).

What it runs, its flags and its steps: `soda_jax.recipes.soda_sft_cvss` (src/soda_jax/recipes/soda_sft_cvss.py).
"""

import sys

from soda_jax.recipes.soda_sft_cvss import main

if __name__ == "__main__":
    main(sys.argv[1:])
