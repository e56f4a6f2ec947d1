"""Evaluation results as people read them: one row per task and metric, with its 95 % interval,
the value rounded to what that interval supports, the items scored, the items skipped by reason,
and SODA's reported number where SODA reports one for that metric.

`result_rows` builds the rows (the dashboard's evaluation table); `results_table` prints them
(``make demo``, ``experiments/soda_eval.py``, the eval step's log). Both read ``results.json`` and,
when given, the per-item records (``items/{task}.jsonl``, `read_items`), which the intervals come
from:

* accuracies (likelihood pairs, overall and per group): Wilson score interval;
* means over items (mean per-utterance WER, Seed-TTS WER x 100, speaker similarity, generated
  seconds) and ratios of sums (corpus WER, NLL per token kind): percentile bootstrap over items
  (`BOOTSTRAP_RESAMPLES`, seed 0); an lm-eval accuracy: Wilson over the samples it counted.

A metric without an interval (BLEU, a macro mean over groups, no item records) is printed with
`PLAIN_SIGNIFICANT` significant digits.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from soda_jax import fileio
from soda_jax.eval.results import ITEMS_DIR, RESULTS_FILE, SKIPPED

CONFIDENCE = 0.95
Z_95 = 1.959963984540054
"""Standard normal quantile of the two-sided 95 % interval."""
BOOTSTRAP_RESAMPLES = 1000
"""Resamples of the percentile bootstrap over items."""
PLAIN_SIGNIFICANT = 4
"""Significant digits of a value printed without an interval."""
MAX_DECIMALS = 6
"""Decimals a value is never rounded past, however narrow its interval."""


@dataclasses.dataclass(frozen=True)
class ReportedScore:
    """A number SODA reported, in our metric's units."""

    value: float
    """The score in our metric's units (accuracies and WERs as fractions, Seed-TTS WER x 100)."""
    as_reported: str
    """As the source prints it ("61.8")."""
    benchmark: str
    """The benchmark's name as reported."""
    model: str = "SODA-4B"
    """The model it belongs to."""
    model_certain: bool = False
    """False: the source does not state the size; ``model`` is the likely one (soda-facts.md)."""
    note: str = ""
    """What the source leaves open (shots, the exact metric)."""

    @property
    def model_label(self) -> str:
        return self.model if self.model_certain else f"{self.model}?"

    def label(self) -> str:
        """The score in our metric's units, and whose it is (``0.618 (SODA-4B?)``)."""
        return f"{self.value:.3g} ({self.model_label})"


_AGGREGATOR = "a paper aggregator's summary of SODA; the model size is not stated"
SODA_REPORTED: dict[str, ReportedScore] = {
    "swuggy/accuracy": ReportedScore(0.618, "61.8", "sWUGGY", note=_AGGREGATOR),
    "sblimp/accuracy": ReportedScore(0.524, "52.4", "sBLIMP", note=_AGGREGATOR),
    "salmon/accuracy": ReportedScore(0.706, "70.6", "SALMon", note=_AGGREGATOR),
    "twuggy/accuracy": ReportedScore(0.748, "74.8", "tWUGGY", note=_AGGREGATOR),
    "tblimp/accuracy": ReportedScore(0.713, "71.3", "tBLIMP", note=_AGGREGATOR),
    "librispeech/wer": ReportedScore(
        0.050, "5.0", "LibriSpeech test-clean WER", note=f"{_AGGREGATOR}; 0-shot or N-shot not stated"
    ),
    "seed_tts/wer_x100": ReportedScore(6.1, "6.1", "Seed-TTS eval WER (Whisper-large-v3)", note=_AGGREGATOR),
    "lm_eval/hellaswag/acc_norm": ReportedScore(
        0.526, "52.6", "HellaSwag", note=f"{_AGGREGATOR}; acc or acc_norm not stated (acc_norm assumed)"
    ),
}
"""SODA's eight reported scores (soda-facts.md, eval-inference-facts.md) under the metric names of
`soda_jax.eval.tasks.soda_tasks` (``{task}/{metric}``), all probably SODA-4B's. Their losses are on
another vocabulary and corpus: drawn as levels on capability plots, printed beside our numbers."""


