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
from soda_jax.training.validation import HELDOUT_NLL

logger = logging.getLogger(__name__)

HELDOUT_SPEECH_NLL = "heldout_speech_nll"
"""Token-weighted NLL on the held-out validation split of the speech components (those whose targets
include audio ids; text-only components such as Nemotron-CC are left out): SODA's fitted loss and x-axis."""
VALIDATION_MACRO = "validation_macro"
"""The unweighted mean of every component's validation loss (``final_validation_loss``; text included)."""
DEFAULT_FITTED_LOSS = HELDOUT_SPEECH_NLL
LOSS_KEY = "final_validation_loss"
"""The summary's macro validation loss (`VALIDATION_MACRO`)."""
KIND_LOSSES = ("text", "semantic", "acoustic")
"""Token kinds a fitted loss may be restricted to (``heldout_speech_nll/{kind}``)."""


def fitted_loss_names() -> tuple[str, ...]:
    """Every loss the analysis can fit: `HELDOUT_SPEECH_NLL`, its per-kind parts, all components
    token-weighted (``heldout_nll``), and `VALIDATION_MACRO`."""
    return (
        HELDOUT_SPEECH_NLL,
        *(f"{HELDOUT_SPEECH_NLL}/{kind}" for kind in KIND_LOSSES),
        HELDOUT_NLL,
        VALIDATION_MACRO,
    )


def describe_loss(name: str) -> str:
    """What a fitted loss is, in words (for plots and the fits JSON)."""
    if name == VALIDATION_MACRO:
        return "mean validation loss over every data component (unweighted, text included)"
    if name == "heldout_nll":
        return "held-out NLL over every data component, token-weighted (nats/token)"
    if name == HELDOUT_SPEECH_NLL:
        return "held-out speech NLL, token-weighted (nats/token)"
    kind = name.removeprefix(f"{HELDOUT_SPEECH_NLL}/")
    if name.startswith(f"{HELDOUT_SPEECH_NLL}/") and kind in KIND_LOSSES:
        return f"held-out speech NLL of the {kind} tokens (nats/token)"
    raise ValueError(f"unknown fitted loss {name!r}; known: {', '.join(fitted_loss_names())}")


def run_loss(summary: dict, name: str, where: str) -> float:
    """The fitted loss ``name`` of one run's summary; RunFormatError naming ``where`` when it lacks it."""
    describe_loss(name)  # unknown names fail here, not as a missing value
    if name == VALIDATION_MACRO:
        value = summary.get(LOSS_KEY)
        if value is None:
            raise MissingLossError(f"{where}: no {LOSS_KEY}")
        return float(value)
    section = summary.get(HELDOUT_NLL)
    if not isinstance(section, dict):
        raise MissingLossError(
            f"{where}: no {HELDOUT_NLL} section (a summary written before per-kind validation, "
            f"or a run never validated at its end): re-run its training, or fit {VALIDATION_MACRO!r}"
        )
    pool = section.get("all" if name == "heldout_nll" else "speech") or {}
    if name.startswith(f"{HELDOUT_SPEECH_NLL}/"):
        pool = (pool.get("kinds") or {}).get(name.rsplit("/", 1)[1]) or {}
    value = pool.get("loss")
    if value is None:
        raise MissingLossError(f"{where}: {HELDOUT_NLL} has no {name} (no validation component holds audio?)")
    return float(value)


class RunFormatError(ValueError):
    """A summary or eval file exists but does not hold what the contract says."""


class MissingLossError(RunFormatError):
    """A summary without the loss the analysis fits (one written before it was recorded, say)."""


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
    """The fitted loss (`ScalingAnalysisConfig.fitted_loss`) at the end of training."""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    """Eval metrics (empty without eval results)."""
    hidden: int | None = None
    """Model width (the summary's ``model.hidden_dim``; None when the summary does not record it)."""
    losses: dict[str, float] = dataclasses.field(default_factory=dict)
    """Every other loss of `fitted_loss_names` the summary holds (to compare what a fit would see)."""


def read_run(path: str, eval_path: str | None = None, fitted_loss: str = DEFAULT_FITTED_LOSS) -> RunRecord:
    """One run's record; raises FileNotFoundError or RunFormatError naming the file."""
    summary_url = fileio.join(path, SUMMARY_FILE)
    summary = fileio.read_json(summary_url)
    missing = [key for key in ("params", "tokens") if summary.get(key) is None]
    if missing:
        raise RunFormatError(f"{summary_url}: missing {', '.join(missing)}")
    train_flops = summary.get("train_flops")
    if train_flops is None:
        if summary.get("flops_per_token") is None:
            raise RunFormatError(f"{summary_url}: neither train_flops nor flops_per_token")
        # flops_per_token is the forward count (levanter's convention)
        train_flops = TRAINING_FLOPS_MULTIPLIER * summary["flops_per_token"] * summary["tokens"]
    loss = run_loss(summary, fitted_loss, summary_url)
    if not math.isfinite(loss):
        raise RunFormatError(f"{summary_url}: {fitted_loss} is {loss} (diverged run)")
    others = {}
    for name in fitted_loss_names():
        try:
            others[name] = run_loss(summary, name, summary_url)
        except RunFormatError:
            continue
    return RunRecord(
        name=os.path.basename(path.rstrip("/")),
        path=path,
        params=int(summary["params"]),
        tokens=int(summary["tokens"]),
        train_flops=float(train_flops),
        loss=loss,
        metrics=read_eval_metrics(eval_path) if eval_path else {},
        hidden=(summary.get("model") or {}).get("hidden_dim"),
        losses=others,
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


def read_runs(
    run_paths: tuple[str, ...], eval_paths: tuple[str, ...] = (), fitted_loss: str = DEFAULT_FITTED_LOSS
) -> LoadedRuns:
    """Read every run; unreadable ones are skipped, counted and logged (never silently dropped)."""
    if eval_paths and len(eval_paths) != len(run_paths):
        raise ValueError(f"eval_paths ({len(eval_paths)}) must match run_paths ({len(run_paths)}) one to one")
    records: list[RunRecord] = []
    skipped: collections.Counter[str] = collections.Counter()
    skipped_paths: dict[str, str] = {}
    for i, path in enumerate(run_paths):
        eval_path = eval_paths[i] if eval_paths else None
        try:
            records.append(read_run(path, eval_path or None, fitted_loss))
        except FileNotFoundError as error:
            reason = "missing summary or eval results"
            logger.warning("skipping %s: %s", path, error)
            skipped[reason] += 1
            skipped_paths[path] = f"{reason}: {error}"
        except MissingLossError as error:
            reason = f"no {fitted_loss} in summary"
            logger.warning("skipping %s: %s", path, error)
            skipped[reason] += 1
            skipped_paths[path] = f"{reason}: {error}"
        except (RunFormatError, ValueError, TypeError) as error:
            reason = "malformed summary or eval results"
            logger.warning("skipping %s: %s", path, error)
            skipped[reason] += 1
            skipped_paths[path] = f"{reason}: {error}"
    return LoadedRuns(records=records, skipped=dict(skipped), skipped_paths=skipped_paths)
