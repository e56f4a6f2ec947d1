"""`make demo-learn`: a model that learns, shown on CPU (docs/demo.md).

    python experiments/demo_learn.py --prefix ./demo-output [--mimi DIR|random] [--seed N] [executor flags]

Spoken commands from a closed vocabulary (src/soda_jax/recipes/demo_learn_data.py) -> Mimi codes (2
codebooks of a tiny Mimi distilled on the training commands) -> interleaved text-first and audio-first
documents -> `DEMO_LEARN_MODEL` trained by the project's training step -> evaluated by the project's
tasks and SODA's prompts on combinations of words never heard in training
(src/soda_jax/recipes/demo_learn_eval.py). ``--mimi DIR``: a local pretrained Mimi (``config.json`` +
``model.safetensors``); ``--mimi random``: the demo's seeded random tiny Mimi. Each codec's steps are
other steps (other output paths).
"""

from __future__ import annotations

import dataclasses
import sys

from soda_jax.execution import executor_main
from soda_jax.execution.main import pop_option
from soda_jax.execution.parallel import shutdown_workers
from soda_jax.execution.timeline import wall_shares
from soda_jax.recipes.defaults import default_train
from soda_jax.recipes.demo import report_training
from soda_jax.recipes.demo_learn_data import codec_suffix, learn_data
from soda_jax.recipes.demo_learn_eval import (
    learn_curve,
    learn_evaluation,
    report_curve,
    report_learn_evaluation,
)
from soda_jax.recipes.soda_models import DEMO_LEARN_MODEL, DEMO_LEARN_RECIPE
from soda_jax.training import CheckpointPolicy

MIMI_FLAG = "--mimi"
SEED_FLAG = "--seed"
"""The training recipe's seed (default 0): tests/test_learning_demo.py's thresholds hold over seeds."""
TEXT_SHIFT_FLAG = "--text_shift"
"""Tests only: train on captions paired with the speech of the command N places later (a broken corpus;
367 changes every word slot of the sorted command list)."""
CURVE_EVERY_STEPS = 300
"""A permanent checkpoint every this many steps: the points of the learning curve."""


def learn_model(mimi: str | None = None, seed: int = 0, text_shift: int = 0):
    """``checkpoints/demo-learn``: `DEMO_LEARN_MODEL` on the commands (``seed``: the recipe's;
    ``text_shift``: tests only, captions paired with other commands' speech)."""
    name = (
        "demo-learn"
        + codec_suffix(mimi)
        + (f"-seed{seed}" if seed else "")
        + (f"-shifted{text_shift}" if text_shift else "")
    )
    return default_train(
        name,
        learn_data(mimi, text_shift),
        DEMO_LEARN_MODEL,
        dataclasses.replace(DEMO_LEARN_RECIPE, seed=seed),
        gradient_checkpointing=False,
        steps_per_eval=100,
        max_eval_batches=4,
        checkpoints=CheckpointPolicy(every_steps=CURVE_EVERY_STEPS, every_minutes=None),
    )


def main(argv: list[str]) -> None:
    mimi, argv = pop_option(argv, MIMI_FLAG)
    seed, argv = pop_option(argv, SEED_FLAG)
    shift, executor_args = pop_option(argv, TEXT_SHIFT_FLAG)
    model = learn_model(mimi, int(seed or 0), int(shift or 0))
    evaluation, curve = learn_evaluation(model, mimi), learn_curve(model, mimi)
    report = executor_main(
        [model, evaluation, curve],
        args=executor_args,
        description="soda-jax learning demo: spoken commands -> a model that transcribes them",
    )
    if report is not None:
        shutdown_workers()  # flush the workers' logs before the summary
        report_training(model, report.output_paths[model.name])
        report_learn_evaluation(evaluation, report.output_paths[evaluation.name])
        report_curve(curve, report.output_paths[curve.name])
        print(f"\nevery step, its provenance and metrics in a browser:  soda dashboard --prefix {report.prefix}")
        print(f"where this run's time went: {wall_shares(report, training=[model.name]).describe()}")


if __name__ == "__main__":
    main(sys.argv[1:])
