"""``compile_report``: compile a run's training step for a TPU slice on this host and say whether it fits.

Used by ``soda compile`` (docs/tpu.md), by `default_train`'s pre-flight check before a step is
sent to a cluster, and by the sweep's slice choice. A step that does not fit is a result (with
numbers), not a crash; a step that cannot be compiled at all (a sharding error) raises.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from soda_jax.aot.report import FlopsReport, compiled_flops, memory_report, per_token, roofline_seconds
from soda_jax.aot.train_step import compile_train_step
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)


class DoesNotFitError(RuntimeError):
    """A training step needs more HBM per chip than its slice has (with the margin); carries the report."""

    def __init__(self, report: dict[str, Any]):
        self.report = report
        memory = report["memory"]
        super().__init__(
            f"{report['model_name']} batch {report['batch_size']} x seq {report['seq_len']} does not fit "
            f"{report['tpu']}: needs {memory['peak_gib']:.1f} GiB per chip, budget {memory['budget_gib']:.1f} GiB "
            f"({memory['hbm_gib']:.1f} GiB HBM less {memory['margin']:.0%}); parameters {memory['parameters_gib']:.2f}, "
            f"optimizer state {memory['optimizer_state_gib']:.2f}, temporaries {memory['temporaries_gib']:.2f} GiB"
        )


def _layer_flops_per_token(config: TrainConfig, vocab_size: int, tpu, num_slices: int) -> tuple[float, float]:
    """(depth-1 program, one layer) per-token FLOPs from unrolled compiles at depth 1 and 2."""
    counts = []
    tokens = config.recipe.batch_size * config.recipe.seq_len
    chips = tpu.num_chips * num_slices
    for depth in (1, 2):
        shallow = dataclasses.replace(
            config, model=dataclasses.replace(config.model, num_layers=depth), layer_loop="unrolled"
        )
        step = compile_train_step(shallow, vocab_size, tpu, num_slices=num_slices)
        counts.append(per_token(compiled_flops(step.compiled), chips, tokens))
    return counts[0], counts[1] - counts[0]


def compile_report(
    config: TrainConfig,
    tpu: str,
    *,
    vocab_size: int,
    num_slices: int = 1,
    count_flops: bool = True,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Compile ``config``'s training step for ``num_slices`` x ``tpu``; per-chip memory, FLOPs, timing.

    ``count_flops`` adds the loop-corrected FLOP count (two more, shallow, compiles).
    """
    slice_ = tpu_slice(tpu)
    started = time.time()
    step = compile_train_step(config, vocab_size, slice_, num_slices=num_slices)
    memory = memory_report(step.compiled, step.state_shape, slice_)
    recipe = config.recipe
    tokens = recipe.batch_size * recipe.seq_len
    chips = slice_.num_chips * num_slices
    report: dict[str, Any] = {
        "model_name": model_name or str(config.model),
        "model": dataclasses.asdict(config.model),
        "tpu": slice_.name,
        "num_slices": num_slices,
        "chips": chips,
        "hosts": slice_.num_hosts * num_slices,
        "topology": slice_.topology,
        "batch_size": recipe.batch_size,
        "seq_len": recipe.seq_len,
        "vocab_size": vocab_size,
        "padded_vocab_size": step.padded_vocab_size,
        "parallelism": dataclasses.asdict(config.parallelism),
        "mesh": dict(step.mesh.shape),
        "layer_loop": "scan" if step.scanned_layers else "unrolled",
        "gradient_checkpointing": config.gradient_checkpointing,
        "attention": str(step.attention),
        "compile_seconds": round(step.seconds, 1),
        "memory": memory.as_dict(),
    }
    cost = step.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    report["compiled_flops_per_token_as_is"] = per_token(float(cost.get("flops", 0.0)), chips, tokens)
    report["bytes_accessed_per_chip"] = float(cost.get("bytes accessed", 0.0))
    if count_flops:
        report.update(flops_report(config, report, vocab_size=vocab_size, scanned=step.scanned_layers))
    report["total_seconds"] = round(time.time() - started, 1)
    return report


def flops_report(config: TrainConfig, report: dict[str, Any], *, vocab_size: int, scanned: bool) -> dict[str, Any]:
    """Loop-corrected training FLOPs per token against the analytic count, and the roofline bound,
    for a step already compiled into ``report`` (adds two shallow unrolled compiles when ``scanned``)."""
    slice_ = tpu_slice(report["tpu"])
    num_slices = report["num_slices"]
    recipe = config.recipe
    tokens = recipe.batch_size * recipe.seq_len
    as_is = report["compiled_flops_per_token_as_is"]
    if scanned:
        depth1, layer = _layer_flops_per_token(config, vocab_size, slice_, num_slices)
        corrected = depth1 + (config.model.num_layers - 1) * layer
    else:
        corrected = as_is
    forward = config.model.forward_flops_per_token(vocab_size, recipe.seq_len)
    attention_free = config.model.forward_flops_per_token(vocab_size, 1)  # the s x s terms at s = 1: ~0
    lm_head = 2 * config.model.hidden_dim * vocab_size
    recompute = (forward - lm_head) if config.gradient_checkpointing else 0
    flops = FlopsReport(
        compiled_as_is=as_is,
        compiled=corrected,
        analytic=float(TRAINING_FLOPS_MULTIPLIER * forward),
        analytic_with_recompute=float(TRAINING_FLOPS_MULTIPLIER * forward + recompute),
    )
    bound = roofline_seconds(corrected, tokens, report["bytes_accessed_per_chip"], slice_, num_slices)
    return {
        "flops_per_token": flops.as_dict(),
        "attention_share_of_analytic": round(1 - attention_free / forward, 3),
        "roofline_step_seconds_lower_bound": round(bound, 4),
    }


def check_fits(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` if its step fits, else `DoesNotFitError` with the numbers."""
    if not report["memory"]["fits"]:
        raise DoesNotFitError(report)
    return report
