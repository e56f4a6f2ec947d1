"""A real miniature isoFLOP sweep on the demo corpus, small enough for a 2-core CPU.

    python experiments/isoflop_mini.py --print_grid
    python experiments/isoflop_mini.py --prefix ./mini-output [executor flags...]

14 tiny Qwen3 models (d 32..160, 1-4 layers, 32-dim heads, seq 256) over three forward budgets
(1e12, 4e12, 1.6e13 = training 3e12..4.8e13), about 14M training tokens in all, then the scaling
analysis. The same rules as SODA's sweep, rescaled: tiny budgets are far from the paper's regime
(the LM head is most of every model), so read the fits as a working pipeline, not as science.
"""

from __future__ import annotations

import sys

from experiments._defaults_scaling import default_scaling_analysis
from experiments.isoflop_sweep import PRINT_GRID_FLAG, sweep_train_step
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.scaling.sweep import SweepRules, format_grid, isoflop_grid

DEMO_VOCAB_SIZE = 48_388
"""Demo vocab: Mistral v1 SentencePiece (32,000) + 4 specials + 16,384 audio ids."""

MINI_RULES = SweepRules(
    budgets=(1e12, 4e12, 1.6e13),
    vocab_size=DEMO_VOCAB_SIZE,
    seq_len=256,
    target_steps=256,
    min_hidden=32,
    max_hidden=160,
    hidden_step=32,
    wide_hidden_step=32,
    layer_base=16,  # SODA's 64 would give these widths zero layers
    hidden_per_head=32,
    max_learning_rate=0.03,  # tiny models tolerate (and need) larger steps
    min_batch_size=2,
    max_steps=5000,
)
"""SODA's rules scaled down to CPU size (see the module docstring)."""


def build_mini_sweep(data) -> list[ExecutorStep]:
    train_steps = [sweep_train_step(run, data) for run in isoflop_grid(MINI_RULES)]
    return [*train_steps, default_scaling_analysis("analysis/isoflop-mini", train_steps, num_bootstrap=500)]


def demo_data():
    """The demo corpus' token caches (wired by the lead in experiments/defaults.py)."""
    from experiments.defaults import demo_data as defaults_demo_data

    return defaults_demo_data()


def main(argv: list[str]) -> None:
    print(format_grid(isoflop_grid(MINI_RULES)))
    if PRINT_GRID_FLAG in argv:
        return
    executor_main(build_mini_sweep(demo_data()), description="isoFLOP mini sweep (demo corpus)", args=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