@dataclasses.dataclass(frozen=True)
class ResultRow:
    """One metric of one task, ready to print."""

    task: str
    metric: str
    value: float | None
    interval: tuple[float, float] | None
    """95 % interval (None where none can be computed)."""
    items: int | None
    """Items scored."""
    skipped: dict[str, int]
    """Items not scored, by reason (or, for a task not run, its reason: 1)."""
    reported: ReportedScore | None
    """SODA's number for this metric."""
    value_text: str
    interval_text: str

    @property
    def name(self) -> str:
        return f"{self.task}/{self.metric}"


# -------------------------------------------------------------------------------------- rounding
def decimals_for(half_width: float) -> int:
    """Decimals that keep one significant digit of the interval's half-width (two when it starts with a 1)."""
    if not half_width > 0 or not math.isfinite(half_width):
        return MAX_DECIMALS
    exponent = math.floor(math.log10(half_width))
    leading = half_width / 10**exponent
    return int(min(MAX_DECIMALS, max(0, -exponent + (1 if leading < 2 else 0))))


def format_value(value: Any, interval: tuple[float, float] | None = None) -> tuple[str, str]:
    """(value, interval) as text: rounded to what the interval supports, else `PLAIN_SIGNIFICANT` digits."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ("-" if value is None else str(value)), ""
    if math.isnan(value):
        return "nan", ""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return f"{value:.{PLAIN_SIGNIFICANT}g}", ""
    if interval[1] - interval[0] <= 0:  # every item scored the same: nothing to round to
        plain = f"{{:.{PLAIN_SIGNIFICANT}g}}"
        return plain.format(value), f"[{plain.format(interval[0])}, {plain.format(interval[1])}]"
    places = decimals_for((interval[1] - interval[0]) / 2)
    return f"{value:.{places}f}", f"[{interval[0]:.{places}f}, {interval[1]:.{places}f}]"


# ------------------------------------------------------------------------------------- intervals
def wilson_interval(correct: float, total: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if total <= 0:
        return (math.nan, math.nan)
    p, z = correct / total, Z_95
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def bootstrap_ratio(numerators: ArrayLike, denominators: ArrayLike, scale: float = 1.0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of ``scale * sum(num) / sum(den)`` over items (a mean when
    every denominator is 1); None with fewer than two items."""
    num, den = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    keep = np.isfinite(num) & np.isfinite(den)
    num, den = num[keep], den[keep]
    if num.size < 2:
        return None
    rng = np.random.default_rng(0)
    picks = rng.integers(0, num.size, size=(BOOTSTRAP_RESAMPLES, num.size))
    sums = den[picks].sum(axis=1)
    ratios = scale * num[picks].sum(axis=1)[sums > 0] / sums[sums > 0]
    if not ratios.size:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    return (float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail)))


def _word_errors(
    records: list[dict], reference: str, hypothesis: str, normalizer_name: str
) -> tuple[list[int], list[int]]:
    from soda_jax.eval.normalize import normalizer
    from soda_jax.eval.wer import utterance_errors

    norm = normalizer(normalizer_name)
    errors, words = [], []
    for record in records:
        ref = norm(str(record.get(reference, "")))
        if ref.strip():
            e, n = utterance_errors(ref, norm(str(record.get(hypothesis) or "")))
            errors.append(e)
            words.append(n)
    return errors, words


def _kind_columns(summary: Mapping[str, Any], nll: np.ndarray, tokens: np.ndarray) -> dict[str, int]:
    """Which column of the records' ``nll`` / ``tokens`` lists each kind of the summary is: the one whose
    totals give the summary's token count and loss (the summary's JSON has its keys sorted, so its
    order is not the records')."""
    totals, sums = tokens.sum(axis=0), nll.sum(axis=0)
    columns: dict[str, int] = {}
    for kind, count in (summary.get("tokens_by_kind") or {}).items():
        loss = (summary.get("metrics") or {}).get(f"{kind}/loss")
        for j in range(tokens.shape[1]):
            if j in columns.values() or totals[j] != count:
                continue
            if (
                totals[j]
                and isinstance(loss, (int, float))
                and math.isfinite(loss)
                and not math.isclose(sums[j] / totals[j], loss, rel_tol=1e-6)
            ):
                continue
            columns[kind] = j
            break
    return columns


