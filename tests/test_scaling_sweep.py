"""The isoFLOP grid follows SODA's sweep rules on the paper's budgets."""

import dataclasses
import math

import pytest

from soda_jax.models import ModelShape, qwen3_config
from soda_jax.scaling import sweep

RULES = sweep.SweepRules()
GRID = sweep.isoflop_grid(RULES)


@pytest.mark.parametrize("hidden,layers", [(512, 6), (1024, 11), (2048, 20), (768, 8), (128, 2)])
def test_depth_rule_golden_values(hidden, layers):
    shape = RULES.shape_for_hidden(hidden)
    assert isinstance(shape, ModelShape)
    assert shape.num_layers == layers
    assert shape.num_heads == shape.num_kv_heads == hidden // 128
    assert shape.head_dim == 128
    assert shape.intermediate_dim == 4 * hidden


def test_grid_spacing_is_128_then_256_above_9e18():
    assert RULES.hidden_sizes(6e18) == list(range(128, 2049, 128))
    assert RULES.hidden_sizes(1e19) == list(range(128, 2049, 256))
    assert {run.shape.hidden_dim % 256 for run in GRID if run.budget > 9e18} == {128}


def test_paper_3e18_point_is_d768_298m_params_on_2_11b_tokens():
    (run,) = [r for r in GRID if r.budget == 1e18 and r.shape.hidden_dim == 768]
    assert round(run.params / 1e6) == 298
    assert round(run.tokens / 1e9, 2) == 2.11
    assert run.training_flops == pytest.approx(3e18, rel=0.01)


def test_every_run_obeys_the_budget_step_and_batch_rules():
    assert len(GRID) > 50
    for run in GRID:
        assert abs(run.forward_flops - run.budget) <= 0.01 * run.budget, run.name
        assert run.steps < 400_000, run.name
        assert run.batch_size >= 8 and run.batch_size & (run.batch_size - 1) == 0, run.name
        assert run.learning_rate == pytest.approx(0.33 * math.sqrt(run.batch_size) / run.shape.hidden_dim)
        assert run.learning_rate <= 0.01, run.name
        assert run.beta2 == pytest.approx(0.98 ** (run.batch_size / 128))
        # the budget uses levanter's own per-token count (heads * head_dim == hidden on this grid)
        levanter_count = qwen3_config(run.shape, 4096).flops_per_token(sweep.SODA_VOCAB_SIZE, 4096)
        assert run.flops_per_token == levanter_count


def test_batch_is_the_budget_power_of_two_unless_the_lr_cap_halved_it():
    for run in GRID:
        per_sequence = run.flops_per_token * run.seq_len
        unconstrained = sweep.next_power_of_two(run.budget / (per_sequence * RULES.target_steps))
        if run.batch_size < unconstrained:
            # halved because doubling would push lr over the cap
            assert 0.33 * math.sqrt(2 * run.batch_size) / run.shape.hidden_dim > 0.01, run.name
        else:
            assert run.batch_size == unconstrained


def test_lr_cap_halving_happens_on_the_paper_grid():
    (run,) = [r for r in GRID if r.budget == 3e19 and r.shape.hidden_dim == 384]
    assert run.batch_size == 128  # 256 would give lr 0.0137
    assert run.learning_rate == pytest.approx(0.33 * math.sqrt(128) / 384)


def test_dropped_runs_are_exactly_those_breaking_a_rule():
    kept = {(r.budget, r.shape.hidden_dim) for r in GRID}
    for budget in RULES.budgets:
        for hidden in RULES.hidden_sizes(budget):
            if (budget, hidden) in kept:
                continue
            shape = RULES.shape_for_hidden(hidden)
            per_sequence = shape.forward_flops_per_token(RULES.vocab_size, RULES.seq_len) * RULES.seq_len
            batch = sweep.next_power_of_two(budget / (per_sequence * RULES.target_steps))
            while 0.33 * math.sqrt(batch) / hidden > 0.01:
                batch //= 2
            steps = round(budget / (per_sequence * batch))
            missed = abs(steps * batch * per_sequence - budget) > 0.01 * budget
            assert batch < 8 or steps >= 400_000 or missed, (budget, hidden)


