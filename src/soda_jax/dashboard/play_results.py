"""Playground results under ``{prefix}/play/{id}/``: what one request leaves, and the list the page shows.

Each request writes what ``soda generate`` writes (`soda_jax.inference.requests.run_task`):
``{task}.json`` (task, checkpoint, inputs, prompt and generated ids, sampling, seed, finish reason,
output) and ``{task}.wav`` or ``{task}.txt``, with its uploads under ``inputs/`` (the JSON's inputs
name them). A request that fails removes its directory: bad input changes nothing.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from soda_jax import fileio
from soda_jax.dashboard.files import load_json
from soda_jax.dashboard.paths import OutsidePrefix, PrefixPaths
from soda_jax.dashboard.play_inputs import Upload
from soda_jax.dashboard.play_models import subdirectories

PLAY_DIR = "play"
"""Where playground results go, under the prefix."""
INPUTS_DIR = "inputs"
MAX_RESULTS_LISTED = 50
"""The page lists this many results, newest first."""


def new_result_id() -> str:
    """A result directory name: sortable by time (to the millisecond), unique (random suffix)."""
    now = time.time()
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}.{int(now * 1000) % 1000:03d}-{secrets.token_hex(3)}"


def result_dir(paths: PrefixPaths, result_id: str) -> str:
    return paths.resolve(f"{PLAY_DIR}/{result_id}").url


def save_upload(out_dir: str, upload: Upload) -> str:
    """Write an upload as ``inputs/{field}{suffix}``; returns its path (what the JSON's inputs name)."""
    path = fileio.join(out_dir, INPUTS_DIR, upload.field + upload.suffix)
    fileio.atomic_write_bytes(path, upload.data)
    return path


def remove(out_dir: str) -> None:
    """Delete a failed request's directory."""
    fs, path = fileio.filesystem(out_dir)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def result_row(paths: PrefixPaths, result_id: str, record: dict[str, Any], json_url: str) -> dict[str, Any]:
    """What the page shows of one result (``record`` is its ``{task}.json``)."""

    def rel(url: Any) -> str | None:
        if not isinstance(url, str) or not url:
            return None
        try:
            return paths.resolve(url).rel
        except OutsidePrefix:
            return None

    recorded = record.get("inputs")
    inputs: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    output = rel(record.get("output"))
    return {
        "id": result_id,
        "task": record.get("task"),
        "checkpoint": rel(record.get("checkpoint")) or record.get("checkpoint"),
        "text": inputs.get("text"),
        "ref_text": inputs.get("ref_text"),
        "audio_inputs": {k: rel(inputs.get(k)) for k in ("audio", "ref_audio") if rel(inputs.get(k))},
        "shots": len(inputs.get("shots") or []),
        "transcript": record.get("text"),
        "wav": output if output and output.endswith(".wav") else None,
        "seconds": record.get("seconds"),
        "frames": record.get("frames"),
        "finish_reason": record.get("finish_reason"),
        "seed": record.get("seed"),
        "sampling": record.get("sampling"),
        "json": rel(json_url),
    }


def list_results(paths: PrefixPaths, limit: int = MAX_RESULTS_LISTED) -> list[dict[str, Any]]:
    """The newest ``limit`` results: each directory's ``{task}.json``, read as an `Item` (a damaged
    one is shown with its error)."""
    rows = []
    base = paths.resolve(PLAY_DIR).url
    for result_id in sorted(subdirectories(base), reverse=True)[:limit]:
        directory = fileio.join(base, result_id)
        fs, path = fileio.filesystem(directory)
        records = sorted(str(f) for f in fs.ls(path, detail=False) if str(f).endswith(".json"))
        if not records:
            continue  # a request still running (or one whose removal was cut short)
        json_url = fileio.url_of(fs, records[0])
        item = load_json(json_url)
        if not item.ok:
            rows.append({"id": result_id, "error": item.error, "json": None})
            continue
        rows.append(result_row(paths, result_id, item.value, json_url))
    return rows