def _nll_intervals(summary: Mapping[str, Any], records: list[dict]) -> dict[str, tuple[float, float]]:
    """Intervals of the per-kind NLLs over documents (`_kind_columns` matches the records' columns to kinds)."""
    out = {}
    nll = np.array([r["nll"] for r in records], np.float64)
    tokens = np.array([r["tokens"] for r in records], np.float64)
    for kind, k in _kind_columns(summary, nll, tokens).items():
        interval = bootstrap_ratio(nll[:, k], tokens[:, k])
        if interval is not None:
            out[f"{kind}/loss"] = interval
            out[f"{kind}/bits_per_token"] = (interval[0] / math.log(2), interval[1] / math.log(2))
    interval = bootstrap_ratio(nll.sum(axis=1), tokens.sum(axis=1))
    if interval is not None:
        out["all/loss"] = interval
        out["all/bits_per_token"] = (interval[0] / math.log(2), interval[1] / math.log(2))
    return out


def _mean_intervals(records: list[dict], fields: Mapping[str, tuple[str, float]]) -> dict[str, tuple[float, float]]:
    """``metric -> interval`` of the mean of a per-item field (``fields``: metric -> (field, scale))."""
    out = {}
    for metric, (field, scale) in fields.items():
        values = [float(r[field]) for r in records if isinstance(r.get(field), (int, float))]
        interval = bootstrap_ratio(values, [1.0] * len(values), scale)
        if interval is not None:
            out[metric] = interval
    return out


def metric_intervals(summary: Mapping[str, Any], records: list[dict] | None) -> dict[str, tuple[float, float]]:
    """95 % intervals of a task's metrics, from its summary and its scored item records (module docstring)."""
    metrics = summary.get("metrics") or {}
    settings = summary.get("settings") or {}
    out: dict[str, tuple[float, float]] = {}
    if "accuracy_interval95" in summary and "accuracy" in metrics:  # likelihood pairs
        low, high = summary["accuracy_interval95"]
        out["accuracy"] = (float(low), float(high))
    if isinstance(settings.get("tasks"), (list, tuple)) and summary.get("items"):  # lm-eval: Wilson over its samples
        for name, value in metrics.items():
            if name.split("/")[-1].startswith("acc") and isinstance(value, (int, float)):
                out[name] = wilson_interval(value * summary["items"], int(summary["items"]))
    if not records:
        return out
    first = records[0]
    if "correct" in first:
        groups: dict[str, list[bool]] = {}
        for r in records:
            if r.get("group") is not None:
                groups.setdefault(str(r["group"]), []).append(bool(r["correct"]))
        for group, outcomes in groups.items():
            out[f"accuracy/{group}"] = wilson_interval(sum(outcomes), len(outcomes))
    elif "nll" in first and isinstance(summary.get("tokens_by_kind"), dict):  # validation NLL by token kind
        out.update(_nll_intervals(summary, records))
    elif "reference" in first and "hypothesis" in first and "wer" in metrics:  # ASR
        errors, words = _word_errors(records, "reference", "hypothesis", settings.get("normalizer", "soda"))
        for metric, interval in (
            ("wer", bootstrap_ratio(errors, words)),
            ("mean_utterance_wer", bootstrap_ratio([e / n for e, n in zip(errors, words)], [1.0] * len(words))),
        ):
            if interval is not None:
                out[metric] = interval
    elif "utterance_wer" in first:  # TTS
        out.update(
            _mean_intervals(
                records, {"wer_x100": ("utterance_wer", 100.0), "speaker_similarity": ("speaker_similarity", 1.0)}
            )
        )
        errors, words = _word_errors(records, "target_text", "transcript", settings.get("normalizer", "seed_tts"))
        interval = bootstrap_ratio(errors, words)
        if interval is not None:
            out["corpus_wer"] = interval
    elif "generated_seconds" in first:  # continuation
        out.update(
            _mean_intervals(
                records,
                {"speaker_similarity": ("speaker_similarity", 1.0), "generated_seconds": ("generated_seconds", 1.0)},
            )
        )
    valid = [bool(r["frame_valid"]) for r in records if "frame_valid" in r]
    if valid and "frame_valid_rate" in metrics:  # TTS, continuation: Wilson over the generations
        out["frame_valid_rate"] = wilson_interval(sum(valid), len(valid))
    return out


