"""Named data mixtures (component name -> sampling weight), SODA's final run among them.

A mix names components; the training experiment maps each name to a cache root (an ``interleave``
or ``tokenize_text`` step) and calls `mixture_config`::

    data = mixture_config("soda_final", {"yodas2": yodas2_step, "emilia_yodas": ..., "emilia": ..., "nemotron_cc": ...})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soda_jax.data.mixture import MixtureSpec, normalized_weights, soda_mixture

YODAS2, EMILIA_YODAS, EMILIA, MLS, NEMOTRON_CC = "yodas2", "emilia_yodas", "emilia", "mls", "nemotron_cc"

SODA_SPEECH_TOKENS_B = {YODAS2: 131, EMILIA_YODAS: 73, EMILIA: 37}
"""Billions of tokens of each English speech-text source in SODA's final run (their mix ratio)."""
SODA_MLS_TOKENS_B = 35
"""Billions of tokens of MLS-En, the fourth corpus of SODA's data-source study (not in the final run)."""
YODAS_SOURCED = {YODAS2: SODA_SPEECH_TOKENS_B[YODAS2], EMILIA_YODAS: SODA_SPEECH_TOKENS_B[EMILIA_YODAS]}
"""The corpora cut from YODAS's videos, in their token ratio (131 : 73)."""
SODA_FINAL_TEXT_SHARE = 0.05
"""SODA's final run: 5% Nemotron-CC-like text, 95% speech-text."""


def speech_text_mix(
    text_share: float, speech: Mapping[str, float] = SODA_SPEECH_TOKENS_B, text: str = NEMOTRON_CC
) -> dict[str, float]:
    """``text_share`` of pure text, the rest speech split in proportion to ``speech`` (SODA's
    text-share study ran 0..1 on 150M models)."""
    if not 0.0 <= text_share <= 1.0:
        raise ValueError(f"text_share must be in [0, 1], got {text_share}")
    speech_weights = normalized_weights(speech)
    return {name: (1.0 - text_share) * w for name, w in speech_weights.items()} | {text: text_share}


MIXES: dict[str, dict[str, float]] = {
    "soda_final": speech_text_mix(SODA_FINAL_TEXT_SHARE),
    "speech_only": speech_text_mix(0.0),
    "speech_text_50": speech_text_mix(0.5),
    "yodas2_only": {YODAS2: 1.0},
    "emilia_only": {EMILIA: 1.0},
    "speech_mls": speech_text_mix(0.0, {**SODA_SPEECH_TOKENS_B, MLS: SODA_MLS_TOKENS_B}),
    # SODA's data-source study as Marin ran it (exp1699): Emilia = both halves in their token ratio;
    # "both" = half Emilia, half the YODAS-sourced corpora; "+ MLS" = thirds of MLS, Emilia, YODAS-sourced
    "sources_emilia": normalized_weights({EMILIA: 37, EMILIA_YODAS: 73}),
    "sources_both": {EMILIA: 0.5} | {k: 0.5 * w for k, w in normalized_weights(YODAS_SOURCED).items()},
    "sources_both_mls": {MLS: 1 / 3, EMILIA: 1 / 3} | {k: w / 3 for k, w in normalized_weights(YODAS_SOURCED).items()},
    "demo": {YODAS2: 0.5, EMILIA: 0.5},
}
"""Named mixes; ``soda_final`` is YODAS2 0.516, Emilia-YODAS 0.288, Emilia 0.146, text 0.05; ``demo``
is the CPU demo's two synthetic corpora (same sentences, both layouts) in equal parts.

SODA's data-source study (experiments/study_data_sources.py) uses Marin's arms: ``yodas2_only``,
``sources_emilia``, ``sources_both`` and ``sources_both_mls``; ``speech_only`` and ``speech_mls``
(131:73:37:35) are the same corpora in their token ratio."""


def mixture_config(mix: str, caches: Mapping[str, Any], **kwargs) -> MixtureSpec:
    """The data spec of the named ``mix`` over ``caches`` (name -> cache root).

    Every weighted component needs a cache; extra caches join as validation-only components.
    """
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; known: {sorted(MIXES)}")
    weights = {name: w for name, w in MIXES[mix].items() if w > 0}
    missing = sorted(set(weights) - set(caches))
    if missing:
        raise ValueError(f"mix {mix!r} needs caches for {missing}")
    return soda_mixture(caches, weights, name=mix, **kwargs)
