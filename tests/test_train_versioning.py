"""A training step's output path: defined by soda-jax's own data spec, never by levanter's config classes."""

from __future__ import annotations

import dataclasses

from soda_jax.data import mixture
from soda_jax.execution import Executor, ExecutorStep
from soda_jax.models import TEST_TINY
from soda_jax.recipes.data_mixes import mixture_config
from soda_jax.recipes.defaults import default_interleave, default_train
from soda_jax.training import TrainRecipe

RECIPE = TrainRecipe(seq_len=32, batch_size=8, num_train_steps=4)


def train_step(weights: dict[str, float] | None = None) -> ExecutorStep:
    caches = {
        name: default_interleave(f"demo-{name}", f"raw/{name}", tokenizer="tokenizers/test")
        for name in ("yodas2", "emilia")
    }
    data = mixture.soda_mixture(caches, weights or {"yodas2": 0.5, "emilia": 0.5}, name="demo")
    return default_train("versioning-test", data, TEST_TINY, RECIPE)


def output_path(step: ExecutorStep, prefix: str) -> str:
    executor = Executor(prefix, use_ray=False)
    executor.prepare([step])
    return executor.output_path(step)


def test_levanter_config_gaining_a_field_does_not_move_the_output_path(tmp_path, monkeypatch):
    before = output_path(train_step(), str(tmp_path))

    @dataclasses.dataclass(frozen=True)
    class UpgradedLmDataConfig(mixture.SodaLmDataConfig):
        """levanter after a pin bump: one more field, with a default."""

        new_levanter_option: int = 7

    monkeypatch.setattr(mixture, "SodaLmDataConfig", UpgradedLmDataConfig)
    after_step = train_step()
    assert output_path(after_step, str(tmp_path)) == before
    # the step does build levanter's (upgraded) class, from the same spec, once inputs are paths
    resolved = dataclasses.replace(after_step.config.data.value, components={"yodas2": "/c/y", "emilia": "/c/e"})
    built = resolved.lm_config()
    assert isinstance(built, UpgradedLmDataConfig) and built.train_weights == {"yodas2": 0.5, "emilia": 0.5}


def test_a_weight_or_an_input_version_moves_the_output_path(tmp_path):
    base = output_path(train_step(), str(tmp_path))
    assert output_path(train_step({"yodas2": 0.7, "emilia": 0.3}), str(tmp_path)) != base
    other_cache = mixture_config(
        "yodas2_only", {"yodas2": default_interleave("demo-yodas2", "raw/other", tokenizer="tokenizers/test")}
    )
    assert output_path(default_train("versioning-test", other_cache, TEST_TINY, RECIPE), str(tmp_path)) != base


def test_the_version_names_soda_jax_types_only(tmp_path):
    executor = Executor(str(tmp_path), use_ray=False)
    step = train_step()
    executor.prepare([step])
    version = executor.identities[id(step)].version["config"]["data"]
    assert version["__type__"] == "MixtureSpec"
    assert version["components"]["yodas2"].startswith("input:tokenized/demo-yodas2-interleaved-")

    def types(node):
        if isinstance(node, dict):
            yield from ([node["__type__"]] if "__type__" in node else [])
            for value in node.values():
                yield from types(value)
        elif isinstance(node, list):
            for value in node:
                yield from types(value)

    assert set(types(executor.identities[id(step)].version)) <= {
        "MixtureSpec",
        "BlockShuffle",
        "ModelShape",
        "TrainRecipe",
        "OptimizerRecipe",
    }