# ------------------------------------------------------------------------------------------ rows
def read_items(eval_dir: str, tasks: Sequence[str]) -> dict[str, list[dict]]:
    """The scored item records of each task (``items/{task}.jsonl``; tasks without a file are left out)."""
    out = {}
    for task in tasks:
        path = fileio.join(eval_dir, ITEMS_DIR, f"{task}.jsonl")
        if fileio.exists(path):
            lines = fileio.read_text(path).splitlines()
            out[task] = [r for r in (json.loads(line) for line in lines if line.strip()) if SKIPPED not in r]
    return out


def _item_count(summary: Mapping[str, Any]) -> int | None:
    count = summary.get("items", summary.get("documents", (summary.get("wer") or {}).get("utterances")))
    return int(count) if isinstance(count, (int, float)) else None


def result_rows(
    results: Mapping[str, Any],
    items: Mapping[str, list[dict]] | None = None,
    *,
    reported: Mapping[str, ReportedScore] = SODA_REPORTED,
    not_run: Mapping[str, str] | None = None,
) -> list[ResultRow]:
    """A row per task and metric of ``results`` (results.json), intervals from ``items`` (`read_items`);
    ``not_run``: tasks that were not run -> why (a missing evaluation set), listed last."""
    rows = []
    tasks = results.get("tasks") or _tasks_of_flat_metrics(results.get("metrics") or {})
    for task, summary in tasks.items():
        intervals = metric_intervals(summary, (items or {}).get(task))
        for metric, value in (summary.get("metrics") or {}).items():
            interval = intervals.get(metric)
            text, interval_text = format_value(value, interval)
            rows.append(
                ResultRow(
                    task=task,
                    metric=metric,
                    value=value if isinstance(value, (int, float)) else None,
                    interval=interval,
                    items=_item_count(summary),
                    skipped=dict(summary.get("skipped") or {}),
                    reported=reported.get(f"{task}/{metric}"),
                    value_text=text,
                    interval_text=interval_text,
                )
            )
    for task, reason in (not_run or {}).items():
        rows.append(ResultRow(task, "-", None, None, None, {f"not run: {reason}": 1}, None, "-", ""))
    return rows


def _tasks_of_flat_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: {"metrics": ...}}`` of results that hold only ``{"metrics": {"task/metric": value}}``."""
    tasks: dict[str, dict[str, Any]] = {}
    for name, value in metrics.items():
        task, _, metric = name.partition("/")
        tasks.setdefault(task, {"metrics": {}})["metrics"][metric or task] = value
    return tasks


def _skip_text(row: ResultRow) -> str:
    return ", ".join(f"{k}={v}" if not k.startswith("not run") else k for k, v in sorted(row.skipped.items())) or "-"


def results_table(
    results: Mapping[str, Any],
    items: Mapping[str, list[dict]] | None = None,
    *,
    reported: Mapping[str, ReportedScore] = SODA_REPORTED,
    not_run: Mapping[str, str] | None = None,
) -> str:
    """`result_rows` as a plain-text table (task, metric, value, 95 % interval, items, skipped, SODA)."""
    rows = result_rows(results, items, reported=reported, not_run=not_run)
    header = ("task", "metric", "value", "95% interval", "items", "skipped", "SODA reported")
    table: list[tuple[str, ...]] = [header]
    previous = None
    for row in rows:
        first = row.task != previous
        table.append(
            (
                row.task if first else "",
                row.metric,
                row.value_text,
                row.interval_text,
                str(row.items) if first and row.items is not None else "",
                _skip_text(row) if first else "",
                row.reported.label() if row.reported else "",
            )
        )
        previous = row.task
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(row.reported for row in rows):
        lines.append(
            "SODA reported: numbers from a paper aggregator, model size unstated ('?': probably SODA-4B);"
            " comparable only on SODA's sets with its scorers"
        )
    return "\n".join(lines)


def results_table_of(eval_dir: str, *, not_run: Mapping[str, str] | None = None) -> str | None:
    """`results_table` of an evaluation output directory (results.json + its item records); None
    when it has no results.json."""
    results = fileio.read_json_or_none(fileio.join(eval_dir, RESULTS_FILE))
    if results is None:
        return None
    return results_table(results, read_items(eval_dir, list(results.get("tasks") or {})), not_run=not_run)
