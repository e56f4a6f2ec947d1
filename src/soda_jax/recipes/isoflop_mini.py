"""A real miniature isoFLOP sweep on the demo corpus, small enough for a 2-core CPU.

    python experiments/isoflop_mini.py --print_grid
    python experiments/isoflop_mini.py --prefix ./demo-output [executor flags...]
    python experiments/demo.py --prefix ./demo-output --full     # the demo and this sweep, together

30 tiny Qwen3 models in the first round (d 8..48, 3 layers, 2 heads, seq 256, batch 4): five
widths 8 apart centred on the seventh sweep's law at each of six forward budgets sqrt(2) apart
(3.54e11..2e12 = training 1.06e12..6e12, a 5.7x span), trained by the project's training step on the
demo mix over a larger reading of the demo corpus (its 40 sentences read 16 times per layout by 32
voices: 0.6M training tokens, 155k held out), text by a 512-id BPE (vocabulary 16,900), every run
validated on the same 64 held-out sequences per component and evaluated, then the proposals
(`--rounds N`: up to N rounds that extend a budget whose minimum sits at an edge) and the scaling
analysis: SODA's fitted loss (held-out speech NLL, token-weighted), capability-vs-loss curves, and
one reference run starred on them as SODA's final models are on theirs (`MINI_REFERENCE`: the
prior's N* at sqrt(2) times the top budget, branched off its width's trunk: a few minutes). SODA's
rules, rescaled, with one batch, one depth, one head count and one warmup (50 steps) for every run
(`fixed_batch_size`, `fixed_num_layers`, `fixed_num_heads`, `warmup_steps`: with SODA's batch and
depth rules the third sweep's curves stepped where the batch or the depth jumped; the fourth sweep's
4-dim heads cost it 0.13-0.18 of loss). The fixed warmup lets a width's runs branch off one trunk
(`BranchedSweepSteps`): each run is its width's stable segments up to its budget plus its own decay,
the same run at half the cost. Tiny budgets are far from the paper's regime (the embeddings and LM
head are ~95% of these models' parameters, 40 sentences are little text): read the fits as this
corpus's law, not SODA's.

Measured: docs/scaling.md ("Miniature sweep on CPU") has each sweep's table, plots, time and the
probes behind these rules.
"""

from __future__ import annotations

from soda_jax.audio.vocab import audio_text_vocab_size
from soda_jax.data.synth import CHORUS_VOICES, DEFAULT_SENTENCES
from soda_jax.eval.tasks import ValidationNllTask, mini_pair_tasks
from soda_jax.execution import ExecutorStep, prefix_path
from soda_jax.recipes.adaptive_sweep import AdaptiveSweep, run_adaptive_sweep
from soda_jax.recipes.defaults import (
    DEMO_CODEC,
    default_bpe_tokenizer,
    default_eval,
    default_scaling_analysis,
)
from soda_jax.recipes.demo_data import demo_data
from soda_jax.recipes.demo_eval import DEMO_EVAL_BATCH, mini_tasksets
from soda_jax.recipes.isoflop_sweep import PRINT_GRID_FLAG, BranchedSweepSteps
from soda_jax.scaling.adaptive import AdaptiveLimits, centered_grid
from soda_jax.scaling.fits import PowerLaw
from soda_jax.scaling.sweep import SweepRules, format_grid, run_for_shape
from soda_jax.training import CheckpointPolicy

MINI_ANALYSIS = "analysis/isoflop-mini"
"""The mini sweep's analysis step (``{MINI_ANALYSIS}-proposals``: its proposals steps)."""
MINI_TEXT_VOCAB = 512
"""Text ids of the sweep's BPE (256 bytes, 4 specials, 252 merges of the corpus's sentences)."""

MINI_VOCAB_SIZE = audio_text_vocab_size(MINI_TEXT_VOCAB)
"""The sweep's vocabulary: 512 BPE text ids + 4 markers + 16,384 audio ids = 16,900 (the demo's
Mistral-based one has 48,388: its LM head and embeddings were most of every tiny model)."""

mini_text_tokenizer = default_bpe_tokenizer(f"demo-bpe-{MINI_TEXT_VOCAB}", DEFAULT_SENTENCES, MINI_TEXT_VOCAB)

MINI_WARMUP_STEPS = 50
"""Every run's warmup, in steps (51k tokens), whatever its budget: what 10% was for the shortest
runs (31-40 steps) and a fifth of it for the longest, so that the runs of one width take identical
steps until each one's decay starts and branch off one trunk (`BranchedSweepSteps`)."""

