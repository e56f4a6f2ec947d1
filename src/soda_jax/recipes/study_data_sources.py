"""SODA's data-source study: YODAS2 alone, Emilia alone, both, and both with MLS, on the 150M
(Marin's exp1699_data_mix_150m.py; docs/design-studies.md).

    python experiments/study_data_sources.py --prefix gs://BUCKET/soda [--dry_run] [soda_data.py's root flags]

Four runs of `SODA_STUDY_MODEL` (SODA_150M) with `SODA_DATA_SOURCES_RECIPE` (3B tokens, 5,723 steps
of 128 x 4096, LR 0.0015, the final runs' Cautious optimizer, z-loss 1e-4) on a v5p-8, one per
named mix of src/soda_jax/recipes/data_mixes.py (`ARMS`). Every arm has all four speech caches in its data
(experiments/soda_data.py: YODAS2, Emilia-YODAS, Emilia, MLS-En), at weight 0 where it does not train
on them, so every arm is validated on the same held-out sequences of every corpus: the held-out
speech NLL (token-weighted over the four, by token kind) and each corpus's own say how far a source
carries to the others. Each run is evaluated on SODA's tasks wherever ``$SODA_EVAL_ROOT`` holds their
sets (src/soda_jax/recipes/soda_eval_sets.py), then ``analysis/study-data-sources`` draws and tabulates the arms.
"""

from __future__ import annotations

from soda_jax.execution import ExecutorStep
from soda_jax.recipes.data_mixes import EMILIA, EMILIA_YODAS, MLS, YODAS2, mixture_config
from soda_jax.recipes.soda_data import SodaDataRoots, SodaSteps
from soda_jax.recipes.soda_eval_sets import SodaEvalPlan, soda_eval_plan
from soda_jax.recipes.soda_models import SODA_DATA_SOURCES_RECIPE, SODA_STUDY_MODEL, SODA_STUDY_TPU
from soda_jax.recipes.study_defaults import run_soda_study, soda_study_evaluation, study_steps
from soda_jax.scaling.studies import StudyArm

STUDY = "study-data-sources"
ARMS = (
    (StudyArm("yodas2", "YODAS2"), "yodas2_only"),
    (StudyArm("emilia", "Emilia"), "sources_emilia"),
    (StudyArm("both", "YODAS2 + Emilia"), "sources_both"),
    (StudyArm("both-mls", "YODAS2 + Emilia + MLS"), "sources_both_mls"),
)
"""Each arm and the named mix it trains on (`soda_jax.recipes.data_mixes.MIXES`)."""
SPEECH_CORPORA = (YODAS2, EMILIA_YODAS, EMILIA, MLS)
"""The caches every arm holds (and is validated on)."""


def data_sources_study(roots: SodaDataRoots | None = None, plan: SodaEvalPlan | None = None) -> list[ExecutorStep]:
    """The study's runs, their evaluations (``plan``; default `soda_eval_plan()`) and its analysis (last)."""
    caches = SodaSteps(roots or SodaDataRoots()).caches(SPEECH_CORPORA)
    arms = [(arm, mixture_config(mix, caches)) for arm, mix in ARMS]
    return study_steps(
        STUDY,
        arms,
        SODA_STUDY_MODEL,
        SODA_DATA_SOURCES_RECIPE,
        title="data sources: YODAS2, Emilia, both, + MLS; 150M, 3B tokens",
        axis_label="training data",
        eval_step_for=soda_study_evaluation(plan or soda_eval_plan()),
        tpu=SODA_STUDY_TPU,
    )


def main(argv: list[str]) -> None:
    run_soda_study(data_sources_study, "SODA's data-source study (150M: YODAS2, Emilia, both, + MLS)", argv)
