"""SODA's design-choice studies: arms trained alike but for one choice, compared on held-out NLL and evals.

A study (data sources, text share, token types; docs/design-studies.md) is a few `StudyArm`s, each a
training run and optionally its evaluation. The analysis step `analyze_study` reads, per arm, the
run's ``summary.json`` (its ``heldout_nll`` section: token-weighted held-out NLL over the speech
components and per token kind, and per component; `soda_jax.training.validation.heldout_nll`) and
the evaluation's ``results.json``, and writes::

    {out}/study.json    one row per arm: params, tokens, held-out speech NLL (all, text, semantic,
                        acoustic), held-out NLL per component, eval metrics; arms that could not
                        be read, counted by reason and named
    {out}/study.png     three panels over the arms: held-out speech NLL by token kind, held-out
                        NLL per component (both on log axes), eval accuracies (chance drawn at 0.5)

An arm whose summary is missing or holds no held-out NLL is skipped and counted (never dropped
silently); an arm without eval results keeps its NLL row with no metrics, also counted. The step
fails only when no arm can be read. `study_table` renders the rows as a markdown table (the docs').
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator  # noqa: E402

from soda_jax import fileio  # noqa: E402
from soda_jax.contracts import SUMMARY_FILE  # noqa: E402
from soda_jax.scaling.plots import save_png  # noqa: E402
from soda_jax.scaling.runs import RunFormatError, read_eval_metrics  # noqa: E402
from soda_jax.training.validation import HELDOUT_NLL  # noqa: E402

logger = logging.getLogger(__name__)

STUDY_FILE = "study.json"
"""The study's table (`analyze_study`)."""
STUDY_PLOT = "study.png"
"""The study's comparison plot."""
SPEECH_KINDS = ("text", "semantic", "acoustic")
"""Token kinds of the held-out speech NLL a study reports (markers are left out: four ids)."""
DEFAULT_STUDY_METRICS = (
    "swuggy/accuracy",
    "sblimp/accuracy",
    "salmon/accuracy",
    "twuggy/accuracy",
    "tblimp/accuracy",
    "lm_eval/hellaswag/acc_norm",
)
"""Eval metrics a study draws (whichever the arms have): SODA's likelihood tasks and HellaSwag,
all accuracies, chance 0.5 for the pairs."""
CHANCE_ACCURACY = 0.5
"""A likelihood pair's chance accuracy."""
LOG_TICKS = (1.0, 2.0, 3.0, 5.0)
"""Labelled ticks per decade on the NLL panels' log axes."""
MISSING_SUMMARY, NO_HELDOUT, MALFORMED, NO_EVAL = (
    "missing summary",
    "no held-out NLL in summary",
    "malformed summary",
    "no eval results",
)
"""Why an arm (or its evaluation) could not be read."""


@dataclasses.dataclass(frozen=True)
class StudyArm:
    """One arm of a study: the choice it makes."""

    name: str
    """Short id, used in step names (``text-25``)."""
    label: str
    """How tables and plots name it (``25% text``)."""
    value: float | None = None
    """Where it sits on the study's numeric axis (a text share of 0.25), None for a categorical choice."""


@dataclasses.dataclass(frozen=True)
class StudyAnalysisConfig:
    """Inputs and settings of `analyze_study`."""

    title: str
    """What the study compares (the plot's title)."""
    arms: tuple[StudyArm, ...]
    """The arms, in the order tables and plots show them."""
    run_paths: tuple[str, ...]
    """Training output directories, one per arm."""
    output_path: str
    """Where ``study.json`` and ``study.png`` go."""
    eval_paths: tuple[str, ...] = ()
    """Evaluation outputs, one per arm ("" for an arm without one); empty: no evaluations."""
    metrics: tuple[str, ...] = DEFAULT_STUDY_METRICS
    """Eval metrics to draw and tabulate (those no arm has are left out)."""
    axis_label: str = ""
    """What the arms vary (the plots' x label)."""


def arm_row(arm: StudyArm, run_path: str) -> dict[str, Any]:
    """One arm's row without eval metrics (raises FileNotFoundError or RunFormatError naming the file)."""
    url = fileio.join(run_path, SUMMARY_FILE)
    summary = fileio.read_json(url)
    heldout = summary.get(HELDOUT_NLL)
    if not isinstance(heldout, dict):
        raise RunFormatError(f"{url}: no {HELDOUT_NLL} section (a run that never validated at its end?)")
    speech = heldout.get("speech") or {}
    kinds = speech.get("kinds") or {}
    components = heldout.get("components") or {}
    try:
        row = {
            "arm": arm.name,
            "label": arm.label,
            "value": arm.value,
            "run": run_path,
            "eval": None,
            "params": int(summary["params"]),
            "tokens": int(summary["tokens"]),
            "speech_nll": _loss(speech.get("loss")),
            "speech_nll_by_kind": {kind: _loss((kinds.get(kind) or {}).get("loss")) for kind in SPEECH_KINDS},
            "speech_components": list(speech.get("components") or []),
            "component_nll": {name: _loss(part.get("loss")) for name, part in sorted(components.items())},
            "metrics": {},
        }
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise RunFormatError(f"{url}: {error!r}") from error
    return row


def _loss(value: Any) -> float:
    return math.nan if value is None else float(value)


