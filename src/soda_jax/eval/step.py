"""The evaluation executor step: load a checkpoint once, run its tasks, write results.json.

A task whose summary exists (``tasks/{task}.json``) is read back, not recomputed; an unfinished
task resumes after its last written item (`soda_jax.eval.results`). The results list every task's
headline numbers under ``metrics`` (what the scaling analysis and the dashboard read) and its
details (counts, intervals, bad-input counts by reason, the settings used) under ``tasks``.

An evaluation runs in one process, by design: the model is loaded, scored and generated on that
process's mesh, and every file under the output is written by it. On a TPU that is one host
(`default_eval` takes one-host slices only, e.g. v5p-8: 4 chips, enough for SODA-4B's evaluation); a
multi-process job (the hosts of a larger slice) is refused before anything is read or written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import jax

from soda_jax.audio.codec import CodecConfig
from soda_jax.eval.asr import AsrTask, run_asr
from soda_jax.eval.context import EvalContext
from soda_jax.eval.continuation import ContinuationTask, run_continuation
from soda_jax.eval.nll import ValidationNllTask, run_validation_nll
from soda_jax.eval.pairs import PairTask, run_pairs
from soda_jax.eval.report import results_table
from soda_jax.eval.results import TaskStore, write_results
from soda_jax.eval.translation import TranslationTask, run_translation
from soda_jax.eval.tts import TtsTask, run_tts
from soda_jax.training.parallelism import ParallelismConfig

logger = logging.getLogger(__name__)

Task = ValidationNllTask | PairTask | AsrTask | TtsTask | ContinuationTask | TranslationTask


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluate one model on a list of tasks."""

    model_path: str
    """A training output (its latest committed checkpoint) or an HF directory (`inference.loader`)."""
    output_path: str
    tasks: tuple[Any, ...]
    """Task configs (`PairTask`, `AsrTask`, `TtsTask`, ...); names must be unique."""
    codec: CodecConfig | None = None
    """The Mimi that made the model's audio tokens; None: the one its data recorded (codec.json)."""
    parallelism: ParallelismConfig = ParallelismConfig()
    """The mesh: data-parallel over every device by default (batches are split over it)."""
    batch_size: int = 32
    """Sequences per forward / generation batch."""
    compilation_cache_dir: str | None = None
    """JAX persistent compilation cache (shared with other steps, e.g. a sweep's runs of one width)."""


def _runners() -> dict[type, Callable]:
    from soda_jax.eval.lm_eval_adapter import LmEvalTask, run_lm_eval

    return {
        ValidationNllTask: lambda ctx, task, store, config: run_validation_nll(ctx, task, store, config.model_path),
        PairTask: lambda ctx, task, store, config: run_pairs(ctx, task, store),
        AsrTask: lambda ctx, task, store, config: run_asr(ctx, task, store),
        TtsTask: lambda ctx, task, store, config: run_tts(ctx, task, store),
        ContinuationTask: lambda ctx, task, store, config: run_continuation(ctx, task, store),
        TranslationTask: lambda ctx, task, store, config: run_translation(ctx, task, store),
        LmEvalTask: lambda ctx, task, store, config: run_lm_eval(ctx, task, store),
    }


class MultiHostEvalError(RuntimeError):
    """An evaluation was started in a multi-process JAX job (several hosts): it runs on one."""


def check_single_process() -> None:
    """Refuse to run in a multi-process job: each process would load the model on the global mesh
    and write the same files (`MultiHostEvalError`, before anything is written)."""
    if jax.process_count() > 1:
        raise MultiHostEvalError(
            f"evaluation runs in one process (one host), this is process {jax.process_index()} of "
            f"{jax.process_count()}: run it on a one-host slice (default_eval(tpu='v5p-8')) or without a TPU"
        )


def run_eval(config: EvalConfig) -> dict:
    """Run (or finish) every task of ``config``; returns the results written to results.json."""
    from soda_jax.inference.loader import load_model

    check_single_process()
    names = [t.name for t in config.tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    runners = _runners()
    summaries: dict[str, dict] = {}
    pending = []
    for task in config.tasks:
        if type(task) not in runners:
            raise TypeError(f"{task!r} is not an evaluation task (known: {sorted(t.__name__ for t in runners)})")
        store = TaskStore(config.output_path, task.name)
        finished = store.finished_summary()
        if finished is not None:
            logger.info("%s: finished earlier, read back", task.name)
            summaries[task.name] = finished
        else:
            pending.append((task, store))
    if pending:
        if config.compilation_cache_dir:
            jax.config.update("jax_compilation_cache_dir", config.compilation_cache_dir)
        loaded = load_model(config.model_path, parallelism=config.parallelism)
        ctx = EvalContext(loaded, codec=config.codec, batch_size=config.batch_size)
        for task, store in pending:
            started = time.time()
            summary = runners[type(task)](ctx, task, store, config)
            summary["seconds"] = round(time.time() - started, 2)
            summaries[task.name] = store.finish(summary)
            logger.info("%s done in %.1f s: %s", task.name, summary["seconds"], summary.get("metrics"))
    ordered = {name: summaries[name] for name in names}
    results = write_results(
        config.output_path, ordered, {"model_path": config.model_path, "batch_size": config.batch_size}
    )
    logger.info("evaluation results:\n%s", results_table(results))
    return results
