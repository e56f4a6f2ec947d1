"""Synthetic sweep outputs on disk, written in the training-run contract (data-contracts.md §3)."""

import json
import os

import numpy as np

from soda_jax.scaling import fits, sweep

# A and B put the compute-optimal size inside the paper grid (about 2e8 at 3e18, 1.5e9 at 3e20)
TRUE_LAW = fits.ParametricLaw(E=1.8, A=1200.0, B=900.0, alpha=0.34, beta=0.28)
ACCURACY_LOW, ACCURACY_HIGH, ACCURACY_SLOPE, ACCURACY_MIDPOINT = 0.5, 0.8, 4.0, 4.6


def accuracy_for_loss(loss):
    return ACCURACY_LOW + (ACCURACY_HIGH - ACCURACY_LOW) / (1 + np.exp(ACCURACY_SLOPE * (loss - ACCURACY_MIDPOINT)))


def write_run(root, name, *, params, tokens, train_flops, loss, metrics=None):
    """One training output dir (summary.json) and, with metrics, an eval dir (results.json)."""
    run_dir = os.path.join(root, "checkpoints", name)
    os.makedirs(run_dir, exist_ok=True)
    summary = {
        "params": int(params), "tokens": int(tokens), "train_flops": float(train_flops),
        "final_validation_loss": float(loss), "steps": 1,
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f)
    eval_dir = ""
    if metrics is not None:
        eval_dir = os.path.join(root, "evaluation", name)
        os.makedirs(eval_dir, exist_ok=True)
        with open(os.path.join(eval_dir, "results.json"), "w") as f:
            json.dump({"metrics": metrics, "task": "synthetic"}, f)
    return run_dir, eval_dir


def write_synthetic_sweep(root, *, noise=0.001, seed=0):
    """SODA's paper grid with losses from TRUE_LAW (multiplicative noise) and a sigmoid metric."""
    rng = np.random.default_rng(seed)
    run_paths, eval_paths = [], []
    for run in sweep.isoflop_grid():
        loss = float(TRUE_LAW(run.params, run.tokens) * np.exp(rng.normal(0, noise)))
        accuracy = float(accuracy_for_loss(loss) + rng.normal(0, 0.003))
        run_dir, eval_dir = write_run(
            root, run.name, params=run.params, tokens=run.tokens, train_flops=run.training_flops, loss=loss,
            metrics={"sblimp_accuracy": accuracy},
        )
        run_paths.append(run_dir)
        eval_paths.append(eval_dir)
    return run_paths, eval_paths


def true_optimal_params(forward_budget, rules=sweep.SweepRules(), width_step=32):
    """N minimising TRUE_LAW along one budget, over catalogue-rule shapes of any width."""
    best_loss, best_params = None, None
    for hidden in range(rules.min_hidden, 4 * rules.max_hidden, width_step):
        shape = rules.shape_for_hidden(hidden)
        params = shape.param_counts(rules.vocab_size).total
        tokens = forward_budget / shape.forward_flops_per_token(rules.vocab_size, rules.seq_len)
        loss = TRUE_LAW(params, tokens)
        if best_loss is None or loss < best_loss:
            best_loss, best_params = loss, params
    return best_params
