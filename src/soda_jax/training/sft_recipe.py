"""SODA's supervised fine-tuning recipe (its Marin code, speech-to-speech translation on CVSS).

seq 2048, batch 64, about 750M tokens x 5 epochs, AdamW with LR 2e-5, betas 0.9/0.999, cosine
decay to 0.1x. Not stated there, chosen here: 3% linear warmup, no weight decay, gradient clip 1.
"""

from __future__ import annotations

import dataclasses

from levanter.optim import AdamConfig

from soda_jax.training.recipe import TrainRecipe, steps_for_tokens

SFT_SEQ_LEN = 2048
SFT_BATCH_SIZE = 64
SFT_EPOCH_TOKENS = 750_000_000
SFT_EPOCHS = 5


@dataclasses.dataclass(frozen=True)
class AdamRecipe:
    """AdamW with a warmup + decay schedule; a drop-in for `OptimizerRecipe` in a `TrainRecipe`."""

    learning_rate: float = 2e-5
    """Peak LR (fixed: fine-tuning does not use SODA's batch/width rule)."""
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    warmup: float = 0.03
    """Fraction of steps of linear warmup from 0."""
    lr_schedule: str = "cosine"
    """Decay after warmup: ``cosine``, ``linear`` or ``constant``."""
    min_lr_ratio: float = 0.1
    """LR at the end, as a fraction of the peak."""
    max_grad_norm: float | None = 1.0

    def peak_learning_rate(self, batch_size: int, hidden_dim: int) -> float:
        del batch_size, hidden_dim
        return self.learning_rate

    def levanter_config(self, batch_size: int, hidden_dim: int) -> AdamConfig:
        del batch_size, hidden_dim
        return AdamConfig(
            learning_rate=self.learning_rate,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            weight_decay=self.weight_decay,
            warmup=self.warmup,
            lr_schedule=self.lr_schedule,
            min_lr_ratio=self.min_lr_ratio,
            max_grad_norm=self.max_grad_norm,
        )


SFT_RECIPE = TrainRecipe(
    seq_len=SFT_SEQ_LEN,
    batch_size=SFT_BATCH_SIZE,
    num_train_steps=steps_for_tokens(SFT_EPOCH_TOKENS * SFT_EPOCHS, SFT_BATCH_SIZE, SFT_SEQ_LEN),
    optimizer=AdamRecipe(),  # type: ignore[arg-type]  # duck-typed: levanter_config
    z_loss_weight=0.0,
)
"""SODA's SFT run: 28,611 steps of 64 x 2048 (3.75B tokens)."""

SFT_DEMO_RECIPE = TrainRecipe(
    seq_len=512,
    batch_size=8,
    num_train_steps=12,
    optimizer=AdamRecipe(learning_rate=3e-4, warmup=0.1),  # type: ignore[arg-type]
    z_loss_weight=0.0,
)
"""CPU demo: a short ASR fine-tune of the demo model (experiments/sft_demo.py). 512 tokens hold a
demo sentence's audio (2-4 s: 250-400 ids) and transcript. A tiny model needs a larger LR than
SODA's 2e-5 to move in a few steps; measured: 12 steps at 3e-4 lower the held-out ASR loss
(3.518 -> 3.432), 30 steps at 1e-3 overfit the 33 training utterances (held-out 3.671)."""
