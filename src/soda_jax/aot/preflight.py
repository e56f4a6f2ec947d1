"""Pre-flight checks of a training step before a TPU slice is requested (`Resources.preflight`).

A pre-flight runs on the driver with ``(config, resources)`` and returns the `Resources` to run
with: `compile_check_train` returns them unchanged when the step fits its slice (and raises
`DoesNotFitError` with the numbers when it does not); `SmallestFittingSlice` moves the step to the
smallest of several slice types its compiled step fits (the isoFLOP sweep's slice choice).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from soda_jax.aot.check import DoesNotFitError, compile_report
from soda_jax.execution.step import Resources
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)


def _vocab_size(config: TrainConfig) -> int:
    from soda_jax.training.train import data_vocab_size

    return data_vocab_size(config.data, len(config.data.lm_config().the_tokenizer))


def _log_fit(config: TrainConfig, report: dict[str, Any]) -> None:
    memory = report["memory"]
    logger.info(
        "pre-flight: %s on %d x %s needs %.2f of %.2f GiB per chip (compiled in %.0f s): %s",
        config.output_path,
        report["num_slices"],
        report["tpu"],
        memory["peak_gib"],
        memory["budget_gib"],
        report["compile_seconds"],
        "fits" if memory["fits"] else "does not fit",
    )


def compile_check_train(config: TrainConfig, resources: Resources) -> Resources:
    """Compile ``config``'s step for ``resources.slices`` x ``resources.tpu`` on the driver; raise
    `DoesNotFitError` (with the numbers) when it needs more HBM than a chip has, else return ``resources``."""
    assert resources.tpu is not None, "compile_check_train: the step has no TPU slice"
    smallest_fitting_slice(config, (resources.tpu,), vocab_size=_vocab_size(config), num_slices=resources.slices)
    return resources


def smallest_fitting_slice(
    config: TrainConfig, candidates: Sequence[str], *, vocab_size: int, num_slices: int = 1
) -> tuple[str, list[dict[str, Any]]]:
    """The smallest (fewest chips) of ``candidates`` whose compiled step fits a chip with the margin,
    and the reports of every slice compiled on the way (smallest first; it stops at the first fit).
    Raises `DoesNotFitError` with the largest candidate's report when none fits."""
    if not candidates:
        raise ValueError("smallest_fitting_slice: no candidate slices")
    reports = []
    for tpu in sorted(candidates, key=lambda name: tpu_slice(name).num_chips):
        report = compile_report(config, tpu, vocab_size=vocab_size, num_slices=num_slices, count_flops=False)
        _log_fit(config, report)
        reports.append(report)
        if report["memory"]["fits"]:
            return tpu, reports
    raise DoesNotFitError(reports[-1])


@dataclasses.dataclass(frozen=True)
class SmallestFittingSlice:
    """A pre-flight that places the step on the smallest of ``candidates`` it fits (compiled on the
    driver, smallest first: one compile when the smallest fits, as a plain pre-flight would do)."""

    candidates: tuple[str, ...]
    """Slice types of one chip generation, e.g. ``("v5p-8", "v5p-16", "v5p-32")``."""

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("SmallestFittingSlice: no candidate slices")
        chips = {tpu_slice(name).chip.version for name in self.candidates}
        if len(chips) > 1:
            raise ValueError(
                f"SmallestFittingSlice: candidates of several chip generations {sorted(chips)}: {self.candidates}"
            )

    @property
    def smallest(self) -> str:
        return min(self.candidates, key=lambda name: tpu_slice(name).num_chips)

    def __call__(self, config: TrainConfig, resources: Resources) -> Resources:
        tpu, _ = smallest_fitting_slice(
            config, self.candidates, vocab_size=_vocab_size(config), num_slices=resources.slices
        )
        if tpu != resources.tpu:
            logger.info(
                "pre-flight: %s goes on %s, the smallest of %s it fits",
                config.output_path,
                tpu,
                ", ".join(self.candidates),
            )
        return dataclasses.replace(resources, tpu=tpu)