def test_format_grid_lists_every_run():
    table = sweep.format_grid(GRID[:3])
    assert len(table.splitlines()) == 4
    assert "768" in sweep.format_grid([r for r in GRID if r.shape.hidden_dim == 768])


def test_fixed_batch_changes_only_the_width_along_a_budget():
    from soda_jax.recipes.isoflop_mini import MINI_RULES

    rules = dataclasses.replace(
        MINI_RULES, fixed_batch_size=4, min_batch_size=4, min_hidden=16, hidden_step=8, wide_hidden_step=8
    )
    for budget in rules.budgets:
        runs = sweep.runs_for_budget(rules, budget)
        assert {run.batch_size for run in runs} == {4}
        steps = [run.steps for run in runs]
        assert steps == sorted(steps, reverse=True)  # wider models: fewer steps, never a batch jump
        for run in runs:  # the rule's lr, clipped at the cap (0.33 * 2 / 16 = 0.041 -> 0.03 at d=16)
            rule = rules.lr_constant * 2 / run.shape.hidden_dim
            assert run.learning_rate == pytest.approx(min(rule, rules.max_learning_rate))
        assert runs[0].shape.hidden_dim == rules.min_hidden


def test_fixed_depth_keeps_every_width_at_one_depth():
    rules = sweep.SweepRules(
        layer_base=16,
        hidden_per_head=8,
        vocab_size=16_900,
        seq_len=256,
        fixed_batch_size=4,
        min_batch_size=4,
        max_learning_rate=0.03,
    )
    assert [rules.shape_for_hidden(d).num_layers for d in (32, 40, 48)] == [1, 1, 2]  # the rule's jump
    fixed = dataclasses.replace(rules, fixed_num_layers=3)
    shapes = [fixed.shape_for_hidden(d) for d in range(24, 129, 8)]
    assert {shape.num_layers for shape in shapes} == {3}
    assert all(shape.num_heads * shape.head_dim == shape.hidden_dim for shape in shapes)
    params = [sweep.plan_run(fixed, 1e12, shape).params for shape in shapes]
    assert params == sorted(params) and len(set(params)) == len(params)


def test_fixed_head_count_splits_every_width_into_the_same_heads():
    rules = sweep.SweepRules(hidden_per_head=8, vocab_size=16_900, seq_len=256, fixed_num_layers=3)
    assert [rules.shape_for_hidden(d).num_heads for d in (12, 16, 20)] == [1, 2, 2]  # d=12, 20: heads narrower than d
    fixed = dataclasses.replace(rules, fixed_num_heads=2)
    shapes = [fixed.shape_for_hidden(d) for d in range(8, 41, 4)]
    assert {(shape.num_heads, shape.num_kv_heads) for shape in shapes} == {(2, 2)}
    assert [shape.head_dim for shape in shapes] == list(range(4, 21, 2))
    with pytest.raises(ValueError, match="hidden 10 does not split into 2 heads"):
        fixed.shape_for_hidden(10)  # 5-dim heads: rotary embeddings need an even head width


def test_run_names_tell_budgets_apart():
    assert sweep.isoflop_grid()[0].name.startswith("isoflop-1e+18-d")  # SODA's budgets read as before
    rules = sweep.SweepRules(
        budgets=(7.07e11, 1e12, 1.41e12),
        vocab_size=16_900,
        seq_len=256,
        fixed_batch_size=4,
        min_batch_size=4,
        max_learning_rate=0.06,
        hidden_per_head=8,
    )
    names = [sweep.plan_run(rules, budget, rules.shape_for_hidden(32)).name for budget in rules.budgets]
    assert [name.split("-d")[0] for name in names] == ["isoflop-7.07e+11", "isoflop-1e+12", "isoflop-1.41e+12"]
