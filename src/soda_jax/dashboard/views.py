"""What each page shows, as plain data for the templates and the JSON API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import (
    EVAL_ITEMS_DIR,
    EVAL_RESULTS_FILE,
    FITS_FILE,
    METRICS_FILE,
    STATS_FILE,
    SUMMARY_FILE,
)
from soda_jax.dashboard.dag import dag_svg, dot_available
from soda_jax.dashboard.files import Item, list_directory, load_json
from soda_jax.dashboard.metrics import CURVES, CurveCache
from soda_jax.dashboard.paths import OutsidePrefix, Resolved
from soda_jax.dashboard.previews import AUDIO_SUFFIXES, parse_json_lines, preview
from soda_jax.dashboard.store import ExperimentView, PrefixStore, StepView
from soda_jax.eval.report import read_items, result_rows

RESULT_FILES = (SUMMARY_FILE, STATS_FILE, EVAL_RESULTS_FILE)
"""Small result files a step may leave; shown as tables on its page."""
ITEMS_PAGE = 25
FILES_PAGE = 500
CONFIG_VALUE_CHARS = 300


# ------------------------------------------------------------------------------------ formatting
def status_class(status: str) -> str:
    return f"status-{status}"


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def when(timestamp: Any) -> str:
    if not isinstance(timestamp, (int, float)):
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def scalar_rows(data: Any, path: str = "", limit: int = 400) -> list[tuple[str, str]]:
    """(dotted key, value) for every scalar leaf of a JSON value (results and summaries as tables)."""
    rows: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            rows.append((key, text if len(text) <= CONFIG_VALUE_CHARS else text[:CONFIG_VALUE_CHARS] + "…"))

    walk(data, path)
    return rows


# ----------------------------------------------------------------------------------- experiments
def experiment_row(experiment: ExperimentView) -> dict[str, Any]:
    return {
        "key": experiment.key,
        "description": experiment.description,
        "created_at": experiment.created_at,
        "counts": experiment.counts(),
        "steps": len(experiment.steps),
        "wall_seconds": experiment.wall_seconds(),
        "error": experiment.record.error,
    }


def step_summary(step: StepView) -> dict[str, Any]:
    prov = step.prov
    lease = step.lease
    return {
        "name": step.name,
        "rel": step.rel,
        "status": step.status,
        "status_time": step.status_time,
        "duration_s": prov.get("duration_s"),
        "host": prov.get("host"),
        "lease_owner": lease.owner if lease else None,
        "heartbeat_age_s": lease.age_s if lease and step.status == "RUNNING" else None,
        "lease_stale": lease.stale if lease and step.status == "RUNNING" else None,
        "errors": step.errors,
        "error": (prov.get("error") or {}).get("message") if isinstance(prov.get("error"), dict) else None,
    }


def experiment_json(experiment: ExperimentView) -> dict[str, Any]:
    return {**experiment_row(experiment), "steps": [step_summary(s) for s in experiment.steps]}


def experiment_context(experiment: ExperimentView) -> dict[str, Any]:
    hrefs = {i: f"/step/{s.rel}" for i, s in enumerate(experiment.steps) if s.rel is not None}
    svg, dag_error = "", None
    if experiment.steps:
        if dot_available():
            try:
                svg = dag_svg(experiment, hrefs)
            except Exception as e:  # the table below still lists every step
                dag_error = f"graphviz failed: {type(e).__name__}: {str(e)[:200]}"
        else:
            dag_error = "Graphviz `dot` is not installed (apt-get install graphviz); steps are listed below"
    data = experiment.data
    git = data.get("git") if isinstance(data.get("git"), dict) else {}
    argv = listed if isinstance(listed := data.get("argv"), list) else []
    return {
        "experiment": experiment,
        "row": experiment_row(experiment),
        "steps": [step_summary(s) for s in experiment.steps],
        "svg": svg,
        "dag_error": dag_error,
        "command": " ".join(str(a) for a in argv),
        "git": git,
        "training": [s for s in experiment.steps if s.rel and s.name.startswith("checkpoints/")],
    }


# ----------------------------------------------------------------------------------------- steps
def config_rows(config: Any, version: Any) -> list[dict[str, Any]]:
    """The concrete config flattened to field paths, each marked versioned/input as the version says."""
    versioned = version.get("config", {}) if isinstance(version, dict) else {}
    versioned = versioned if isinstance(versioned, dict) else {}
    rows: list[dict[str, Any]] = []

    def mark(path: str) -> str:
        for key, value in versioned.items():
            if path == key or path.startswith((key + ".", key + "[")):
                return "input" if isinstance(value, str) and value.startswith("input:") else "versioned"
        return ""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            typed = "__type__" in value
            for k, v in value.items():
                if k != "__type__":
                    walk(v, (f"{path}.{k}" if path else k) if typed or not path else f"{path}[{k!r}]")
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            text = json.dumps(value, default=str)
            if len(text) > CONFIG_VALUE_CHARS:
                text = text[:CONFIG_VALUE_CHARS] + "…"
            rows.append({"path": path, "value": text, "mark": mark(path), "raw": value})

    walk(config, "")
    return rows


def producer(store: PrefixStore, path: Any, recorded_prefix: str | None) -> dict[str, Any]:
    """An input path linked to the step that produced it (its name read from its .executor_info)."""
    rel = store.recorded_rel(path, recorded_prefix)
    if rel is None:
        return {"path": path, "rel": None, "name": None}
    return {"path": path, "rel": rel, "name": store.step(rel).name}


def step_context(store: PrefixStore, resolved: Resolved, curves: CurveCache) -> dict[str, Any]:
    view = store.step(resolved.rel)
    info = view.info.value if view.info.ok else {}
    recorded_prefix = store.recorded_prefix_of(view)
    rows = config_rows(info.get("config"), info.get("version"))
    dependencies = listed if isinstance(listed := info.get("dependencies"), list) else []
    inputs = [producer(store, d, recorded_prefix) for d in dependencies if isinstance(d, str)]
    for row in rows:  # config values that point into an input's output link to its producer
        if isinstance(row["raw"], str):
            for inp in inputs:
                if inp["rel"] and (row["raw"] == inp["path"] or row["raw"].startswith(str(inp["path"]) + "/")):
                    row["link"] = inp["rel"]
    prov = view.prov
    results = {name: load_json(fileio.join(resolved.url, name)) for name in RESULT_FILES}
    results = {name: item for name, item in results.items() if item.value is not None or item.error}
    has_metrics = fileio.exists(fileio.join(resolved.url, METRICS_FILE))
    return {
        "step": view,
        "summary": step_summary(view),
        "info": info,
        "config": rows,
        "inputs": inputs,
        "prov": prov,
        "prov_rows": provenance_rows(prov),
        "attempts": [a for a in prov.get("previous_attempts") or [] if isinstance(a, dict)][::-1],  # newest first
        "results": {name: {"error": item.error, "rows": scalar_rows(item.value)} for name, item in results.items()},
        "eval_metrics": eval_metrics(results.get(EVAL_RESULTS_FILE)),
        "eval_table": eval_table(resolved, results.get(EVAL_RESULTS_FILE)),
        "item_files": item_files(store, resolved),
        "has_metrics": has_metrics,
        "curves": CURVES,
        "scaling": load_json(fileio.join(resolved.url, FITS_FILE)),
        "listing": listing_context(store, resolved, 0, limit=200),
        "experiments": store.experiments_of_step(resolved.rel),
    }


def provenance_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("status", "host", "pid", "runner", "python", "platform", "started_at", "ended_at", "duration_s")
    rows = [(k, str(prov[k])) for k in keys if k in prov]
    git = prov.get("git")
    if isinstance(git, dict):
        rows.append(("git", f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}"))
    for name in ("devices", "packages"):
        value = prov.get(name)
        if isinstance(value, dict):
            rows.append((name, ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)))
    return rows


def eval_metrics(item: Item | None) -> list[tuple[str, str]]:
    if item is None or not item.ok:
        return []
    metrics = item.value.get("metrics", item.value)
    return scalar_rows(metrics)


def eval_table(resolved: Resolved, item: Item | None) -> list[dict[str, Any]]:
    """The evaluation table (`soda_jax.eval.report.result_rows`): per task and metric the value
    rounded to its 95 % interval, the interval, items, skipped by reason, SODA's reported number, and
    the task's per-item browser (``/items/...``) when it has an item file."""
    if item is None or not item.ok or not isinstance(item.value, dict):
        return []
    results = item.value
    tasks = list(results.get("tasks") or {})
    items = read_items(resolved.url, tasks)
    rows = []
    previous = None
    for row in result_rows(results, items):
        first = row.task != previous
        previous = row.task
        rows.append(
            {
                "task": row.task if first else "",
                "metric": row.metric,
                "value": row.value_text,
                "interval": row.interval_text,
                "scored": row.items if first and row.items is not None else "",
                "skipped": ", ".join(f"{k} {v}" for k, v in sorted(row.skipped.items())) if first else "",
                "reported": row.reported.label() if row.reported else "",
                "reported_note": f"{row.reported.benchmark}: {row.reported.note}" if row.reported else "",
                "items_href": f"/items/{resolved.rel}/{EVAL_ITEMS_DIR}/{row.task}.jsonl"
                if first and row.task in items
                else "",
            }
        )
    return rows


