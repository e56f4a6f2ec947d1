"""isoFLOP sweep design: SODA's grid of (model shape, batch, steps, lr, beta2) per compute budget.

For each budget C (FORWARD FLOPs, see `soda_jax.models.flops`), every hidden size h on the grid
gets a Qwen3-style model with ``round(h / (64 + 4 log2 h - 7))`` layers, h/128 heads of 128 dims
and a 4h SwiGLU MLP. The batch is the power of two that reaches C in about ``target_steps`` steps,
halved while the learning rate ``0.33 sqrt(B) / h`` exceeds 0.01; the step count then fills the
budget exactly (rounded to whole steps). Runs off by more than 1% of C, longer than 400k steps or
with B < 8 are dropped (``fixed_batch_size``: one batch for every run, the lr clipped at the cap,
``fixed_num_layers``: one depth, ``fixed_num_heads``: one head count; the mini sweep's levers).
Training compute is ``TRAINING_FLOPS_MULTIPLIER`` x the forward budget: SODA's forward budgets
1e18 .. 1e20 are the paper's 3e18 .. 3e20.

Shapes are `soda_jax.models.ModelShape`s; `sweep_recipe(run)` is a run's `TrainRecipe` for the
project's training step (its lr and beta2, `SWEEP_OPTIMIZER`'s other settings, no z-loss).

`isoflop_grid(SweepRules())` is the 59 runs SODA's generator keeps. The paper's 64 add five of seven
wide targets SODA placed by hand (d 2048-3072 at the top budgets), which these rules cannot produce:
d=2048 is off the 256-step grid above 9e18 and wider is past ``max_hidden``; `plan_run` plans them
(docs/design-studies.md, "The isoFLOP grid and SODA's 64 runs").
"""

from __future__ import annotations

import dataclasses
import logging
import math

from soda_jax.audio.vocab import SODA_VOCAB_SIZE
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.models.shapes import ModelShape
from soda_jax.training.recipe import SODA_SEQ_LEN, OptimizerRecipe, TrainRecipe

logger = logging.getLogger(__name__)

SODA_FORWARD_BUDGETS = (1e18, 3e18, 6e18, 1e19, 3e19, 6e19, 1e20)
"""Budgets of SODA's sweep generator, in forward FLOPs (x3 = the paper's training FLOPs)."""


