"""SODA's training recipe in one place: sequence, batch, token budget, learning-rate rule, optimizer.

Final runs (paper, section "Final-run recipe"): seq 4096, batch 512, 500B tokens; Cautious
(AdamW-like, decoupled "AdamC" weight decay) with beta1 = beta2 = 0.98, eps 1e-16, weight decay
0.033, 10% linear warmup, linear decay to 0 over the last 20% (WSD), grad clip 1, z-loss 1e-4,
LR = 0.003 * sqrt(batch / 256) * sqrt(1024 / width).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # levanter (and with it JAX) is imported where the optimizer is built
    from levanter.optim.cautious import CautiousConfig

SODA_SEQ_LEN = 4096
SODA_BATCH_SIZE = 512
SODA_TRAIN_TOKENS = 500_000_000_000

LR_AT_REFERENCE = 0.003
"""Peak learning rate at the reference batch and width."""
LR_REFERENCE_BATCH = 256
LR_REFERENCE_WIDTH = 1024


def soda_learning_rate(batch_size: int, hidden_dim: int) -> float:
    """SODA's peak LR: ``0.003 * sqrt(batch / 256) * sqrt(1024 / width)`` (sqrt batch scaling, 1/sqrt(d) width)."""
    if batch_size <= 0 or hidden_dim <= 0:
        raise ValueError(f"batch_size and hidden_dim must be positive, got {batch_size}, {hidden_dim}")
    return LR_AT_REFERENCE * math.sqrt(batch_size / LR_REFERENCE_BATCH) * math.sqrt(LR_REFERENCE_WIDTH / hidden_dim)


def steps_for_tokens(tokens: int, batch_size: int, seq_len: int) -> int:
    """Optimizer steps to see at least ``tokens`` tokens (500B at 512 x 4096: 238,419 steps)."""
    return math.ceil(tokens / (batch_size * seq_len))


@dataclasses.dataclass(frozen=True)
class OptimizerRecipe:
    """The Cautious optimizer and its schedule. Defaults are SODA's final-run settings."""

    learning_rate: float | None = None
    """Peak LR; None applies `soda_learning_rate` to the run's batch size and model width."""
    beta1: float = 0.98
    """First-moment decay."""
    beta2: float = 0.98
    """Second-moment decay."""
    epsilon: float = 1e-16
    """Adam epsilon."""
    weight_decay: float = 0.033
    """Decoupled weight decay, scaled with the LR schedule (AdamC)."""
    warmup: float = 0.1
    """Linear warmup from 0: a fraction of the run's steps (<= 1), or a whole number of steps (> 1;
    the same for runs of any length, which branching needs: `soda_jax.training.branching`)."""
    decay: float = 0.2
    """Fraction of steps, at the end, of linear decay (warmup-stable-decay)."""
    min_lr_ratio: float = 0.0
    """LR at the end of the decay, as a fraction of the peak."""
    max_grad_norm: float | None = 1.0
    """Global gradient-norm clip (None: no clipping)."""

    def __post_init__(self):
        if self.warmup < 0 or (self.warmup > 1 and self.warmup % 1):
            raise ValueError(
                f"OptimizerRecipe.warmup must be a fraction in 0..1 or a whole number of steps, got {self.warmup}"
            )

    def peak_learning_rate(self, batch_size: int, hidden_dim: int) -> float:
        return self.learning_rate if self.learning_rate is not None else soda_learning_rate(batch_size, hidden_dim)

    def levanter_config(self, batch_size: int, hidden_dim: int) -> CautiousConfig:
        """levanter's `CautiousConfig` for this recipe (``.build(num_steps)`` gives the optax transform)."""
        from levanter.optim.cautious import CautiousConfig

        return CautiousConfig(
            learning_rate=self.peak_learning_rate(batch_size, hidden_dim),
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            weight_decay=self.weight_decay,
            adamc_weight_decay=True,
            max_grad_norm=self.max_grad_norm,
            warmup=self.warmup,
            decay=self.decay,
            min_lr_ratio=self.min_lr_ratio,
            lr_schedule="linear",
        )


@dataclasses.dataclass(frozen=True)
class TrainRecipe:
    """How long and how a model trains. Defaults are SODA's final run (500B tokens)."""

    seq_len: int = SODA_SEQ_LEN
    """Tokens per training sequence (the model's max_seq_len)."""
    batch_size: int = SODA_BATCH_SIZE
    """Sequences per optimizer step (global, across all devices)."""
    num_train_steps: int = steps_for_tokens(SODA_TRAIN_TOKENS, SODA_BATCH_SIZE, SODA_SEQ_LEN)
    """Optimizer steps."""
    optimizer: OptimizerRecipe = OptimizerRecipe()
    """Optimizer and LR schedule."""
    z_loss_weight: float = 1e-4
    """Weight of the log-partition (z) penalty that keeps output logits from drifting."""
    seed: int = 0
    """Seeds model init, data order and dropout keys; a run is reproducible from it."""

    def __post_init__(self):
        for name in ("seq_len", "batch_size", "num_train_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainRecipe.{name} must be positive, got {getattr(self, name)}")

    @property
    def tokens(self) -> int:
        """Training tokens over the whole run."""
        return self.num_train_steps * self.batch_size * self.seq_len


def recipe_for_tokens(
    tokens: int, *, seq_len: int = SODA_SEQ_LEN, batch_size: int = SODA_BATCH_SIZE, **overrides
) -> TrainRecipe:
    """A `TrainRecipe` whose step count covers ``tokens``."""
    return TrainRecipe(
        seq_len=seq_len,
        batch_size=batch_size,
        num_train_steps=steps_for_tokens(tokens, batch_size, seq_len),
        **overrides,
    )
