"""SODA's token-type study: semantic tokens only, all 8 codebooks, and 8 codebooks interleaved with
text, on YODAS2 (Marin's exp1699_ablate_tokens.py; docs/design-studies.md). What sets SODA apart
from semantic-only models (SpiritLM, SIMS) and audio-only ones (Llama-Mimi).

    python experiments/study_token_types.py --prefix gs://BUCKET/soda [--dry_run] [soda_data.py's root flags]

Three runs of `SODA_TOKEN_TYPES_MODEL`: SODA ran this study on the 1.7B, not the 150M, with
`SODA_TOKEN_TYPES_RECIPE` (30B tokens, 57,221 steps of 128 x 4096, LR 0.002, the final runs'
Cautious optimizer, z-loss 1e-4), each on the smallest of a v5p-16/32/64 its step fits. The arms
read YODAS2's Mimi codes (experiments/soda_data.py) interleaved three ways (`ARMS`,
`soda_jax.data.interleave`): ``semantic_only`` (codebook 0, no text), ``audio_only`` (8 codebooks,
no text) and SODA's own ``text_first`` + ``audio_first`` (the final runs' cache). The interleave
steps hold out the same recordings in every layout (a hash of the recording id), so each arm's
held-out NLL is over the same speech, in its own tokens: the semantic tokens' NLL compares across
all three, the acoustic tokens' between the two 8-codebook arms, the text's exists in one. The
evaluation set is the same for all three: SODA's likelihood tasks (sWUGGY, sBLIMP, SALMon and the text
pairs tWUGGY, tBLIMP), each model scoring the codebooks it was trained on (a semantic-only model
codebook 0: its caches record one codebook per frame). ASR and TTS are left out: two arms never see text.
"""

from __future__ import annotations

import dataclasses

from soda_jax.eval.pairs import PairTask
from soda_jax.execution import ExecutorStep, versioned
from soda_jax.recipes.data_mixes import YODAS2, mixture_config
from soda_jax.recipes.defaults import SODA_PATTERNS
from soda_jax.recipes.soda_data import SodaDataRoots, SodaSteps
from soda_jax.recipes.soda_eval_sets import SodaEvalPlan, soda_eval_plan
from soda_jax.recipes.soda_models import (
    SODA_TOKEN_TYPES_MODEL,
    SODA_TOKEN_TYPES_RECIPE,
    SODA_TOKEN_TYPES_TPUS,
)
from soda_jax.recipes.study_defaults import run_soda_study, soda_study_evaluation, study_steps
from soda_jax.scaling.studies import StudyArm

STUDY = "study-token-types"
ARMS = (
    (StudyArm("semantic", "semantic only (codebook 0)"), ("semantic_only",)),
    (StudyArm("acoustic", "8 codebooks"), ("audio_only",)),
    (StudyArm("interleaved", "8 codebooks + text"), SODA_PATTERNS),
)
"""Each arm and the document patterns its YODAS2 cache is written in."""
TOKEN_TYPE_METRICS = ("swuggy/accuracy", "sblimp/accuracy", "salmon/accuracy", "twuggy/accuracy", "tblimp/accuracy")


def with_patterns(cache: ExecutorStep, patterns: tuple[str, ...]) -> ExecutorStep:
    """``cache`` (a `default_interleave` step) writing ``patterns`` instead of its own:
    ``tokenized/{name}-{patterns}-interleaved``, the same codes, tokenizer and held-out recordings."""
    if tuple(cache.config.patterns.value) == tuple(patterns):
        return cache
    name = cache.name.removesuffix("-interleaved") + "-" + "+".join(patterns) + "-interleaved"
    config = dataclasses.replace(cache.config, patterns=versioned(tuple(patterns)))
    return dataclasses.replace(
        cache, name=name, config=config, description=f"{cache.description} as {', '.join(patterns)}"
    )


def token_types_study(roots: SodaDataRoots | None = None, plan: SodaEvalPlan | None = None) -> list[ExecutorStep]:
    """The study's runs, their evaluations (``plan``'s likelihood tasks) and its analysis (last)."""
    yodas2 = SodaSteps(roots or SodaDataRoots()).caches((YODAS2,))[YODAS2]
    arms = [(arm, mixture_config("yodas2_only", {YODAS2: with_patterns(yodas2, patterns)})) for arm, patterns in ARMS]
    return study_steps(
        STUDY,
        arms,
        SODA_TOKEN_TYPES_MODEL,
        SODA_TOKEN_TYPES_RECIPE,
        title="token types: semantic only, 8 codebooks, 8 codebooks + text; YODAS2, 1.7B, 30B tokens",
        axis_label="tokens modelled",
        metrics=TOKEN_TYPE_METRICS,
        eval_step_for=soda_study_evaluation(plan or soda_eval_plan(), keep=lambda task: isinstance(task, PairTask)),
        tpu=SODA_TOKEN_TYPES_TPUS,
    )


def main(argv: list[str]) -> None:
    run_soda_study(token_types_study, "SODA's token-type study (1.7B on YODAS2: semantic, 8 codebooks, + text)", argv)
