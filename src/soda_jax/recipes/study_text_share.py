"""SODA's text-share study: Nemotron-CC at 0, 5, 25, 50 and 100% of the mix, on the 150M
(Marin's exp1699_nemotron_sweep.py; docs/design-studies.md).

    python experiments/study_text_share.py --prefix gs://BUCKET/soda [--dry_run] [soda_data.py's root flags]
    make study-mini                                                  # its CPU miniature

Five runs of `SODA_STUDY_MODEL` (SODA_150M) with `SODA_TEXT_SHARE_RECIPE` (10B tokens, 19,074 steps of
128 x 4096, LR 0.00212, the final runs' Cautious optimizer, z-loss 1e-4) on a v5p-8, each on YODAS2
and Nemotron-CC's hq_actual (experiments/soda_data.py) in the arm's proportion: SODA's sweep mixed
YODAS2 alone with the text (its 5% arm is not the final mix, which adds the two Emilia halves). Both
caches are in every arm's data, at weight 0 where it does not train on them, so every arm is
validated on the same held-out YODAS2 and Nemotron-CC sequences: held-out speech NLL (by token kind)
and text NLL. Each run is evaluated on SODA's tasks wherever ``$SODA_EVAL_ROOT`` holds their sets
(src/soda_jax/recipes/soda_eval_sets.py), then ``analysis/study-text-share`` draws and tabulates the arms.
SODA's sweep also ran 2.5, 7.5 and every 10% from 10 to 90; `TEXT_SHARES` takes the issue's five.
"""

from __future__ import annotations

from soda_jax.data.mixture import MixtureSpec, soda_mixture
from soda_jax.execution import ExecutorStep
from soda_jax.recipes.data_mixes import NEMOTRON_CC, YODAS2, speech_text_mix
from soda_jax.recipes.soda_data import SodaDataRoots, SodaSteps
from soda_jax.recipes.soda_eval_sets import SodaEvalPlan, soda_eval_plan
from soda_jax.recipes.soda_models import SODA_STUDY_MODEL, SODA_STUDY_TPU, SODA_TEXT_SHARE_RECIPE
from soda_jax.recipes.study_defaults import run_soda_study, soda_study_evaluation, study_steps
from soda_jax.scaling.studies import StudyArm

STUDY = "study-text-share"
TEXT_SHARES = (0.0, 0.05, 0.25, 0.5, 1.0)
"""Nemotron-CC's share of the training tokens in each arm."""
SPEECH = {YODAS2: 1.0}
"""The speech side of every arm: YODAS2 alone, as in SODA's sweep."""


def text_share_arm(share: float) -> StudyArm:
    """The arm with ``share`` of text (``text-25``, "25% text")."""
    percent = f"{100 * share:g}"
    return StudyArm(name=f"text-{percent}", label=f"{percent}% text", value=share)


def text_share_data(
    share: float, caches: dict, speech: dict[str, float] = SPEECH, mix: str = "yodas2_text"
) -> MixtureSpec:
    """``share`` of Nemotron-CC, the rest ``speech`` (`speech_text_mix`), over ``caches``: every cache
    is in the data (validated), the ones without weight at 0. Named ``{mix}_{percent}``."""
    return soda_mixture(caches, speech_text_mix(share, speech, NEMOTRON_CC), name=f"{mix}_{100 * share:g}")


def text_share_study(roots: SodaDataRoots | None = None, plan: SodaEvalPlan | None = None) -> list[ExecutorStep]:
    """The study's runs, their evaluations (``plan``; default `soda_eval_plan()`) and its analysis (last)."""
    caches = SodaSteps(roots or SodaDataRoots()).caches((YODAS2, NEMOTRON_CC))
    arms = [(text_share_arm(share), text_share_data(share, caches)) for share in TEXT_SHARES]
    return study_steps(
        STUDY,
        arms,
        SODA_STUDY_MODEL,
        SODA_TEXT_SHARE_RECIPE,
        title="text share: Nemotron-CC in YODAS2, 150M, 10B tokens",
        axis_label="Nemotron-CC share of the training mix",
        eval_step_for=soda_study_evaluation(plan or soda_eval_plan()),
        tpu=SODA_STUDY_TPU,
    )


def main(argv: list[str]) -> None:
    run_soda_study(text_share_study, "SODA's text-share study (150M, Nemotron-CC 0-100%)", argv)
