"""A real miniature isoFLOP sweep on the demo corpus, small enough for a 2-core CPU.

    python experiments/isoflop_mini.py --print_grid
    python experiments/isoflop_mini.py --prefix ./demo-output [executor flags...]
    python experiments/demo.py --prefix ./demo-output --full     # the demo, then this sweep

12 tiny Qwen3 models (d 32..128, 1-3 layers, 32-dim heads, seq 256) over three forward budgets
(5e11, 1e12, 3e12 = training 1.5e12..9e12; 4 widths each), 2.85M training tokens in all, trained
by the project's training step on the demo mix (`experiments.demo.demo_data`), then the scaling
analysis. The same rules as SODA's sweep, rescaled: tiny budgets are far from the paper's regime
(the 48k-id LM head and embeddings are most of every model's parameters and FLOPs, and the demo
corpus is ~45k tokens, so every run repeats it many times): read the fits as a working pipeline,
not as science.

Cost, measured on the shared 2-core CPU (quiet machine, batch 8 x 256, f32, no gradient
checkpointing): 7.1k tokens/s at d=32, 4.4k at d=64, 3.2k at d=96, 2.5k at d=128 (67-106 GFLOP/s
of training FLOPs); batch 2 runs at about half that per token, batch 4 at ~0.85x. Each run also
pays ~10-15 s of setup, compilation and export. Estimated total for the 12 runs: ~14 minutes
(the largest budget ~8 minutes of it); the 5e11 runs d=32 and d=128 (estimated 80 s) took 88 s
through the executor, Ray start included. Twice that if another job shares the cores.
"""

from __future__ import annotations

import sys

from experiments.defaults import default_scaling_analysis
from experiments.demo import demo_data
from experiments.isoflop_sweep import PRINT_GRID_FLAG, sweep_train_step
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.scaling.sweep import SweepRules, format_grid, isoflop_grid
from soda_jax.training import CheckpointPolicy

DEMO_VOCAB_SIZE = 48_388
"""Demo vocab: Mistral v1 SentencePiece (32,000) + 4 specials + 16,384 audio ids."""

MINI_RULES = SweepRules(
    budgets=(5e11, 1e12, 3e12),
    vocab_size=DEMO_VOCAB_SIZE,
    seq_len=256,
    target_steps=128,
    min_hidden=32,
    max_hidden=128,
    hidden_step=32,
    wide_hidden_step=32,
    layer_base=16,  # SODA's 64 would give these widths zero layers
    hidden_per_head=32,
    max_learning_rate=0.03,  # tiny models tolerate (and need) larger steps
    min_batch_size=2,
    max_steps=5000,
)
"""SODA's rules scaled down to CPU size (see the module docstring)."""

MINI_TRAIN_OPTIONS = dict(
    gradient_checkpointing=False,  # tiny models: recomputation costs time and saves nothing
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),  # runs of a minute or two: final only
    max_eval_batches=4,
)
"""`TrainConfig` settings of every mini-sweep run (none of them changes a run's version)."""


def build_mini_sweep(data) -> list[ExecutorStep]:
    """The mini sweep's training steps on ``data``, then its analysis step (last)."""
    train_steps = [sweep_train_step(run, data, **MINI_TRAIN_OPTIONS) for run in isoflop_grid(MINI_RULES)]
    return [*train_steps, default_scaling_analysis("analysis/isoflop-mini", train_steps, num_bootstrap=500)]


def main(argv: list[str]) -> None:
    print(format_grid(isoflop_grid(MINI_RULES)))
    if PRINT_GRID_FLAG in argv:
        return
    executor_main(build_mini_sweep(demo_data()), description="isoFLOP mini sweep (demo corpus)", args=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
