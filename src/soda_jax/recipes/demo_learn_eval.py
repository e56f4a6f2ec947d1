"""The learning demo's evaluation: held-out commands in the public layouts, and the eval step.

``raw/eval-commands`` synthesises the held-out combinations (`soda_jax.eval.commandset`: read by the
training voices, and by one voice never heard); ``evaluation/demo-learn`` runs
`soda_jax.eval.tasks.learn_tasks` on the model's last checkpoint with SODA's prompts.
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.contracts import EVAL_ITEMS_DIR
from soda_jax.eval.commandset import CommandTaskSetConfig, build_command_tasksets
from soda_jax.eval.report import results_table_of
from soda_jax.eval.tasks import learn_tasks
from soda_jax.execution import ExecutorStep, this_output_path, versioned
from soda_jax.recipes.defaults import default_eval
from soda_jax.recipes.demo_learn_data import HELD_OUT_COMMANDS, LEARN_VOICES, UNSEEN_SPEAKER, learn_codec
from soda_jax.scaling.curve import CURVE_FILE, CURVE_PLOT, LearningCurveConfig, evaluate_learning_curve

LEARN_EVAL_BATCH = 16
"""Sequences per batch (a multiple of the 8-way data axis)."""

command_tasksets = ExecutorStep(
    name="raw/eval-commands",
    fn=build_command_tasksets,
    config=CommandTaskSetConfig(
        output_path=this_output_path(),
        commands=versioned(HELD_OUT_COMMANDS),
        voices=versioned(LEARN_VOICES),
        unseen_voice=versioned(UNSEEN_SPEAKER),
    ),
    description=f"synthesise the {len(HELD_OUT_COMMANDS)} held-out commands' task sets",
)


def learn_evaluation(model: ExecutorStep, mimi: str | None = None, max_items: int | None = None) -> ExecutorStep:
    """``evaluation/{model}``: the learning demo's tasks on its last checkpoint."""
    name = model.name.removeprefix("checkpoints/")
    tasks = learn_tasks(command_tasksets, max_items=max_items)
    return default_eval(name, model, tasks, codec=learn_codec(mimi), batch_size=LEARN_EVAL_BATCH)


CURVE_METRICS = ("asr/wer", "tts_alignment/accuracy", "swuggy/accuracy")
"""What the learning curve follows over the run's checkpoints."""
CURVE_MAX_ITEMS = 48
"""Items per task at each checkpoint of the curve (the final evaluation scores every item)."""


def learn_curve(model: ExecutorStep, mimi: str | None = None) -> ExecutorStep:
    """``analysis/{model}-curve``: ASR 0-shot, alignment and word/non-word pairs on every permanent
    checkpoint of the run (`soda_jax.scaling.curve`): curve.json and curve.png."""
    tasks = tuple(
        t
        for t in learn_tasks(command_tasksets, max_items=CURVE_MAX_ITEMS)
        if t.name in {m.split("/")[0] for m in CURVE_METRICS}
    )
    return ExecutorStep(
        name=f"analysis/{model.name.removeprefix('checkpoints/')}-curve",
        fn=evaluate_learning_curve,
        config=LearningCurveConfig(
            run_path=model,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tasks=versioned(tasks),
            metrics=versioned(CURVE_METRICS),
            codec=versioned(learn_codec(mimi)),
            batch_size=LEARN_EVAL_BATCH,
        ),
        description=f"learning curve of {model.name}: {', '.join(CURVE_METRICS)} at every checkpoint",
    )


def report_learn_evaluation(step: ExecutorStep, output_path: str) -> None:
    """The results table (`soda_jax.eval.report`), with what the TTS numbers can and cannot say."""
    table = results_table_of(output_path)
    if table is None:
        return
    print(
        f"\n{step.name}: held-out combinations of words (never heard in training); asr_unseen_voice and "
        "tts_alignment_unseen_voice: read by a voice never heard"
    )
    print(table)
    print(
        "  TTS and continuation: with the random Mimi, decoded speech is not intelligible (its codes are an untrained\n"
        "  function of the audio): read their frame-valid rate and speaker similarity, not their WER."
    )
    print(f"  per-item scores and outputs:  {fileio.join(output_path, EVAL_ITEMS_DIR)}/")


def report_curve(step: ExecutorStep, output_path: str) -> None:
    """The learning curve's points and plot."""
    curve = fileio.read_json_or_none(fileio.join(output_path, CURVE_FILE))
    if curve is None:
        return
    print(f"\n{step.name}: held-out metrics at every checkpoint ({CURVE_MAX_ITEMS} items each)")
    print(f"  {'step':>6} {'tokens':>10} " + " ".join(f"{m:>24}" for m in curve["metrics"]))
    for point in curve["points"]:
        values = " ".join(f"{point[m]:>24.3f}" if point.get(m) is not None else f"{'-':>24}" for m in curve["metrics"])
        print(f"  {point['step']:>6} {point['tokens'] or 0:>10,} {values}")
    print(f"  plot: {fileio.join(output_path, CURVE_PLOT)}")
