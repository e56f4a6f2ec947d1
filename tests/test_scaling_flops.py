"""FLOPs and parameter counts agree with levanter's formula and a real levanter Qwen3 model."""

import dataclasses

import equinox as eqx
import haliax as hax
import jax
import pytest
from levanter.models.qwen import Qwen3Config
from levanter.utils.flop_utils import lm_flops_per_token

from soda_jax.models import flops

SODA_VOCAB = 144_644
SODA_SEQ_LEN = 4096

# The SODA catalogue (soda-facts.md): hidden, intermediate, heads, kv_heads, head_dim, layers.
CATALOGUE = {
    "135M": dict(hidden=512, intermediate=1792, heads=8, kv_heads=8, head_dim=64, layers=15),
    "600M": dict(hidden=1024, intermediate=3072, heads=16, kv_heads=8, head_dim=128, layers=28),
    "1.7B": dict(hidden=2048, intermediate=6144, heads=16, kv_heads=8, head_dim=128, layers=28),
    "4B": dict(hidden=2560, intermediate=9728, heads=32, kv_heads=8, head_dim=128, layers=36),
}


def _levanter(shape):
    return lm_flops_per_token(
        hidden_dim=shape["hidden"],
        intermediate_dim=shape["intermediate"],
        num_layers=shape["layers"],
        num_kv_heads=shape["kv_heads"],
        num_heads=shape["heads"],
        seq_len=SODA_SEQ_LEN,
        vocab_size=SODA_VOCAB,
        glu=True,
    )


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_levanter_convention_matches_levanter_for_catalogue(name):
    shape = CATALOGUE[name]
    ours = flops.levanter_forward_flops_per_token(**shape, vocab=SODA_VOCAB, seq_len=SODA_SEQ_LEN)
    assert ours == _levanter(shape)
    config = Qwen3Config(
        max_seq_len=SODA_SEQ_LEN,
        hidden_dim=shape["hidden"],
        intermediate_dim=shape["intermediate"],
        num_layers=shape["layers"],
        num_heads=shape["heads"],
        num_kv_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
    )
    assert ours == config.flops_per_token(SODA_VOCAB, SODA_SEQ_LEN)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_real_width_count_matches_levanter_exactly_when_heads_span_hidden(name):
    shape = CATALOGUE[name]
    ours = flops.forward_flops_per_token(**shape, vocab=SODA_VOCAB, seq_len=SODA_SEQ_LEN)
    if shape["heads"] * shape["head_dim"] == shape["hidden"]:
        assert ours == _levanter(shape)
    else:  # 600M, 4B: wider attention than hidden, which levanter does not see
        assert ours > _levanter(shape)
    assert flops.training_flops_per_token(**shape, vocab=SODA_VOCAB, seq_len=SODA_SEQ_LEN) == 3 * ours


def test_flops_are_two_per_matmul_weight_plus_attention_map():
    """Independent check: matmul FLOPs = 2 x matmul weights (all but the input embedding and norms)."""
    shape = CATALOGUE["600M"]
    counts = flops.param_counts(**shape, vocab=SODA_VOCAB, qk_norm=False)
    norm_params = shape["layers"] * 2 * shape["hidden"] + shape["hidden"]
    matmul_weights = counts.non_embedding - norm_params + counts.lm_head
    q_width = shape["heads"] * shape["head_dim"]
    attention_map = shape["layers"] * SODA_SEQ_LEN * (4 * q_width + 3 * shape["heads"])
    expected = 2 * matmul_weights + attention_map
    assert flops.forward_flops_per_token(**shape, vocab=SODA_VOCAB, seq_len=SODA_SEQ_LEN) == expected


@pytest.fixture(scope="module")
def tiny_qwen3():
    # heads * head_dim (64) != hidden (48), GQA 4/2: exercises every term of the count.
    config = Qwen3Config(
        max_seq_len=32,
        hidden_dim=48,
        intermediate_dim=80,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
    )
    vocab = 101
    model = config.build(hax.Axis("vocab", vocab), key=jax.random.PRNGKey(0))
    return config, vocab, model


def _leaf_count(model) -> int:
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)))


def _embedding_leaf_count(model) -> int:
    return model.embeddings.token_embeddings.weight.array.size + model.lm_head.weight.array.size


def test_param_counts_match_real_levanter_qwen3_model(tiny_qwen3):
    config, vocab, model = tiny_qwen3
    counts = flops.config_param_counts(config, vocab)
    assert counts.total == _leaf_count(model)
    assert counts.token_embedding + counts.lm_head == _embedding_leaf_count(model)
    assert counts.non_embedding == _leaf_count(model) - _embedding_leaf_count(model)


def test_config_flops_uses_real_head_dim(tiny_qwen3):
    config, vocab, _ = tiny_qwen3
    explicit = flops.forward_flops_per_token(
        hidden=48, intermediate=80, layers=2, heads=4, kv_heads=2, head_dim=16, vocab=vocab, seq_len=32
    )
    assert flops.config_forward_flops_per_token(config, vocab) == explicit
    assert flops.config_forward_flops_per_token(config, vocab, seq_len=64) > explicit


def test_tied_embeddings_have_no_lm_head_params():
    shape = CATALOGUE["135M"]
    tied = flops.param_counts(**shape, vocab=SODA_VOCAB, tied_embeddings=True)
    untied = flops.param_counts(**shape, vocab=SODA_VOCAB)
    assert tied.lm_head == 0
    assert untied.total - tied.total == SODA_VOCAB * shape["hidden"]


def test_bad_shapes_are_rejected():
    shape = dict(CATALOGUE["135M"], kv_heads=3)
    with pytest.raises(ValueError, match="kv_heads"):
        flops.forward_flops_per_token(**shape, vocab=SODA_VOCAB, seq_len=SODA_SEQ_LEN)
    with pytest.raises(ValueError, match="vocab"):
        flops.forward_flops_per_token(**CATALOGUE["135M"], vocab=0, seq_len=SODA_SEQ_LEN)
    with pytest.raises(ValueError, match="use_bias"):
        flops.config_param_counts(dataclasses.replace(Qwen3Config(), use_bias=True), SODA_VOCAB)
