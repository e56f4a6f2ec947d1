"""A real miniature isoFLOP sweep on the demo corpus, small enough for a 2-core CPU.

    python experiments/isoflop_mini.py --print_grid
    python experiments/isoflop_mini.py --prefix ./demo-output [executor flags...]
    python experiments/demo.py --prefix ./demo-output --full     # the demo, then this sweep

12 tiny Qwen3 models (d 32..128, 1-3 layers, 32-dim heads, seq 256) over three forward budgets
(5e11, 1e12, 3e12 = training 1.5e12..9e12; 4 widths each), 2.85M training tokens in all, trained
by the project's training step on the demo mix over a larger reading of the demo corpus (its 40
sentences read 16 times per layout by 32 voices: 0.6M training tokens, 155k held out), then the
scaling analysis. The same rules as SODA's sweep, rescaled: tiny budgets are far from the paper's
regime (the 48k-id LM head and embeddings are most of every model's parameters and FLOPs, the
largest run sees its corpus 1.6 times, and 40 sentences are little text): read the fits as a
working pipeline on real runs, not as SODA's exponents.

Measured on the shared 2-core CPU (2026-11-25): 15.5 minutes from an empty prefix (data 1.8 min,
runs 56-324 s each, two at a time); the smallest model wins every budget and the largest budget has
no interior minimum (docs/scaling.md has the table, fits and plots).
"""

from __future__ import annotations

import sys

from experiments.adaptive_sweep import AdaptiveSweep, run_adaptive_sweep
from experiments.defaults import default_scaling_analysis
from experiments.demo_data import demo_data
from experiments.isoflop_sweep import PRINT_GRID_FLAG, sweep_train_step
from soda_jax.audio.text_tokenizers import MISTRAL_V1_TEXT_SIZE
from soda_jax.audio.vocab import audio_text_vocab_size
from soda_jax.data.synth import CHORUS_VOICES
from soda_jax.execution import ExecutorStep
from soda_jax.scaling.adaptive import AdaptiveLimits
from soda_jax.scaling.sweep import SweepRules, format_grid, isoflop_grid
from soda_jax.training import CheckpointPolicy

DEMO_VOCAB_SIZE = audio_text_vocab_size(MISTRAL_V1_TEXT_SIZE)
"""Demo vocab: Mistral v1 SentencePiece (32,000) + 4 specials + 16,384 audio ids (48,388)."""

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

MINI_LIMITS = AdaptiveLimits(min_hidden=16, max_hidden=256)
"""Narrower than d=16 (a single 16-dim head) is not a model; wider than 256 does not fit the CPU budget."""

MINI_TRAIN_OPTIONS = dict(
    gradient_checkpointing=False,  # tiny models: recomputation costs time and saves nothing
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),  # runs of a minute or two: final only
    max_eval_batches=4,
)
"""`TrainConfig` settings of every mini-sweep run (none of them changes a run's version)."""


MINI_READINGS = 16
"""The sweep's corpus reads the demo sentences 16 times per layout (32 voices): 0.6M training
tokens, so the largest run (0.95M tokens) sees it 1.6 times; the demo's own corpus (45k tokens)
would be repeated ~20 times and its small models overfit."""


def mini_sweep_data():
    """The demo mix over the demo corpus read `MINI_READINGS` times."""
    return demo_data(MINI_READINGS, CHORUS_VOICES)


def build_mini_sweep(data=None) -> list[ExecutorStep]:
    """The mini sweep's training steps on ``data`` (`mini_sweep_data()` by default), then its analysis step (last)."""
    data = mini_sweep_data() if data is None else data
    train_steps = [sweep_train_step(run, data, **MINI_TRAIN_OPTIONS) for run in isoflop_grid(MINI_RULES)]
    return [*train_steps, default_scaling_analysis("analysis/isoflop-mini", train_steps, num_bootstrap=500)]


def mini_adaptive_sweep(data=None) -> AdaptiveSweep:
    """The mini sweep as an adaptive sweep: `MINI_RULES`' grid first, then the runs that bracket each budget."""
    data = mini_sweep_data() if data is None else data
    return AdaptiveSweep(
        name="analysis/isoflop-mini",
        rules=MINI_RULES,
        first_grid=tuple(isoflop_grid(MINI_RULES)),
        train_step_for=lambda run: sweep_train_step(run, data, **MINI_TRAIN_OPTIONS),
        limits=MINI_LIMITS,
        num_bootstrap=500,
    )


def main(argv: list[str]) -> None:
    print(format_grid(isoflop_grid(MINI_RULES)))
    if PRINT_GRID_FLAG in argv:
        return
    run_adaptive_sweep(mini_adaptive_sweep(), argv, description="isoFLOP mini sweep (demo corpus)")


if __name__ == "__main__":
    main(sys.argv[1:])
