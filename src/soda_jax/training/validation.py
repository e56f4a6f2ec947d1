"""Validation loss per data component, with the model sharded as for training.

Written here rather than through levanter's tagged evaluator, which crashed on 8 CPU devices in
this lineage (docs: levanter-notes). The loss is the plain next-token cross-entropy (no z-loss),
averaged over batches; ``validation_loss`` is the mean over components (levanter's macro loss).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from typing import Any

import haliax as hax
from haliax.partitioning import named_jit
from levanter.utils.thread_utils import blocking_wait

logger = logging.getLogger(__name__)

VALIDATION_LOSS = "validation_loss"


def validation_key(component: str) -> str:
    return f"validation/{component}/loss"


class ValidationLoss:
    """Callable ``model -> {validation_loss, validation/{name}/loss}`` over fixed batches."""

    def __init__(self, trainer, datasets: Mapping[str, Any], *, max_batches: int | None, loss_fn):
        """``loss_fn(model, example, key=None)``: the mean next-token loss of a batch (no z-loss)."""
        self.loaders = {}
        for name, dataset in datasets.items():
            if dataset.is_finite() and blocking_wait(dataset.async_len()) == 0:
                logger.warning("validation set %s is empty: skipped (a larger validation_fraction holds out more)", name)
                continue
            self.loaders[name] = trainer.data_loader(dataset, trainer.EvalBatch)
        self.max_batches = max_batches
        mp = trainer.mp

        @named_jit(axis_resources=trainer.compute_axis_mapping)
        def batch_loss(model, example):
            model = mp.cast_to_compute(model)
            return hax.NamedArray.scalar(loss_fn(model, example, key=None))

        self._batch_loss = batch_loss

    def __call__(self, model) -> dict[str, float]:
        results = {}
        for name, loader in self.loaders.items():
            losses = [float(self._batch_loss(model, batch)) for batch in itertools.islice(loader, self.max_batches)]
            if not losses:
                logger.warning("validation set %s is smaller than one batch: skipped", name)
                continue
            results[validation_key(name)] = sum(losses) / len(losses)
        if results:
            results[VALIDATION_LOSS] = sum(results.values()) / len(results)
        else:
            results[VALIDATION_LOSS] = math.nan
        return results
