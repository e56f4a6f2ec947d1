"""`make demo`: the whole pipeline on CPU, from synthesised speech to a trained model.

    python experiments/demo.py --prefix ./demo-output [--full] [executor flags: --dry_run, --local, ...]

1. ``raw/demo-speech``: 40 sentences read by six flite/espeak-ng voices, in YODAS2 (long-form
   recordings + caption segments) and Emilia (tar shards of utterances) layouts.
2. ``tokenizers/mistral-v1``: a real 32k SentencePiece text tokenizer, available offline.
3. ``tokenized/demo-{yodas2,emilia}-audio``: Mimi codes per utterance (a seeded random tiny Mimi).
4. ``tokenized/demo-{yodas2,emilia}-interleaved``: text-first and audio-first documents -> token caches.
5. ``checkpoints/demo-6m``: a 6.4M-parameter Qwen3 (0.2M outside the embeddings) trained on the two caches mixed 50/50.

``--full`` also runs the miniature isoFLOP sweep and its scaling-law fits on a 16-times larger
reading of the same sentences (experiments/isoflop_mini.py; about 16 minutes on 2 cores).
Re-running skips every finished step.
"""

from __future__ import annotations

import sys

from experiments.defaults import default_train
from experiments.demo_data import demo_data
from experiments.soda_models import DEMO_6M, DEMO_RECIPE
from soda_jax import fileio
from soda_jax.contracts import HF_DIR, METRICS_FILE, PROVENANCE_FILE, SUMMARY_FILE
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.execution.parallel import shutdown_workers
from soda_jax.training import CheckpointPolicy

FULL_FLAG = "--full"

demo_model = default_train(
    "demo-6m",
    demo_data(),
    DEMO_6M,
    DEMO_RECIPE,
    gradient_checkpointing=False,  # tiny model: recomputation costs time and saves nothing
    steps_per_eval=40,
    max_eval_batches=4,
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
)


def report_training(step: ExecutorStep, output_path: str) -> None:
    summary = fileio.read_json_or_none(fileio.join(output_path, SUMMARY_FILE))
    if summary is None:
        return
    print(f"\n{step.name}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
          f"final train loss {summary['final_train_loss']:.3f}, validation loss {summary['final_validation_loss']:.3f}")
    print(f"  model for transformers:  {fileio.join(output_path, HF_DIR)}")
    print(f"  metrics per step:        {fileio.join(output_path, METRICS_FILE)}")
    print(f"  provenance:              {fileio.join(output_path, PROVENANCE_FILE)}   (soda info {output_path})")


def main(argv: list[str]) -> None:
    steps: list[ExecutorStep] = [demo_model]
    if FULL_FLAG in argv:
        from experiments.isoflop_mini import build_mini_sweep

        steps += build_mini_sweep()
    report = executor_main(steps, description="soda-jax demo: synthesised speech -> tokens -> trained model",
                           args=[a for a in argv if a != FULL_FLAG])
    if report is not None:
        shutdown_workers()  # flush the workers' logs before the summary
        report_training(demo_model, report.output_paths[demo_model.name])
        print(f"\nevery step, its provenance and metrics in a browser:  soda dashboard --prefix {report.prefix}")


if __name__ == "__main__":
    main(sys.argv[1:])
