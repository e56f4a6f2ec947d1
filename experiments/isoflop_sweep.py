"""SODA's isoFLOP sweep (59 runs over forward budgets 1e18..1e20 = training 3e18..3e20) + analysis.

    python experiments/isoflop_sweep.py --print_grid          # the grid, nothing else
    python experiments/isoflop_sweep.py --prefix gs://bucket/soda --dry_run

Each run trains a catalogue-rule Qwen3 model on the SODA mix with the sweep's Cautious recipe
(its own lr and beta2, no z-loss); one analysis step fits the laws and draws the plots.
"""

from __future__ import annotations

import logging
import sys

from experiments._defaults_scaling import default_scaling_analysis
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.scaling.levanter_configs import cautious_config, qwen3_config
from soda_jax.scaling.sweep import SweepRules, SweepRun, format_grid, isoflop_grid

logger = logging.getLogger(__name__)

SWEEP_RULES = SweepRules()
"""SODA's rules and budgets (see soda_jax.scaling.sweep)."""
PRINT_GRID_FLAG = "--print_grid"


def sweep_train_step(run: SweepRun, data) -> ExecutorStep:
    """The training step of one sweep run (checkpoints/isoflop/<run name>)."""
    from experiments.defaults import default_train  # written by the lead from _defaults_train.py

    return default_train(
        name=f"checkpoints/isoflop/{run.name}",
        data=data,
        model_config=qwen3_config(run.shape, run.seq_len),
        optimizer_config=cautious_config(run),
        train_batch_size=run.batch_size,
        num_train_steps=run.steps,
        z_loss_weight=0.0,
    )


def build_sweep(data, rules: SweepRules = SWEEP_RULES, name: str = "analysis/isoflop-soda") -> list[ExecutorStep]:
    """Every training step of the sweep, then the analysis step over them (last)."""
    train_steps = [sweep_train_step(run, data) for run in isoflop_grid(rules)]
    return [*train_steps, default_scaling_analysis(name, train_steps)]


def soda_mix_data():
    """The SODA final mix over the tokenized caches (wired by the lead: experiments/defaults.py)."""
    from experiments.defaults import soda_final_data  # the cache steps of the real corpus

    return soda_final_data()


def main(argv: list[str]) -> None:
    print(format_grid(isoflop_grid(SWEEP_RULES)))
    if PRINT_GRID_FLAG in argv:
        return
    executor_main(build_sweep(soda_mix_data()), description="SODA isoFLOP sweep", args=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
