"""`make study-mini`: SODA's text-share study in miniature, on CPU (docs/design-studies.md).

What it runs, its flags and its steps: `soda_jax.recipes.study_text_share_mini`
(src/soda_jax/recipes/study_text_share_mini.py).
"""

import sys

from soda_jax.recipes.study_text_share_mini import main

if __name__ == "__main__":
    main(sys.argv[1:])
