"""`make study-mini`: SODA's text-share study in miniature, on CPU (docs/design-studies.md).

    python experiments/study_text_share_mini.py --prefix ./demo-output [executor flags: --dry_run, ...]

Five arms, each a tiny Qwen3 trained alike on a mix of speech and text that differs only in the
text's share: 0, 5, 25, 50 and 100% (`TEXT_SHARES` of SODA's Nemotron-CC study on the 150M,
experiments/study_text_share.py, whose arms and mixes these are).

- Speech: the demo corpus read `MINI_STUDY_READINGS` times per layout by the chorus voices
  (YODAS2 and Emilia layouts 50/50, the demo mix), text by the mini sweep's 512-id BPE.
- Text, in Nemotron-CC's place: real English prose that ships with Python (`soda_jax.data.demo_text`:
  the demo's sentences and the prose of Python's documentation topics), same tokenizer, a tenth held out.
- Model: the mini sweep's rules at width `MINI_STUDY_WIDTH` (3 layers, 2 heads, 0.84M parameters,
  near the mini sweep's compute-optimal N* for this budget), trained for the forward budget
  `MINI_STUDY_BUDGET` with the mini sweep's recipe (`sweep_recipe`: 517 steps of 4 x 256 tokens).
- Every arm has every component in its data, at weight 0 where it does not train on it, so every
  arm is validated on the same held-out sequences: held-out speech NLL (token-weighted over the two
  speech components, by token kind) and the text corpus's held-out NLL, from the run's summary.
- Every arm is evaluated on the demo's sWUGGY/sBLIMP-style pairs and their text versions (`raw/eval-mini`).
- ``analysis/study-text-share-mini``: ``study.json`` and ``study.png`` (`soda_jax.scaling.studies`),
  whose table is printed at the end.

Re-running skips every finished step; the data steps are shared with nothing else (other readings,
another tokenizer than the demo's), the BPE and the evaluation sets with the demo and the mini sweep.
"""

from __future__ import annotations

from soda_jax.data.demo_text import DemoTextConfig, write_demo_text_corpus
from soda_jax.data.synth import CHORUS_VOICES
from soda_jax.eval.tasks import mini_pair_tasks
from soda_jax.execution import ExecutorStep, this_output_path, versioned
from soda_jax.recipes.data_mixes import EMILIA, MIXES, NEMOTRON_CC, YODAS2
from soda_jax.recipes.defaults import DEMO_CODEC, default_eval, default_tokenize_text
from soda_jax.recipes.demo_data import demo_caches
from soda_jax.recipes.demo_eval import DEMO_EVAL_BATCH, mini_tasksets
from soda_jax.recipes.isoflop_mini import (
    MINI_COMPILATION_CACHE,
    MINI_RULES,
    MINI_TRAIN_OPTIONS,
    MINI_VALIDATION_SEQUENCES,
    mini_text_tokenizer,
)
from soda_jax.recipes.study_defaults import run_study, study_steps
from soda_jax.recipes.study_text_share import TEXT_SHARES, text_share_arm, text_share_data
from soda_jax.scaling.sweep import SweepRun, plan_run, sweep_recipe

STUDY = "study-text-share-mini"
MINI_STUDY_READINGS = 4
"""Readings of the demo sentences per layout: 0.16M training tokens of speech (the demo's one
reading would be repeated ~13 times by an arm; 16, the mini sweep's, takes ~19 minutes to make)."""
MINI_STUDY_WIDTH = 24
"""Model width (`MINI_RULES`: 3 layers, 2 heads of 12, a 96-wide MLP; 0.84M parameters, 0.81M of
them the 16,900-id embeddings and LM head)."""
MINI_STUDY_BUDGET = 5e11
"""Forward FLOPs of every arm (training 1.5e12, the mini sweep's second budget): 517 steps."""
MINI_TEXT_VALIDATION_FRACTION = 0.1
"""Share of the text corpus's documents held out: its held-out NLL is one of the study's numbers."""
MINI_EVAL_TASKS = (*mini_pair_tasks(mini_tasksets),)
"""The demo's likelihood pairs, speech and text (held-out NLL comes from the runs' summaries)."""
MINI_STUDY_METRICS = ("swuggy/accuracy", "sblimp/accuracy", "twuggy/accuracy", "tblimp/accuracy")


def default_demo_text_corpus() -> ExecutorStep[DemoTextConfig]:
    """``raw/demo-text``: the demo sentences and Python's documentation prose, as jsonl (`soda_jax.data.demo_text`)."""
    defaults = DemoTextConfig(output_path="")
    return ExecutorStep(
        name="raw/demo-text",
        fn=write_demo_text_corpus,
        config=DemoTextConfig(
            output_path=this_output_path(),
            sentences=versioned(defaults.sentences),
            min_words=versioned(defaults.min_words),
        ),
        description="write the demo text corpus (demo sentences + Python's documentation prose)",
    )


def mini_study_caches() -> dict[str, ExecutorStep]:
    """Component name -> cache step: the two demo speech layouts and the text corpus (as ``nemotron_cc``)."""
    caches = demo_caches(MINI_STUDY_READINGS, CHORUS_VOICES, mini_text_tokenizer)
    text = default_tokenize_text(
        "demo-text",
        default_demo_text_corpus(),
        tokenizer=mini_text_tokenizer,
        validation_fraction=MINI_TEXT_VALIDATION_FRACTION,
    )
    return {**caches, NEMOTRON_CC: text}


def mini_study_run() -> SweepRun:
    """Every arm's run: `MINI_RULES` at `MINI_STUDY_WIDTH` and `MINI_STUDY_BUDGET`."""
    run = plan_run(MINI_RULES, MINI_STUDY_BUDGET, MINI_RULES.shape_for_hidden(MINI_STUDY_WIDTH))
    if not isinstance(run, SweepRun):
        raise ValueError(f"the mini study's run is dropped by the mini sweep's rules: {run.reason}")
    return run


def mini_eval_step(train_step: ExecutorStep) -> ExecutorStep:
    return default_eval(
        train_step.name.removeprefix("checkpoints/"),
        train_step,
        MINI_EVAL_TASKS,
        codec=DEMO_CODEC,
        batch_size=DEMO_EVAL_BATCH,
        compilation_cache_dir=MINI_COMPILATION_CACHE,
    )


def build_mini_study() -> list[ExecutorStep]:
    """The study's training and evaluation steps, one of each per arm, then its analysis (last)."""
    caches = mini_study_caches()
    speech = {name: MIXES["demo"][name] for name in (YODAS2, EMILIA)}
    arms = [(text_share_arm(share), text_share_data(share, caches, speech, mix="demo_text")) for share in TEXT_SHARES]
    run = mini_study_run()
    return study_steps(
        STUDY,
        arms,
        run.shape,
        sweep_recipe(run),
        title=f"text share, CPU miniature: d={run.shape.hidden_dim}, "
        f"{run.tokens / 1e6:.2f}M tokens per arm on the demo corpus",
        axis_label="text share of the training mix",
        eval_step_for=mini_eval_step,
        metrics=MINI_STUDY_METRICS,
        max_eval_batches=MINI_VALIDATION_SEQUENCES // run.batch_size,
        **MINI_TRAIN_OPTIONS,
    )


def main(argv: list[str]) -> None:
    run_study(build_mini_study(), "text-share study, CPU miniature (demo corpus)", argv)