MINI_RULES = SweepRules(
    budgets=(3.54e11, 5e11, 7.07e11, 1e12, 1.41e12, 2e12),  # sqrt(2) apart: a 5.7x span of C
    vocab_size=MINI_VOCAB_SIZE,
    seq_len=256,
    min_hidden=8,
    max_hidden=256,
    hidden_step=8,  # neighbours 1.3-2x apart in N: the curvature of a budget's curve clears a run's noise
    wide_hidden_step=8,
    fixed_batch_size=4,  # one batch for every run: the third sweep's curves zig-zagged with SODA's batch rule
    min_batch_size=4,
    fixed_num_layers=3,  # one depth: the rule's 1 -> 2 layer jump at d=48 stepped the third sweep's curves
    fixed_num_heads=2,  # head_dim = d / 2: heads x head_dim = d at every width 4 apart (4-dim heads cost 0.13-0.18)
    max_learning_rate=0.06,  # the lr rule's 0.33 sqrt(4) / d, clipped (only d=8 is: 0.083 -> 0.06)
    max_steps=20_000,
    warmup_steps=MINI_WARMUP_STEPS,  # one warmup for every length: a width's runs branch off one trunk
)
"""SODA's rules scaled down to CPU size (see the module docstring)."""

MINI_LIMITS = AdaptiveLimits(min_hidden=8, max_hidden=256)
"""Narrower than d=8 (two 4-dim heads) is not a model; wider than 256 does not fit the CPU budget."""

MINI_PRIOR = PowerLaw(coefficient=0.63e6 / 1.06e12**0.35, exponent=0.35)
"""Where the first grid centres each budget (N* of training FLOPs C): the seventh sweep's law,
N* = 0.63M at C = 1.06e12 growing as C^0.35 (docs/scaling.md), so that the first round brackets
most budgets by itself. The adaptive rounds correct it where it is off."""

MINI_FIRST_GRID = tuple(centered_grid(MINI_RULES, MINI_PRIOR, runs_each_side=2, limits=MINI_LIMITS))
"""Round 0: five widths per budget around `MINI_PRIOR` (the window slides inwards at d=8)."""

MINI_COMPILATION_CACHE = prefix_path("jax-cache")
"""One JAX compilation cache for every step of the sweep: a width's segments, runs and evaluations
compile the same programs (a step's fixed cost is mostly compilation: ~5 s of a 10-15 s overhead)."""

MINI_TRAIN_OPTIONS = dict(
    gradient_checkpointing=False,  # tiny models: recomputation costs time and saves nothing
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),  # runs of a minute or two: final only
    compilation_cache_dir=MINI_COMPILATION_CACHE,
    export_hf=False,  # the evaluations read the levanter checkpoint; no transformers copy of 40 tiny models
)
"""`TrainConfig` settings of every mini-sweep run (none of them changes a run's version)."""

MINI_VALIDATION_SEQUENCES = 64
"""Held-out sequences per data component behind each run's validation loss (the loss the fits use).
The same 64 for every run, whatever its batch: `mini_train_steps` sets ``max_eval_batches`` to 64 / B
(the first sweep evaluated 4 batches, so its batch-2 runs were scored on 8 sequences, its batch-16
runs on 64: noise of a few hundredths between neighbouring widths)."""

MINI_READINGS = 16
"""The sweep's corpus reads the demo sentences 16 times per layout (the most 32 voices allow):
0.6M training tokens; the demo's own corpus (45k tokens) would be repeated ~50 times."""

MINI_EVAL_DOCUMENTS = 16
"""Validation documents per cache scored by the per-kind NLL of each run."""

MINI_EVAL_TASKS = (
    ValidationNllTask(max_documents=MINI_EVAL_DOCUMENTS),
    *mini_pair_tasks(mini_tasksets),
)
"""What every run is evaluated on: validation NLL by token kind and the four likelihood-pair tasks
(no generation: ASR and TTS of these models would be noise, and slow on CPU)."""

MINI_CAPABILITY_METRICS = (
    "validation_nll/text/loss",
    "validation_nll/semantic/loss",
    "validation_nll/acoustic/loss",
    "swuggy/accuracy",
    "twuggy/accuracy",
    "sblimp/accuracy",
    "tblimp/accuracy",
)
"""Eval metrics the analysis fits against the fitted loss (held-out speech NLL)."""