def item_files(store: PrefixStore, resolved: Resolved) -> list[str]:
    directory = fileio.join(resolved.url, EVAL_ITEMS_DIR)
    if not fileio.exists(directory):
        return []
    listing = list_directory(directory, 0, 1000)
    return [f"{resolved.rel}/{EVAL_ITEMS_DIR}/{e.name}" for e in listing.entries if e.name.endswith(".jsonl")]


def step_json(view: StepView) -> dict[str, Any]:
    return {**step_summary(view), "info": view.info.value, "provenance": view.provenance.value}


# -------------------------------------------------------------------------------- files and items
def listing_context(store: PrefixStore, resolved: Resolved, offset: int, limit: int = 500) -> dict[str, Any]:
    fs, path = fileio.filesystem(resolved.url)
    if not fs.isdir(path):
        return {"entries": [], "total": 0, "offset": 0, "limit": limit, "error": None}
    try:
        listing = list_directory(resolved.url, offset, limit)
    except OSError as e:
        return {"entries": [], "total": 0, "offset": 0, "limit": limit, "error": f"cannot list: {e}"}
    base = f"{resolved.rel}/" if resolved.rel else ""
    entries = [{"name": e.name, "rel": base + e.name, "is_dir": e.is_dir, "size": e.size} for e in listing.entries]
    return {"entries": entries, "total": listing.total, "offset": offset, "limit": limit, "error": None}


