"""Pre-flight check of a training step before a TPU slice is requested (`Resources.preflight`)."""

from __future__ import annotations

import logging
from typing import Any

from soda_jax.aot.check import check_fits, compile_report
from soda_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)


def compile_check_train(config: TrainConfig, resources: Any) -> dict[str, Any]:
    """Compile ``config``'s step for ``resources.slices`` x ``resources.tpu`` on the driver; raise
    `soda_jax.aot.DoesNotFitError` (with the numbers) when it needs more HBM than a chip has."""
    from soda_jax.training.train import data_vocab_size

    report = compile_report(
        config, resources.tpu, vocab_size=data_vocab_size(config.data, len(config.data.lm_config().the_tokenizer)), num_slices=resources.slices, count_flops=False
    )
    memory = report["memory"]
    logger.info("pre-flight: %s on %d x %s needs %.2f of %.2f GiB per chip (compiled in %.0f s)", config.output_path,
                resources.slices, resources.tpu, memory["peak_gib"], memory["budget_gib"], report["compile_seconds"])  # fmt: skip
    return check_fits(report)
