"""Evaluate any checkpoint on SODA's benchmark set from local copies, beside SODA's reported numbers.

    python experiments/soda_eval.py --model PATH --prefix ./eval-output [--name NAME] [--dry_run] [--local]
    python experiments/soda_eval.py --model PATH --prefix ./eval-output --table     # print a finished one

``--model``: a training output (its latest checkpoint) or an HF directory in SODA's vocabulary
layout (our ``hf/`` export, or a downloaded SODA base model). The sets and scorer weights come from
``$SODA_EVAL_ROOT`` and its overrides (`soda_jax.recipes.soda_eval_sets`): sWUGGY, tWUGGY, sBLIMP, tBLIMP,
SALMon, LibriSpeech ASR 0- and 3-shot, Seed-TTS WER and speaker similarity, HellaSwag through
lm-eval. A set that is not there is skipped by name and listed as not run. Generated speech is
scored by Whisper-large-v3 and a WavLM verification model when their weights are local, else by
the offline defaults (PocketSphinx, resemblyzer): the plan printed first says which, and only
SODA's scorers give numbers comparable with SODA's. The step is ``evaluation/soda-eval/{name}``
(``name``: the model directory's name), versioned by the model path and the tasks, so a killed
evaluation resumes where it stopped (docs/evaluation.md).
"""

from __future__ import annotations

import argparse

from soda_jax import fileio
from soda_jax.contracts import EVAL_ITEMS_DIR, EVAL_RESULTS_FILE
from soda_jax.eval.report import results_table_of
from soda_jax.execution import ExecutorStep, run_experiment
from soda_jax.recipes.adaptive_sweep import executor_config
from soda_jax.recipes.soda_eval_sets import SodaEvalPlan, soda_eval_plan, soda_eval_step

LOCAL_BATCH = 8
"""Sequences per batch when the evaluation runs here (no TPU): a multiple of 8 fake CPU devices."""


def soda_eval_steps(
    model_path: str,
    name: str | None = None,
    plan: SodaEvalPlan | None = None,
    *,
    tpu: str | None = None,
    batch_size: int = LOCAL_BATCH,
) -> list[ExecutorStep]:
    """``evaluation/soda-eval/{name}``: ``plan``'s tasks (default `soda_eval_plan()`) on ``model_path``."""
    plan = plan or soda_eval_plan()
    if not plan.tasks:
        raise SystemExit(f"no SODA evaluation set found:\n{plan.describe()}")
    name = name or model_path.rstrip("/").rsplit("/", 1)[-1]
    return [
        soda_eval_step(f"soda-eval/{name}", model_path, plan, tpu=tpu, batch_size=batch_size)
    ]  # a path: versioned by it


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument(
        "--model", required=True, help="a training output or an HF directory in SODA's vocabulary layout"
    )
    parser.add_argument("--name", default=None, help="the evaluation's name (default: the model directory's)")
    parser.add_argument("--tpu", default=None, help="run on this TPU slice type (default: where the executor runs)")
    parser.add_argument("--table", action="store_true", help="only print the table of a finished evaluation")
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> None:
    args, executor_args = parse(argv)
    config = executor_config(executor_args)
    plan = soda_eval_plan()
    print(plan.describe())
    (step,) = soda_eval_steps(args.model, args.name, plan, tpu=args.tpu)
    report = None
    if not args.table:
        report = run_experiment([step], config, f"SODA's benchmark set on {args.model}")
        if report is None or config.dry_run:
            return
    if report is not None:
        output = report.output_paths[step.name]
    else:
        from soda_jax.execution import Executor

        executor = Executor(config.output_prefix(), use_ray=False)
        executor.prepare([step])
        output = executor.output_path(step)
    table = results_table_of(output, not_run=plan.missing)
    if table is None:
        raise SystemExit(f"{fileio.join(output, EVAL_RESULTS_FILE)}: no results yet (run without --table)")
    print(
        f"\n{step.name} ({args.model}):\n{table}\n"
        f"  scorers: {'; '.join(plan.scorer_notes)}\n"
        f"  per-item records: {fileio.join(output, EVAL_ITEMS_DIR)}/"
    )
