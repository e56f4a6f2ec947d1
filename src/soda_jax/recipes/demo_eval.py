"""The demo's evaluation (the last link of `make demo`): mini task sets and the eval step.

``raw/eval-mini`` synthesises sWUGGY/sBLIMP-style sets from the demo voices and cuts LibriSpeech /
Seed-TTS-layout items from the demo corpus's held-out validation recordings;
``evaluation/demo-6m`` runs `soda_jax.eval.tasks.mini_tasks` on the demo model (docs/evaluation.md).
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.contracts import EVAL_AUDIO_DIR, EVAL_ITEMS_DIR
from soda_jax.eval.report import results_table_of
from soda_jax.eval.tasks import mini_tasks
from soda_jax.execution import ExecutorStep
from soda_jax.recipes.defaults import (
    DEMO_CODEC,
    default_eval,
    default_mini_tasksets,
    default_synth_demo_corpus,
)
from soda_jax.recipes.demo_data import DEMO_VALIDATION_FRACTION

DEMO_EVAL_BATCH = 8
"""Sequences per batch on the CPU demo (a multiple of the 8-way data axis)."""

mini_tasksets = default_mini_tasksets(default_synth_demo_corpus(), validation_fraction=DEMO_VALIDATION_FRACTION)


def demo_evaluation(model: ExecutorStep) -> ExecutorStep:
    """``evaluation/{model}``: the mini tasks on the demo model's last checkpoint."""
    name = model.name.removeprefix("checkpoints/")
    return default_eval(name, model, mini_tasks(mini_tasksets), codec=DEMO_CODEC, batch_size=DEMO_EVAL_BATCH)


def report_evaluation(step: ExecutorStep, output_path: str) -> None:
    """The evaluation's table (`soda_jax.eval.report`: values rounded to their 95 % intervals; SODA's
    numbers beside the tasks of the same name, which here are the demo's own small sets, not SODA's)."""
    table = results_table_of(output_path)
    if table is None:
        return
    print(
        f"\n{step.name}: the demo model on the mini task sets "
        "(a 6M model trained on 40 sentences: chance level expected)"
    )
    print(table)
    print(
        f"  per-item scores and outputs:  {fileio.join(output_path, EVAL_ITEMS_DIR)}/   "
        f"generated speech: {fileio.join(output_path, EVAL_AUDIO_DIR)}/"
    )
