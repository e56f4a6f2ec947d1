"""The demo corpus's data steps, shared by the demo (experiments/demo.py) and the mini isoFLOP
sweep (experiments/isoflop_mini.py): synthesised speech -> Mimi codes -> token caches -> the demo mix.

Importing this module defines steps only: it builds no model and starts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from soda_jax.data.mixture import MixtureSpec
from soda_jax.data.synth import DEMO_VOICES, Voice
from soda_jax.execution import ExecutorStep
from soda_jax.recipes.data_mixes import EMILIA, YODAS2, mixture_config
from soda_jax.recipes.defaults import (
    default_interleave,
    default_synth_demo_corpus,
    default_text_tokenizer,
    default_tokenize,
)

DEMO_VALIDATION_FRACTION = 0.2
"""Recordings held out for validation: a fifth, so the tiny corpus still has a validation set."""

text_tokenizer = default_text_tokenizer("mistral-v1")


def demo_caches(
    readings: int = 1, voices: Sequence[Voice] = DEMO_VOICES, tokenizer: ExecutorStep = text_tokenizer
) -> dict[str, ExecutorStep]:
    """Component name -> its token-cache step: the interleaved demo corpus in each layout, its
    sentences read ``readings`` times (`default_synth_demo_corpus`), text by ``tokenizer``."""
    speech = default_synth_demo_corpus(readings, voices)
    corpus = "demo" if readings == 1 else f"demo-x{readings}"
    return {
        source: default_interleave(
            f"{corpus}-{source}",
            default_tokenize(f"{corpus}-{source}", speech / source, source=source),
            tokenizer=tokenizer,
            validation_fraction=DEMO_VALIDATION_FRACTION,
        )
        for source in (YODAS2, EMILIA)
    }


def demo_data(
    readings: int = 1, voices: Sequence[Voice] = DEMO_VOICES, tokenizer: ExecutorStep = text_tokenizer
) -> MixtureSpec:
    """The demo mix (YODAS2 and Emilia layouts 50/50) over `demo_caches`."""
    return mixture_config("demo", demo_caches(readings, voices, tokenizer))