@dataclasses.dataclass(frozen=True)
class SweepRules:
    """The rules that turn budgets into runs. Defaults are SODA's sweep."""

    budgets: tuple[float, ...] = SODA_FORWARD_BUDGETS
    """Compute budgets in FORWARD FLOPs (per-token forward FLOPs x tokens)."""
    vocab_size: int = SODA_VOCAB_SIZE
    """Vocabulary size (sets the LM-head and embedding cost)."""
    seq_len: int = SODA_SEQ_LEN
    """Training sequence length."""
    target_steps: int = 2**16
    """Steps the batch size is chosen to reach the budget in."""
    min_hidden: int = 2**7
    """Smallest hidden size on the grid."""
    max_hidden: int = 2**11
    """Largest hidden size on the grid (inclusive)."""
    hidden_step: int = 128
    """Grid spacing of hidden sizes at small budgets."""
    wide_hidden_step: int = 256
    """Grid spacing of hidden sizes above ``wide_step_above_budget``."""
    wide_step_above_budget: float = 9e18
    """Forward budget above which the coarser spacing is used."""
    layer_base: float = 64
    """Depth rule: layers = round(h / (layer_base + layer_log_slope * log2 h - layer_offset))."""
    layer_log_slope: float = 4
    """See ``layer_base``."""
    layer_offset: float = 7
    """See ``layer_base``."""
    fixed_num_layers: int | None = None
    """Every run's depth, whatever its width, instead of the depth rule. None: the rule. With
    tiny widths the rule's depth jumps (1 -> 2 layers between d=40 and d=48 in the mini sweep)
    change a model's capability far more than its parameters or FLOPs, so an isoFLOP curve steps
    where the depth does (docs/scaling.md)."""
    hidden_per_head: int = 128
    """heads = hidden // hidden_per_head (at least 1); head_dim = hidden_per_head; kv_heads = heads."""
    fixed_num_heads: int | None = None
    """Every run's number of heads, whatever its width (head_dim = hidden / heads, so heads x
    head_dim = hidden at every width) instead of ``hidden_per_head``. None: the head-width rule.
    Tiny widths cannot keep one head width: 8-dim heads exist only at multiples of 8, and 4-dim
    heads cost the mini sweep 0.13-0.18 of loss against two heads (docs/scaling.md)."""
    mlp_ratio: int = 4
    """intermediate = mlp_ratio * hidden."""
    lr_constant: float = 0.33
    """lr = lr_constant * sqrt(batch) / hidden."""
    max_learning_rate: float = 0.01
    """The batch is halved until lr <= this (with ``fixed_batch_size``: the lr is clipped at this)."""
    beta2_base: float = 0.98
    """beta2 = beta2_base ** (batch / beta2_batch_unit): constant decay per token seen."""
    beta2_batch_unit: int = 128
    """See ``beta2_base``."""
    flop_tolerance: float = 0.01
    """Runs whose FLOPs miss the budget by more than this fraction are dropped."""
    max_steps: int = 400_000
    """Runs must take fewer steps than this."""
    min_batch_size: int = 8
    """Runs with a smaller batch are dropped."""
    fixed_batch_size: int | None = None
    """Every run's batch, whatever its width and budget (steps fill the budget; the learning rate
    is the rule's, clipped at ``max_learning_rate``: narrow widths, whose rule lr passes the cap,
    train at the cap). None: SODA's rule (halve the batch until the lr is under the cap).
    Along an isoFLOP curve only the width then changes: with SODA's rule the batch doubles between
    some neighbouring widths and halves their steps, which dominates short runs (docs/scaling.md)."""

    warmup_steps: int | None = None
    """Every run's linear warmup, in steps, whatever its length. None: the optimizer's fraction
    (SODA's 10%). A fixed warmup makes the runs of one width identical until the shorter one's
    decay starts, so they can branch off one another (`stable_chain`, docs/scaling.md)."""

    def hidden_step_for(self, budget: float) -> int:
        """Spacing of hidden sizes at this budget."""
        return self.wide_hidden_step if budget > self.wide_step_above_budget else self.hidden_step

    def hidden_sizes(self, budget: float) -> list[int]:
        """Hidden sizes on the grid for this budget."""
        return list(range(self.min_hidden, self.max_hidden + 1, self.hidden_step_for(budget)))

    def shape_for_hidden(self, hidden: int) -> ModelShape:
        """The grid's rule: depth, heads and MLP width from the hidden size. (The catalogue's named
        sizes follow another: SODA-150M keeps the 135M's width and deepens it to 150M parameters,
        `soda_jax.models.catalogue.SODA_150M`; this rule at d=512 gives a 6-layer model.)"""
        denominator = self.layer_base + self.layer_log_slope * math.log2(hidden) - self.layer_offset
        if self.fixed_num_heads:
            heads, head_dim = self.fixed_num_heads, hidden // self.fixed_num_heads
            if head_dim * heads != hidden or head_dim % 2:  # rotary embeddings rotate pairs of dims
                raise ValueError(f"hidden {hidden} does not split into {heads} heads of an even width")
        else:
            heads, head_dim = max(1, hidden // self.hidden_per_head), self.hidden_per_head
        return ModelShape(
            hidden_dim=hidden,
            intermediate_dim=self.mlp_ratio * hidden,
            num_layers=self.fixed_num_layers or max(1, round(hidden / denominator)),
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=head_dim,
        )

    def learning_rate(self, batch_size: int, hidden: int) -> float:
        """lr = lr_constant * sqrt(batch) / hidden."""
        return self.lr_constant * math.sqrt(batch_size) / hidden

    def beta2(self, batch_size: int) -> float:
        """beta2 = beta2_base ** (batch / beta2_batch_unit)."""
        return self.beta2_base ** (batch_size / self.beta2_batch_unit)


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One training run of the sweep."""

    budget: float
    """Target forward FLOPs."""
    shape: ModelShape
    """Model architecture."""
    batch_size: int
    """Sequences per step."""
    steps: int
    """Training steps."""
    learning_rate: float
    """Peak learning rate."""
    beta2: float
    """Adam beta2."""
    seq_len: int
    """Tokens per sequence."""
    vocab_size: int
    """Vocabulary size."""
    warmup_steps: int | None = None
    """Linear warmup steps (None: the optimizer's fraction of ``steps``)."""

    @property
    def tokens(self) -> int:
        """Training tokens D."""
        return self.batch_size * self.steps * self.seq_len

    @property
    def flops_per_token(self) -> int:
        """Forward FLOPs per token."""
        return self.shape.forward_flops_per_token(self.vocab_size, self.seq_len)

    @property
    def forward_flops(self) -> int:
        """Achieved forward FLOPs (compare with ``budget``)."""
        return self.flops_per_token * self.tokens

    @property
    def training_flops(self) -> int:
        """Achieved training FLOPs: the paper's C."""
        return TRAINING_FLOPS_MULTIPLIER * self.forward_flops

    @property
    def params(self) -> int:
        """Total parameters N, embeddings and LM head included."""
        return self.shape.param_counts(self.vocab_size).total

    @property
    def name(self) -> str:
        """Run name: budget (3 significant digits: sqrt(2)-spaced budgets stay apart), width, depth, batch."""
        shape = self.shape
        return f"isoflop-{self.budget:.3g}-d{shape.hidden_dim}-L{shape.num_layers}-B{self.batch_size}"


SWEEP_OPTIMIZER = OptimizerRecipe(beta1=0.95, epsilon=1e-15, weight_decay=0.1)
"""SODA's sweep optimizer apart from lr and beta2, which come from each run: Cautious with
decoupled ("AdamC") weight decay, 10% warmup, linear decay over the last 20%, clip 1."""


def sweep_recipe(run: SweepRun, optimizer: OptimizerRecipe = SWEEP_OPTIMIZER, *, seed: int = 0) -> TrainRecipe:
    """The `TrainRecipe` of a sweep run: its sequence length, batch, steps, lr and beta2, the
    sweep's other optimizer settings (the run's warmup, when it has one in steps), and no z-loss
    (SODA's sweep trains without it)."""
    warmup = optimizer.warmup if run.warmup_steps is None else float(run.warmup_steps)
    return TrainRecipe(
        seq_len=run.seq_len,
        batch_size=run.batch_size,
        num_train_steps=run.steps,
        optimizer=dataclasses.replace(optimizer, learning_rate=run.learning_rate, beta2=run.beta2, warmup=warmup),
        z_loss_weight=0.0,
        seed=seed,
    )


def next_power_of_two(x: float) -> int:
    """Smallest power of two >= x (1 for x <= 1)."""
    return 1 if x <= 1 else 2 ** math.ceil(math.log2(x))


@dataclasses.dataclass(frozen=True)
class DroppedRun:
    """A (budget, shape) the sweep rules leave out, and which rule did."""

    budget: float
    """Target forward FLOPs."""
    shape: ModelShape
    """The model that was considered."""
    reason: str
    """The rule that dropped it, with the numbers."""


def plan_run(rules: SweepRules, budget: float, shape: ModelShape) -> SweepRun | DroppedRun:
    """The run of ``shape`` at ``budget`` under ``rules``, or why the rules drop it."""
    flops_per_sequence = shape.forward_flops_per_token(rules.vocab_size, rules.seq_len) * rules.seq_len
    if rules.fixed_batch_size is not None:
        batch_size = rules.fixed_batch_size
        learning_rate = min(rules.learning_rate(batch_size, shape.hidden_dim), rules.max_learning_rate)
    else:
        batch_size = next_power_of_two(budget / (flops_per_sequence * rules.target_steps))
        while rules.learning_rate(batch_size, shape.hidden_dim) > rules.max_learning_rate and batch_size > 1:
            batch_size //= 2
        learning_rate = rules.learning_rate(batch_size, shape.hidden_dim)
    if batch_size < rules.min_batch_size:
        return DroppedRun(budget, shape, f"batch {batch_size} < {rules.min_batch_size}")
    steps = round(budget / (flops_per_sequence * batch_size))
    if steps < 1:
        return DroppedRun(budget, shape, f"one step of batch {batch_size} exceeds the budget")
    if steps >= rules.max_steps:
        return DroppedRun(budget, shape, f"{steps} steps >= {rules.max_steps}")
    run = SweepRun(
        budget=budget,
        shape=shape,
        batch_size=batch_size,
        steps=steps,
        learning_rate=learning_rate,
        beta2=rules.beta2(batch_size),
        seq_len=rules.seq_len,
        vocab_size=rules.vocab_size,
        warmup_steps=rules.warmup_steps,
    )
    miss = abs(run.forward_flops - budget) / budget
    if miss > rules.flop_tolerance:
        return DroppedRun(budget, shape, f"FLOPs miss the budget by {miss:.1%} > {rules.flop_tolerance:.1%}")
    return run


def run_for_shape(rules: SweepRules, budget: float, shape: ModelShape) -> SweepRun | None:
    """The run of ``shape`` at ``budget``, or None when the rules drop it (`plan_run` says why)."""
    planned = plan_run(rules, budget, shape)
    return planned if isinstance(planned, SweepRun) else None


def runs_for_budget(rules: SweepRules, budget: float) -> list[SweepRun]:
    """All kept runs at one budget, smallest model first."""
    runs = []
    for hidden in rules.hidden_sizes(budget):
        run = run_for_shape(rules, budget, rules.shape_for_hidden(hidden))
        if run is None:
            logger.debug("budget %.1e: d=%d dropped by the sweep rules", budget, hidden)
        else:
            runs.append(run)
    return runs


def stable_chain(rules: SweepRules, run: SweepRun) -> list[SweepRun]:
    """The runs of ``run``'s shape at each of the rules' budgets up to ``run``'s own, ascending (the
    ones the rules keep; ``run`` last). With a fixed warmup (``warmup_steps``) their schedules agree
    until each one's decay starts, so ``run`` can be trained as a chain of stable segments, one per
    budget, each continuing the last, and then its own decay (`soda_jax.recipes.isoflop_sweep`). The
    chain depends on the rules and the run alone, not on which other runs a grid holds, so runs
    added later share the segments already trained."""
    chain = [run_for_shape(rules, budget, run.shape) for budget in sorted(rules.budgets) if budget < run.budget]
    return [*(r for r in chain if r is not None), run]


def isoflop_grid(rules: SweepRules = SweepRules()) -> list[SweepRun]:
    """Every run of the sweep, by budget then model size."""
    return [run for budget in rules.budgets for run in runs_for_budget(rules, budget)]


def format_grid(runs: list[SweepRun]) -> str:
    """A table of the grid: budget, params, d, L, B, steps, tokens, lr, beta2."""
    header = (
        f"{'budget(fwd)':>11} {'C(train)':>9} {'params':>8} {'d':>5} {'L':>3} {'B':>5} "
        f"{'steps':>7} {'tokens':>9} {'lr':>8} {'beta2':>6}"
    )
    lines = [header]
    for run in runs:
        lines.append(
            f"{run.budget:>11.1e} {run.training_flops:>9.2e} {run.params:>8.3g} {run.shape.hidden_dim:>5} "
            f"{run.shape.num_layers:>3} {run.batch_size:>5} {run.steps:>7} {run.tokens:>9.3g} "
            f"{run.learning_rate:>8.5f} {run.beta2:>6.4f}"
        )
    return "\n".join(lines)
