"""SODA's supervised fine-tuning recipe: Marin's audio SFT experiment for CVSS speech-to-speech
translation (marin-community/marin, experiments/audio/audio_sft_cvss.py).

There: seq 2048, batch 64, 750M tokens a epoch (ceil(750M / (64 x 2048)) = 5,723 steps) x 5
epochs; Cautious with AdamC weight decay 0.01, LR 2e-5, betas 0.9 / 0.999, eps 1e-8, 3% linear
warmup then cosine decay to 0.1x over the rest, gradient clip 1, z-loss 1e-4; the loss on the
response only (levanter's chat format with ``mask_user_turns``). `SFT_RECIPE` is that, setting for
setting. Where a run departs (the base model and slice) is the experiment's choice
(experiments/soda_sft_cvss.py; docs/training.md, "Fine-tuning").
"""

from __future__ import annotations

import dataclasses

from levanter.optim import AdamConfig
from levanter.optim.cautious import CautiousConfig

from soda_jax.training.recipe import OptimizerRecipe, TrainRecipe, steps_for_tokens

SFT_SEQ_LEN = 2048
SFT_BATCH_SIZE = 64
SFT_EPOCH_TOKENS = 750_000_000
SFT_EPOCHS = 5
SFT_Z_LOSS = 1e-4
"""Marin's SFT runs keep the pretraining z-loss weight."""


@dataclasses.dataclass(frozen=True)
class SftOptimizerRecipe(OptimizerRecipe):
    """Marin's audio SFT optimizer: Cautious with AdamC weight decay (`OptimizerRecipe`), a fixed LR
    and a cosine decay after the warmup. Defaults are Marin's CVSS settings."""

    learning_rate: float | None = 2e-5
    """Peak LR (fixed: fine-tuning does not use SODA's batch/width rule)."""
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.01
    """Decoupled weight decay, scaled with the LR schedule (AdamC, ``adamc_weight_decay=True``)."""
    warmup: float = 0.03
    decay: float = 1.0
    """Decay over every step after the warmup (Marin's ``decay=1.0``; levanter caps it there)."""
    min_lr_ratio: float = 0.1
    lr_schedule: str = "cosine"
    """Shape of the decay: levanter's ``cosine``, ``linear`` or ``constant``."""

    def levanter_config(self, batch_size: int, hidden_dim: int) -> CautiousConfig:
        return dataclasses.replace(super().levanter_config(batch_size, hidden_dim), lr_schedule=self.lr_schedule)


@dataclasses.dataclass(frozen=True)
class AdamRecipe:
    """AdamW with a warmup + decay schedule; a drop-in for `OptimizerRecipe` in a `TrainRecipe`
    (the CPU demo's fine-tune, `SFT_DEMO_RECIPE`, and the fine-tuning tests use it)."""

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
    num_train_steps=SFT_EPOCHS * steps_for_tokens(SFT_EPOCH_TOKENS, SFT_BATCH_SIZE, SFT_SEQ_LEN),
    optimizer=SftOptimizerRecipe(),
    z_loss_weight=SFT_Z_LOSS,
)
"""Marin's SFT run: 28,615 steps of 64 x 2048 (5 epochs of 5,723 steps, 3.75B tokens)."""

SFT_DEMO_RECIPE = TrainRecipe(
    seq_len=512,
    batch_size=8,
    num_train_steps=12,
    optimizer=AdamRecipe(learning_rate=3e-4, warmup=0.1),  # type: ignore[arg-type]
    z_loss_weight=0.0,
)
"""CPU demo: a short ASR fine-tune of the demo model (experiments/sft_demo.py), AdamW as measured
(not Marin's Cautious). 512 tokens hold a demo sentence's audio (2-4 s: 250-400 ids) and
transcript. A tiny model needs a larger LR than SODA's 2e-5 to move in a few steps; measured: 12
steps at 3e-4 lower the held-out ASR loss (3.518 -> 3.432), 30 steps at 1e-3 overfit the 33
training utterances (held-out 3.671)."""
