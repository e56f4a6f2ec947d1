"""SODA's 150M (the model of its design-choice studies): Marin's ``qwen3_150m``, derived by SODA's
named-size rule, and the real levanter model it builds."""

from __future__ import annotations

import dataclasses

import pytest
from test_models import levanter_param_count

from soda_jax.models import SODA_135M, qwen3_config
from soda_jax.models.catalogue import SODA_150M, model_shape, named_size
from soda_jax.scaling.sweep import SweepRules

SODA_VOCAB = 144_644
MARIN_QWEN3_150M = dict(hidden_dim=512, intermediate_dim=1792, num_heads=8, num_kv_heads=8, num_layers=20)
"""marin-community/marin, experiments/audio/qwen3.py: ``qwen3_150m`` (head_dim = hidden / heads = 64),
the model of exp1699_data_mix_150m.py and exp1699_nemotron_sweep.py."""


def test_the_150m_is_marins_qwen3_150m():
    assert model_shape("soda-150m") is SODA_150M
    assert {k: getattr(SODA_150M, k) for k in MARIN_QWEN3_150M} == MARIN_QWEN3_150M
    assert SODA_150M.head_dim == SODA_150M.hidden_dim // SODA_150M.num_heads == 64
    config = qwen3_config(SODA_150M, 4096)
    assert config.head_dim == 64 and config.num_layers == 20 and not config.tie_word_embeddings


def test_named_sizes_count_one_embedding_matrix():
    assert round(named_size(SODA_150M, SODA_VOCAB) / 1e6, 1) == 150.1
    assert round(named_size(SODA_135M, SODA_VOCAB) / 1e6, 1) == 131.1
    counts = SODA_150M.param_counts(SODA_VOCAB)
    assert counts.total == named_size(SODA_150M, SODA_VOCAB) + counts.lm_head  # trained untied here: 224M
    assert round(counts.total / 1e6) == 224


def test_the_depth_is_the_one_whose_named_size_is_150m():
    """The rule: the 135M's width, MLP and heads, and the depth nearest 150M counted SODA's way."""
    depths = range(1, 41)
    nearest = min(
        depths, key=lambda L: abs(named_size(dataclasses.replace(SODA_135M, num_layers=L), SODA_VOCAB) - 150e6)
    )
    assert nearest == SODA_150M.num_layers == 20
    assert dataclasses.replace(SODA_135M, num_layers=20) == SODA_150M


def test_the_isoflop_rule_would_give_another_model_at_d512():
    """The sweep's depth and head rules design grids: at d=512 they give 6 layers of 4 x 128 heads, 99M."""
    grid = SweepRules().shape_for_hidden(512)
    assert (grid.num_layers, grid.num_heads, grid.head_dim, grid.intermediate_dim) == (6, 4, 128, 2048)
    assert round(named_size(grid, SODA_VOCAB) / 1e6) == 99


@pytest.mark.parametrize("vocab", [4_400, SODA_VOCAB])
def test_param_counts_equal_the_levanter_model(vocab):
    assert SODA_150M.param_counts(vocab).total == levanter_param_count(SODA_150M, vocab)
