"""Branching a run off another's warmup-stable prefix (`TrainConfig.stop_at_step`, ``resume_from``).

Under a warmup-stable-decay schedule whose warmup is a fixed number of steps, two runs of one model,
data and optimizer that differ only in length take identical steps until the shorter one's decay
begins: the same data order (the seed fixes it), the same learning rate. So the shorter run need
not repeat them: a *stable segment* trains the schedule of a run but stops where its decay starts
(``stop_at_step``); the run itself, and the next longer segment, start from that segment's final
checkpoint (``resume_from``: weights, optimizer state and step) and train on. Resuming is exact
(tests/test_training.py), so a branched run is the run trained straight through.

The rule that makes it exact is checked here, not assumed: the source's recipe must equal this
run's apart from ``num_train_steps``, its model must be this run's, and the two learning-rate
schedules must agree on every step before the branch point (`check_branch`); and its checkpoints
must store the layers as this run does (its manifest's ``layer_loop``,
`soda_jax.training.manifest`). A fractional warmup (SODA's 10%) fails that check, since the warmup
length moves with the run's length.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from soda_jax import fileio
from soda_jax.contracts import CHECKPOINTS_DIR, METRICS_FILE, SUMMARY_FILE
from soda_jax.models.shapes import ModelShape
from soda_jax.training.checkpoints import latest_checkpoint
from soda_jax.training.levanter_compat import CHECKPOINT_DIR_PREFIX, checkpoint_dir
from soda_jax.training.manifest import check_layer_loop, read_manifest
from soda_jax.training.recipe import OptimizerRecipe, TrainRecipe

logger = logging.getLogger(__name__)


def learning_rates(recipe: TrainRecipe, hidden_dim: int) -> np.ndarray:
    """The learning rate of each of ``recipe``'s steps, from levanter's own schedule."""
    optimizer = recipe.optimizer.levanter_config(recipe.batch_size, hidden_dim)
    schedule = optimizer.lr_scheduler(recipe.num_train_steps)
    return np.asarray(schedule(np.arange(recipe.num_train_steps)), dtype=np.float64)


def stable_prefix_steps(recipe: TrainRecipe, hidden_dim: int) -> int:
    """Steps of ``recipe`` before its decay starts: the first step after the warmup whose learning
    rate is below the peak (all of them when it never decays)."""
    rates = learning_rates(recipe, hidden_dim)
    peak = rates.max()
    first_peak = int(np.argmax(rates >= peak))
    below = np.nonzero(rates[first_peak:] < peak)[0]
    return first_peak + int(below[0]) if below.size else recipe.num_train_steps


def check_branch(
    source: TrainRecipe,
    source_model: ModelShape,
    target: TrainRecipe,
    target_model: ModelShape,
    at_step: int,
    *,
    where: str,
) -> None:
    """Raise ValueError (naming ``where``) unless a run of ``target`` may start from the state after
    ``at_step`` steps of ``source``: the same model, the same recipe but for its length, and the same
    learning rate on every step before ``at_step``."""
    if source_model != target_model:
        raise ValueError(f"{where}: the source trained {source_model}, this run is {target_model}")
    if dataclasses.replace(source, num_train_steps=target.num_train_steps) != target:
        raise ValueError(
            f"{where}: the source's recipe differs from this run's apart from its length: {source} vs {target}"
        )
    if at_step > min(source.num_train_steps, target.num_train_steps):
        raise ValueError(
            f"{where}: branch point {at_step} is past the end of one of the runs "
            f"({source.num_train_steps}, {target.num_train_steps} steps)"
        )
    before = slice(0, at_step)
    mismatch = np.nonzero(
        learning_rates(source, source_model.hidden_dim)[before]
        != learning_rates(target, target_model.hidden_dim)[before]
    )[0]
    if mismatch.size:
        step = int(mismatch[0])
        raise ValueError(
            f"{where}: the learning-rate schedules differ at step {step} < branch point {at_step} "
            f"(a warmup given as a fraction moves with the run's length; give it in steps)"
        )


def recipe_from_json(data: dict) -> TrainRecipe:
    """A `TrainRecipe` from its ``dataclasses.asdict`` form (as summary.json stores it)."""
    return TrainRecipe(**{**data, "optimizer": OptimizerRecipe(**data["optimizer"])})


def seed_from_source(
    source_path: str, output_path: str, recipe: TrainRecipe, model: ModelShape, layer_loop: str
) -> int | None:
    """Copy the final checkpoint and metrics of the finished run at ``source_path`` into the run at
    ``output_path`` (whose checkpoints store the layers with ``layer_loop``) when it has no
    committed checkpoint of its own; returns the number of steps copied (None when the run already
    had its own checkpoint: it resumes from that).

    The checkpoint is staged next to its final name and renamed into place, so a copy cut short is
    never mistaken for a committed checkpoint."""
    own_checkpoints = fileio.join(output_path, CHECKPOINTS_DIR)
    if latest_checkpoint(own_checkpoints) is not None:
        return None
    summary = fileio.read_json_or_none(fileio.join(source_path, SUMMARY_FILE))
    if summary is None:
        raise ValueError(f"resume_from {source_path}: no {SUMMARY_FILE}: the source run has not finished")
    if "recipe" not in summary:
        raise ValueError(
            f"resume_from {source_path}: its {SUMMARY_FILE} records no recipe (written before branching existed)"
        )
    source_checkpoints = fileio.join(source_path, CHECKPOINTS_DIR)
    source_checkpoint = latest_checkpoint(source_checkpoints)
    if source_checkpoint is None:
        raise ValueError(f"resume_from {source_path}: no committed checkpoint under {source_checkpoints}")
    last = int(source_checkpoint.rstrip("/").rsplit("/", 1)[-1].removeprefix(CHECKPOINT_DIR_PREFIX))
    at_step = last + 1  # the checkpoint of 0-based step s holds the state after s + 1 steps
    where = f"resume_from {source_path} into {output_path}"
    check_branch(
        recipe_from_json(summary["recipe"]), ModelShape(**summary["model"]), recipe, model, at_step, where=where
    )
    source_manifest = read_manifest(source_path)  # the layer loop its checkpoints were stored with
    check_layer_loop(source_manifest.layer_loop if source_manifest else None, layer_loop, where=where)

    fileio.makedirs(own_checkpoints)
    final = checkpoint_dir(own_checkpoints, last)
    staging = fileio.temporary_sibling(final)
    fs, _ = fileio.filesystem(final)
    fs.copy(fileio.filesystem(source_checkpoint)[1], fileio.filesystem(staging)[1], recursive=True)
    fs.mv(fileio.filesystem(staging)[1], fileio.filesystem(final)[1], recursive=True)

    source_metrics = fileio.join(source_path, METRICS_FILE)
    if fileio.exists(source_metrics):  # the run's curve starts with its source's steps
        fileio.atomic_write_text(fileio.join(output_path, METRICS_FILE), fileio.read_text(source_metrics))
    logger.info("branched %s from %s after %d steps", output_path, source_path, at_step)
    return at_step
