"""A learning curve: the same evaluation on every permanent checkpoint of a training run.

Each checkpoint ``{run}/checkpoints/step-N`` is evaluated as the eval step evaluates a run
(`eval.step.run_eval`: the model loaded by the inference loader, SODA's prompts), through a view of the
run that holds that one checkpoint: ``{out}/views/step-N`` links every entry of the run but
``checkpoints/``, and ``checkpoints/step-N`` only (the loader takes a run's latest checkpoint). Writes

    {out}/step-N/results.json ...      each checkpoint's evaluation (resumable, as the eval step's)
    {out}/curve.json                   per checkpoint: step, training tokens, the chosen metrics
    {out}/curve.png                    those metrics against training tokens

Views are symbolic links: the run and this step's output must be on the local file system.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig
from soda_jax.contracts import CHECKPOINTS_DIR, METRICS_FILE

logger = logging.getLogger(__name__)

CURVE_FILE, CURVE_PLOT = "curve.json", "curve.png"
STEP_DIR = re.compile(r"^step-(\d+)$")
"""levanter's name of a checkpoint directory."""


@dataclasses.dataclass(frozen=True)
class LearningCurveConfig:
    """Evaluate every permanent checkpoint of a run."""

    run_path: str
    """A `default_train` output with permanent checkpoints (`CheckpointPolicy.every_steps`)."""
    output_path: str
    tasks: tuple[Any, ...]
    """Evaluation tasks (`soda_jax.eval.tasks`)."""
    metrics: tuple[str, ...]
    """Metrics of the results (``asr/wer``) that the curve records and plots."""
    codec: CodecConfig | None = None
    """The Mimi that made the model's audio tokens (the eval step's ``codec``)."""
    batch_size: int = 32


def checkpoint_steps(run_path: str) -> list[int]:
    """The steps of the run's checkpoints, ascending."""
    root = os.path.join(run_path, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{run_path}: no {CHECKPOINTS_DIR}/ directory")
    return sorted(int(m.group(1)) for name in os.listdir(root) if (m := STEP_DIR.match(name)))


def checkpoint_view(run_path: str, step: int, view: str) -> str:
    """``view``: the run with only its step-``step`` checkpoint (symbolic links)."""
    os.makedirs(os.path.join(view, CHECKPOINTS_DIR), exist_ok=True)
    for name in os.listdir(run_path):
        if name != CHECKPOINTS_DIR and not os.path.lexists(os.path.join(view, name)):
            os.symlink(os.path.join(os.path.abspath(run_path), name), os.path.join(view, name))
    link = os.path.join(view, CHECKPOINTS_DIR, f"step-{step}")
    if not os.path.lexists(link):
        os.symlink(os.path.join(os.path.abspath(run_path), CHECKPOINTS_DIR, f"step-{step}"), link)
    return view


def tokens_by_step(run_path: str) -> dict[int, int]:
    """Training tokens seen after each logged step (the run's metrics.jsonl)."""
    out = {}
    for line in fileio.read_text(fileio.join(run_path, METRICS_FILE)).splitlines():
        record = json.loads(line)
        if "tokens" in record and "step" in record:
            out[int(record["step"])] = int(record["tokens"])
    return out


def evaluate_learning_curve(config: LearningCurveConfig) -> dict:
    """Evaluate every checkpoint; write curve.json and curve.png; returns the curve."""
    from soda_jax.eval.step import EvalConfig, run_eval

    for path in (config.run_path, config.output_path):
        if not fileio.is_local(path):
            raise ValueError(f"{path}: a learning curve links checkpoints locally; this is not a local path")
    steps = checkpoint_steps(config.run_path)
    if not steps:
        raise FileNotFoundError(f"{config.run_path}: no permanent checkpoints (CheckpointPolicy.every_steps)")
    tokens = tokens_by_step(config.run_path)
    points = []
    for step in steps:
        view = checkpoint_view(config.run_path, step, os.path.join(config.output_path, "views", f"step-{step}"))
        results = run_eval(
            EvalConfig(
                model_path=view,
                output_path=fileio.join(config.output_path, f"step-{step}"),
                tasks=config.tasks,
                codec=config.codec,
                batch_size=config.batch_size,
            )
        )
        seen = tokens.get(step, tokens.get(step + 1))
        points.append({"step": step, "tokens": seen, **{m: results["metrics"].get(m) for m in config.metrics}})
        logger.info("learning curve: step %d: %s", step, points[-1])
    curve = {"run": config.run_path, "metrics": list(config.metrics), "points": points}
    fileio.atomic_write_json(fileio.join(config.output_path, CURVE_FILE), curve)
    plot_curve(curve, fileio.join(config.output_path, CURVE_PLOT))
    return curve


def plot_curve(curve: dict, url: str) -> None:
    """Each metric against training tokens, one panel per metric."""
    from soda_jax.scaling.plots import plt, save_png

    metrics = curve["metrics"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        points = [p for p in curve["points"] if p.get(metric) is not None and p.get("tokens") is not None]
        ax.plot([p["tokens"] for p in points], [p[metric] for p in points], marker="o")
        ax.set_xlabel("training tokens")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    save_png(figure, url)
