"""An experiment's own flags, taken out of its command line before the executor parses the rest
(`soda_jax.execution.main.pop_option`, and the recipes' flags built on it)."""

from __future__ import annotations

import pytest

from soda_jax.execution.main import pop_option
from soda_jax.recipes.adaptive_sweep import pop_rounds


def test_a_flag_and_its_value_come_out_and_the_rest_stays_in_order():
    assert pop_option(["--prefix", "p", "--seed", "3", "--dry_run"], "--seed") == ("3", ["--prefix", "p", "--dry_run"])
    assert pop_option(["--prefix", "p"], "--seed") == (None, ["--prefix", "p"])


@pytest.mark.parametrize("argv", [["--seed"], ["--seed", "--dry_run"]])
def test_a_flag_without_its_value_exits_naming_it(argv):
    with pytest.raises(SystemExit, match="--seed needs a value"):
        pop_option(argv, "--seed")


def test_rounds_default_and_validation():
    assert pop_rounds(["--prefix", "p"], default=3) == (3, ["--prefix", "p"])
    assert pop_rounds(["--rounds", "2", "--dry_run"]) == (2, ["--dry_run"])
    with pytest.raises(SystemExit, match="whole number"):
        pop_rounds(["--rounds", "0"])
