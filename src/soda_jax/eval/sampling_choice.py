"""Sampling settings of a generative task: SODA's per-task defaults unless a field overrides them."""

from __future__ import annotations

import dataclasses

from soda_jax.inference.prompts import TASK_DEFAULTS, stop_ids
from soda_jax.inference.sampling import SamplingParams


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Overrides of the inference task defaults (`soda_jax.inference.prompts.TASK_DEFAULTS`); None keeps the default."""

    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    """Item i samples with seed + i, so a resumed evaluation draws what an uninterrupted one would."""


def sampling_params(vocab, task_kind: str, sampling: Sampling, item_index: int) -> SamplingParams:
    defaults = TASK_DEFAULTS[task_kind]
    return SamplingParams(
        temperature=defaults.temperature if sampling.temperature is None else sampling.temperature,
        top_p=defaults.top_p if sampling.top_p is None else sampling.top_p,
        top_k=defaults.top_k,
        max_new_tokens=defaults.max_new_tokens if sampling.max_new_tokens is None else sampling.max_new_tokens,
        stop_ids=stop_ids(vocab, defaults.stop),
        seed=sampling.seed + item_index,
    )


def describe(task_kind: str, sampling: Sampling) -> dict:
    """The settings actually used, for results.json."""
    defaults = dataclasses.asdict(TASK_DEFAULTS[task_kind])
    overrides = {k: v for k, v in dataclasses.asdict(sampling).items() if v is not None}
    return {**defaults, **overrides}