MINI_REFERENCE_BUDGET = 2.83e12
"""The reference run's forward budget: sqrt(2) past the grid's top (2e12), the next budget the grid would have."""
MINI_REFERENCE_HIDDEN = 40
"""The reference run's width: `MINI_PRIOR`'s N* at that budget (1.3M parameters) is nearest d=40 (1.43M)."""
MINI_REFERENCE = run_for_shape(MINI_RULES, MINI_REFERENCE_BUDGET, MINI_RULES.shape_for_hidden(MINI_REFERENCE_HIDDEN))
"""The mini sweep's "final model": trained and evaluated as every sweep run, left out of every fit and
starred on the capability plots (1,692 steps, 736 of them past its width's d=40 trunk at 2e12)."""


def mini_sweep_data():
    """The demo mix over the demo corpus read `MINI_READINGS` times, text by the sweep's BPE."""
    return demo_data(MINI_READINGS, CHORUS_VOICES, mini_text_tokenizer)


def mini_train_steps(data) -> BranchedSweepSteps:
    """The sweep's training steps on ``data``: ``checkpoints/isoflop/<run>``, each branched off its
    width's stable segments and validated on `MINI_VALIDATION_SEQUENCES` per component."""
    assert MINI_RULES.fixed_batch_size is not None, "the mini sweep trains every run on one batch size"
    eval_batches = max(1, MINI_VALIDATION_SEQUENCES // MINI_RULES.fixed_batch_size)
    return BranchedSweepSteps(MINI_RULES, data, **MINI_TRAIN_OPTIONS, max_eval_batches=eval_batches)


def mini_eval_step(train_step: ExecutorStep) -> ExecutorStep:
    """``evaluation/isoflop/<run>``: `MINI_EVAL_TASKS` on a sweep run's final checkpoint."""
    name = train_step.name.removeprefix("checkpoints/")
    return default_eval(
        name,
        train_step,
        MINI_EVAL_TASKS,
        codec=DEMO_CODEC,
        batch_size=DEMO_EVAL_BATCH,
        compilation_cache_dir=MINI_COMPILATION_CACHE,
    )


def mini_reference_steps(train_step: BranchedSweepSteps) -> tuple[ExecutorStep, ExecutorStep]:
    """`MINI_REFERENCE`'s training and evaluation steps."""
    if MINI_REFERENCE is None:
        raise ValueError(f"the mini rules drop d={MINI_REFERENCE_HIDDEN} at {MINI_REFERENCE_BUDGET:.3g}")
    reference = train_step(MINI_REFERENCE)
    return reference, mini_eval_step(reference)


def build_mini_sweep(data=None) -> list[ExecutorStep]:
    """The mini sweep's first-round training and evaluation steps on ``data`` (`mini_sweep_data()`
    by default), then its analysis step (last), which also reads the reference run (its steps are
    the analysis's dependencies)."""
    train_step = mini_train_steps(mini_sweep_data() if data is None else data)
    train_steps = [train_step(run) for run in MINI_FIRST_GRID]
    eval_steps = [mini_eval_step(step) for step in train_steps]
    reference, reference_eval = mini_reference_steps(train_step)
    analysis = default_scaling_analysis(
        MINI_ANALYSIS,
        train_steps,
        eval_steps=eval_steps,
        num_bootstrap=500,
        capability_metrics=MINI_CAPABILITY_METRICS,
        reference_train_steps=[reference],
        reference_eval_steps=[reference_eval],
    )
    return [*train_steps, *eval_steps, analysis]


def mini_adaptive_sweep(data=None) -> AdaptiveSweep:
    """The mini sweep as an adaptive sweep: `MINI_RULES`' grid first, then the runs that bracket each
    budget; every run evaluated, and `MINI_REFERENCE` beside them."""
    train_step = mini_train_steps(mini_sweep_data() if data is None else data)
    return AdaptiveSweep(
        name=MINI_ANALYSIS,
        rules=MINI_RULES,
        first_grid=MINI_FIRST_GRID,
        train_step_for=train_step,
        limits=MINI_LIMITS,
        num_bootstrap=500,
        eval_step_for=mini_eval_step,
        capability_metrics=MINI_CAPABILITY_METRICS,
        references=(mini_reference_steps(train_step),),
    )


def main(argv: list[str]) -> None:
    print(format_grid(list(MINI_FIRST_GRID)))
    if PRINT_GRID_FLAG in argv:
        return
    run_adaptive_sweep(mini_adaptive_sweep(), argv, description="isoFLOP mini sweep (demo corpus)")
