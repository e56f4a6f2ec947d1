"""SODA's fine-tuning recipe is Marin's audio SFT experiment for CVSS, setting for setting
(marin-community/marin, experiments/audio/audio_sft_cvss.py), and the CVSS experiment builds its run."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from levanter.optim.cautious import CautiousConfig

from soda_jax.training.sft_recipe import SFT_RECIPE, SftOptimizerRecipe

MARIN_SFT = dict(
    learning_rate=2e-5,
    weight_decay=0.01,
    min_lr_ratio=0.1,
    warmup=0.03,
    decay=1.0,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    max_grad_norm=1,
    lr_schedule="cosine",
    adamc_weight_decay=True,
)
"""audio_sft_cvss.py's ``CautiousConfig``; its ``SimpleTrainConfig`` adds z_loss_weight=1e-4, batch 64."""
MARIN_STEPS = math.ceil(750e6 / (64 * 2048)) * 5
"""``STEP_PER_EPOCH * NUM_EPOCHS`` there."""


def test_the_recipe_is_marins_setting_for_setting():
    config = SFT_RECIPE.optimizer.levanter_config(SFT_RECIPE.batch_size, 1024)
    assert isinstance(config, CautiousConfig)
    assert {key: getattr(config, key) for key in MARIN_SFT} == MARIN_SFT
    assert (
        (SFT_RECIPE.seq_len, SFT_RECIPE.batch_size, SFT_RECIPE.num_train_steps)
        == (2048, 64, MARIN_STEPS)
        == (2048, 64, 28_615)
    )
    assert SFT_RECIPE.z_loss_weight == 1e-4
    assert config.learning_rate == SFT_RECIPE.optimizer.peak_learning_rate(64, 2560)  # no batch/width rule


def test_the_schedule_warms_up_then_decays_by_cosine_to_a_tenth():
    schedule = SFT_RECIPE.optimizer.levanter_config(64, 1024).lr_scheduler(SFT_RECIPE.num_train_steps)
    warmup = int(0.03 * SFT_RECIPE.num_train_steps)
    lr = np.array([float(schedule(step)) for step in (0, warmup // 2, warmup, SFT_RECIPE.num_train_steps - 1)])
    np.testing.assert_allclose(lr, [0.0, 1e-5, 2e-5, 2e-6], rtol=2e-3, atol=1e-9)
    middle = warmup + (SFT_RECIPE.num_train_steps - warmup) // 2  # cosine: halfway between peak and floor
    assert float(schedule(middle)) == pytest.approx(2e-6 + (2e-5 - 2e-6) / 2, rel=1e-3)


def test_adamc_weight_decay_follows_the_schedule():
    """A zero gradient leaves only the decoupled decay: -lr * (wd * lr / peak) * w at every step."""
    recipe = SftOptimizerRecipe(learning_rate=0.1, weight_decay=0.5, warmup=0.0)
    config = recipe.levanter_config(8, 32)
    optimizer = config.build(10)
    params = {"w": jnp.ones((3,))}
    state = optimizer.init(params)
    schedule = config.lr_scheduler(10)
    for step in range(3):
        updates, state = optimizer.update({"w": jnp.zeros((3,))}, state, params)
        lr = float(schedule(step))
        np.testing.assert_allclose(np.asarray(updates["w"]), -lr * (0.5 * lr / 0.1) * np.ones(3), rtol=1e-5)


def test_the_cvss_experiment_fine_tunes_marins_base_on_marins_slice(monkeypatch):
    monkeypatch.delenv("SODA_BASE_MODEL", raising=False)
    from soda_jax.models import SODA_4B, SODA_600M
    from soda_jax.recipes.soda_sft_cvss import pop_base_size, soda_cvss_sft

    step = soda_cvss_sft()
    assert step.name == "checkpoints/soda-600m-cvss-s2st" and step.resources.tpu == "v5p-8"
    assert step.config.model.value == SODA_600M and step.config.recipe.value == SFT_RECIPE
    assert step.config.init_from.step.name == "checkpoints/soda-600m"  # our final run of the same size
    big = soda_cvss_sft("4b")
    assert big.resources.tpu == "v5p-256" and big.config.model.value == SODA_4B
    assert pop_base_size(["--base_size", "4b", "--dry_run"]) == ("4b", ["--dry_run"])
    assert pop_base_size(["--prefix", "p"]) == ("600m", ["--prefix", "p"])
    with pytest.raises(ValueError, match="unknown base size '2b'"):
        soda_cvss_sft("2b")
