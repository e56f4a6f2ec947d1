"""Reading training-run outputs (docs/data-contracts.md section 3) and eval results for the fits."""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os

from soda_jax import fileio
from soda_jax.contracts import EVAL_RESULTS_FILE, SUMMARY_FILE
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER

logger = logging.getLogger(__name__)

LOSS_KEY = "final_validation_loss"


class RunFormatError(ValueError):
    """A summary or eval file exists but does not hold what the contract says."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What the fits need from one training run."""

    name: str
    """Run directory's base name."""
    path: str
    """Training output directory."""
    params: int
    """Total parameters N (embeddings and LM head included)."""
    tokens: int
    """Training tokens D."""
    train_flops: float
    """Training FLOPs C (forward + backward)."""
    loss: float
    """Final validation loss."""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    """Eval metrics (empty without eval results)."""
    hidden: int | None = None
    """Model width (the summary's ``model.hidden_dim``; None when the summary does not record it)."""


def read_run(path: str, eval_path: str | None = None) -> RunRecord:
    """One run's record; raises FileNotFoundError or RunFormatError naming the file."""
    summary_url = fileio.join(path, SUMMARY_FILE)
    summary = fileio.read_json(summary_url)
    missing = [key for key in ("params", "tokens", LOSS_KEY) if summary.get(key) is None]
    if missing:
        raise RunFormatError(f"{summary_url}: missing {', '.join(missing)}")
    train_flops = summary.get("train_flops")
    if train_flops is None:
        if summary.get("flops_per_token") is None:
            raise RunFormatError(f"{summary_url}: neither train_flops nor flops_per_token")
        # flops_per_token is the forward count (levanter's convention)
        train_flops = TRAINING_FLOPS_MULTIPLIER * summary["flops_per_token"] * summary["tokens"]
    loss = float(summary[LOSS_KEY])
    if not math.isfinite(loss):
        raise RunFormatError(f"{summary_url}: {LOSS_KEY} is {loss} (diverged run)")
    return RunRecord(
        name=os.path.basename(path.rstrip("/")),
        path=path,
        params=int(summary["params"]),
        tokens=int(summary["tokens"]),
        train_flops=float(train_flops),
        loss=loss,
        metrics=read_eval_metrics(eval_path) if eval_path else {},
        hidden=(summary.get("model") or {}).get("hidden_dim"),
    )


def read_eval_metrics(path: str) -> dict[str, float]:
    """Numeric metrics of an eval result: a JSON file, or a directory holding ``results.json``.

    Accepts ``{"metrics": {name: value}}`` or a flat ``{name: value}``; non-numeric entries are ignored.
    """
    url = path if path.endswith(".json") else fileio.join(path, EVAL_RESULTS_FILE)
    results = fileio.read_json(url)
    if not isinstance(results, dict):
        raise RunFormatError(f"{url}: expected a JSON object")
    metrics = results.get("metrics", results)
    if not isinstance(metrics, dict):
        raise RunFormatError(f"{url}: 'metrics' is not an object")
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


@dataclasses.dataclass
class LoadedRuns:
    """Runs that could be read, and counts of those that could not, by reason."""

    records: list[RunRecord]
    skipped: dict[str, int]
    skipped_paths: dict[str, str]
    """path -> reason, for the report."""


def read_runs(run_paths: tuple[str, ...], eval_paths: tuple[str, ...] = ()) -> LoadedRuns:
    """Read every run; unreadable ones are skipped, counted and logged (never silently dropped)."""
    if eval_paths and len(eval_paths) != len(run_paths):
        raise ValueError(f"eval_paths ({len(eval_paths)}) must match run_paths ({len(run_paths)}) one to one")
    records: list[RunRecord] = []
    skipped: collections.Counter[str] = collections.Counter()
    skipped_paths: dict[str, str] = {}
    for i, path in enumerate(run_paths):
        eval_path = eval_paths[i] if eval_paths else None
        try:
            records.append(read_run(path, eval_path or None))
        except FileNotFoundError as error:
            reason = "missing summary or eval results"
            logger.warning("skipping %s: %s", path, error)
            skipped[reason] += 1
            skipped_paths[path] = f"{reason}: {error}"
        except (RunFormatError, ValueError, TypeError) as error:
            reason = "malformed summary or eval results"
            logger.warning("skipping %s: %s", path, error)
            skipped[reason] += 1
            skipped_paths[path] = f"{reason}: {error}"
    return LoadedRuns(records=records, skipped=dict(skipped), skipped_paths=skipped_paths)