def read_study(config: StudyAnalysisConfig) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, str]]:
    """Rows of the arms that could be read, counts of what could not by reason, and which."""
    if len(config.run_paths) != len(config.arms):
        raise ValueError(f"{len(config.arms)} arms but {len(config.run_paths)} run paths: they pair one to one")
    if config.eval_paths and len(config.eval_paths) != len(config.arms):
        raise ValueError(
            f"{len(config.arms)} arms but {len(config.eval_paths)} eval paths (use '' for an arm without one)"
        )
    rows: list[dict[str, Any]] = []
    skipped: collections.Counter[str] = collections.Counter()
    why: dict[str, str] = {}
    for i, (arm, run_path) in enumerate(zip(config.arms, config.run_paths)):
        eval_path = config.eval_paths[i] if config.eval_paths else ""
        try:
            row = arm_row(arm, run_path)
        except (FileNotFoundError, RunFormatError) as error:
            reason = (
                MISSING_SUMMARY
                if isinstance(error, FileNotFoundError)
                else NO_HELDOUT
                if HELDOUT_NLL in str(error)
                else MALFORMED
            )
            logger.warning("study %s: skipping arm %s: %s", config.title, arm.name, error)
            skipped[reason] += 1
            why[arm.name] = f"{reason}: {error}"
            continue
        if eval_path:
            try:
                row["metrics"], row["eval"] = read_eval_metrics(eval_path), eval_path
            except (FileNotFoundError, RunFormatError) as error:
                logger.warning("study %s: arm %s has no eval results: %s", config.title, arm.name, error)
                skipped[NO_EVAL] += 1
                why[f"{arm.name} (eval)"] = f"{NO_EVAL}: {error}"
        rows.append(row)
    return rows, dict(skipped), why


def analyze_study(config: StudyAnalysisConfig) -> dict[str, Any]:
    """Read every arm, write ``study.json`` and ``study.png``; returns what ``study.json`` holds."""
    rows, skipped, why = read_study(config)
    if not rows:
        raise ValueError(f"study {config.title!r}: no arm could be read ({why})")
    metrics = [m for m in config.metrics if any(m in row["metrics"] for row in rows)]
    result = {
        "title": config.title,
        "axis_label": config.axis_label,
        "arms": rows,
        "metrics": metrics,
        "skipped": skipped,
        "skipped_arms": why,
        "plot": STUDY_PLOT,
    }
    save_png(study_figure(config.title, rows, metrics, config.axis_label), fileio.join(config.output_path, STUDY_PLOT))
    fileio.atomic_write_json(fileio.join(config.output_path, STUDY_FILE), result)
    logger.info(
        "study %s: %d arms read, skipped %s\n%s", config.title, len(rows), skipped or "none", study_table(rows, metrics)
    )
    return result


def study_figure(
    title: str, rows: Sequence[dict[str, Any]], metrics: Sequence[str], axis_label: str = ""
) -> plt.Figure:
    """Held-out speech NLL by kind, held-out NLL per component, and eval accuracies, over the arms."""
    figure, (kind_axes, component_axes, eval_axes) = plt.subplots(1, 3, figsize=(15, 4.2))
    x = np.arange(len(rows))
    speech = [r["speech_nll"] for r in rows]
    _series(kind_axes, x, {"all speech tokens": speech}, marker="o", lw=2)
    _series(kind_axes, x, {kind: [r["speech_nll_by_kind"][kind] for r in rows] for kind in SPEECH_KINDS}, marker=".")
    for position, value in zip(x, speech):  # the headline number, readable whatever the axis spans
        if math.isfinite(value):
            kind_axes.annotate(
                f"{value:.3f}", (position, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7
            )
    kind_axes.set_ylabel("held-out speech NLL (nats/token)")
    kind_axes.set_title("held-out speech NLL, by token kind", fontsize=10)
    components = sorted({name for r in rows for name in r["component_nll"]})
    _series(
        component_axes,
        x,
        {name: [r["component_nll"].get(name, math.nan) for r in rows] for name in components},
        marker="o",
    )
    component_axes.set_ylabel("held-out NLL (nats/token)")
    component_axes.set_title("held-out NLL per data component", fontsize=10)
    if metrics:
        _series(eval_axes, x, {m: [r["metrics"].get(m, math.nan) for r in rows] for m in metrics}, marker="o")
        eval_axes.axhline(CHANCE_ACCURACY, color="grey", linestyle="--", linewidth=1, label="chance (pairs)")
        eval_axes.set_ylabel("accuracy")
        eval_axes.legend(fontsize=7)
    else:
        eval_axes.text(0.5, 0.5, "no evaluation results", ha="center", va="center", transform=eval_axes.transAxes)
    eval_axes.set_title("evaluation tasks", fontsize=10)
    for axes in (kind_axes, component_axes):
        axes.set_yscale("log")  # an arm that never saw a source sits far above the others
        axes.yaxis.set_minor_locator(LogLocator(subs=LOG_TICKS))
        for formatter in (axes.yaxis.set_major_formatter, axes.yaxis.set_minor_formatter):
            formatter(FormatStrFormatter("%g"))
        axes.tick_params(axis="y", which="both", labelsize=7)
    for axes in (kind_axes, component_axes, eval_axes):
        axes.set_xticks(x, [r["label"] for r in rows], rotation=20, fontsize=8)
        axes.set_xlabel(axis_label)
        axes.grid(alpha=0.3)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def _series(axes, x, series: dict[str, list[float]], **style) -> None:
    for name, values in series.items():
        axes.plot(x, np.asarray(values, float), label=name, **style)
    axes.legend(fontsize=7)


def study_table(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = ()) -> str:
    """A markdown table: one line per arm, held-out speech NLL (all and by kind), per component, metrics."""
    components = sorted({name for r in rows for name in r["component_nll"]})
    header = ["arm", "speech NLL", *(f"{k}" for k in SPEECH_KINDS), *(f"{c} NLL" for c in components), *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["label"], _cell(r["speech_nll"]), *(_cell(r["speech_nll_by_kind"][k]) for k in SPEECH_KINDS)]
        cells += [_cell(r["component_nll"].get(c, math.nan)) for c in components]
        cells += [_cell(r["metrics"].get(m, math.nan)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