def breadcrumbs(rel: str) -> list[tuple[str, str]]:
    parts = rel.split("/") if rel else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def files_context(store: PrefixStore, resolved: Resolved, offset: int) -> dict[str, Any]:
    fs, path = fileio.filesystem(resolved.url)
    if not fs.exists(path):
        raise OutsidePrefix(resolved.rel)
    is_dir = fs.isdir(path)
    return {
        "rel": resolved.rel,
        "crumbs": breadcrumbs(resolved.rel),
        "is_dir": is_dir,
        "listing": listing_context(store, resolved, offset, FILES_PAGE) if is_dir else None,
        "preview": None if is_dir else preview(resolved.url),
    }


def items_context(store: PrefixStore, resolved: Resolved, offset: int) -> dict[str, Any]:
    """A page of an eval's per-item records; string fields naming audio files become players."""
    if not resolved.rel.endswith(".jsonl") or not fileio.exists(resolved.url):
        raise OutsidePrefix(resolved.rel)
    data = fileio.read_bytes(resolved.url)
    lines = data.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    page = b"\n".join(lines[offset : offset + ITEMS_PAGE])
    rows, errors = parse_json_lines(page, resolved.rel.rsplit("/", 1)[-1], first_line=offset + 1)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    step_dir = resolved.rel.rsplit(f"/{EVAL_ITEMS_DIR}/", 1)[0]
    table = [[item_cell(store, step_dir, resolved.rel, row.get(c)) for c in columns] for row in rows]
    return {
        "rel": resolved.rel,
        "crumbs": breadcrumbs(resolved.rel),
        "columns": columns,
        "table": table,
        "errors": errors,
        "offset": offset,
        "total": len(lines),
        "page": ITEMS_PAGE,
    }


def item_cell(store: PrefixStore, step_dir: str, items_rel: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.lower().endswith(AUDIO_SUFFIXES):
        for base in (step_dir, items_rel.rsplit("/", 1)[0], ""):
            try:
                candidate = store.paths.resolve(f"{base}/{value}" if base and not value.startswith("/") else value)
            except OutsidePrefix:
                continue
            if fileio.exists(candidate.url):
                return {"audio": candidate.rel, "text": value}
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return {"text": text if len(text) <= 1000 else text[:1000] + "…"}


# --------------------------------------------------------------------------------------- compare
def training_steps(store: PrefixStore) -> list[dict[str, Any]]:
    """Every step of every experiment that logged metrics (candidates for the compare page)."""
    seen: dict[str, dict[str, Any]] = {}
    for key in store.experiment_keys():
        for step in store.experiment(key, with_steps=False).steps:
            if (
                step.rel
                and step.rel not in seen
                and fileio.exists(fileio.join(store.paths.resolve(step.rel).url, METRICS_FILE))
            ):
                seen[step.rel] = {"rel": step.rel, "name": step.name, "experiment": key}
    return list(seen.values())


def compare_runs(store: PrefixStore, requested: list[str]) -> list[Resolved]:
    return [store.resolve_step(r) for r in requested[:20]]


def compare_json(store: PrefixStore, run: Resolved, curves: CurveCache) -> dict[str, Any]:
    data = curves.get(run.url).as_json()
    summary = load_json(fileio.join(run.url, SUMMARY_FILE))
    per_token = summary.value.get("training_flops_per_token") if summary.ok else None
    series = data["series"]
    if not isinstance(per_token, (int, float)):  # a run still going: FLOPs/token from its throughput
        ratios = [
            f / t
            for f, t in zip(series.get("model_flops_per_second", []), series.get("tokens_per_second", []))
            if f and t
        ]
        per_token = sorted(ratios)[len(ratios) // 2] if ratios else None
    tokens = series.get("tokens") or []
    data["flops"] = [t * per_token if t is not None and per_token else None for t in tokens]
    data["tokens"] = tokens
    data["rel"] = run.rel
    data["name"] = store.step(run.rel).name
    data["as_of"] = time.time()
    return data
