"""Synthetic sweep outputs on disk, written in the training-run contract (data-contracts.md §3)."""

import dataclasses
import json
import os

import numpy as np

from soda_jax.scaling import fits, sweep

# A and B put the compute-optimal size inside the paper grid (about 2e8 at 3e18, 1.5e9 at 3e20)
TRUE_LAW = fits.ParametricLaw(E=1.8, A=1200.0, B=900.0, alpha=0.34, beta=0.28)
ACCURACY_LOW, ACCURACY_HIGH, ACCURACY_SLOPE, ACCURACY_MIDPOINT = 0.5, 0.8, 4.0, 4.6


def accuracy_for_loss(loss):
    return ACCURACY_LOW + (ACCURACY_HIGH - ACCURACY_LOW) / (1 + np.exp(ACCURACY_SLOPE * (loss - ACCURACY_MIDPOINT)))


def heldout_section(speech_loss, text_loss=None, tokens=1000):
    """A summary's ``heldout_nll`` (training.validation.heldout_nll's layout): one speech component
    with ``speech_loss`` and, with ``text_loss``, one text-only component."""
    components = {
        "speech": {
            "loss": float(speech_loss),
            "tokens": tokens,
            "speech": True,
            "kinds": {"semantic": {"loss": float(speech_loss), "tokens": tokens}},
        }
    }
    if text_loss is not None:
        components["text"] = {
            "loss": float(text_loss),
            "tokens": tokens,
            "speech": False,
            "kinds": {"text": {"loss": float(text_loss), "tokens": tokens}},
        }
    speech = {**components["speech"], "components": ["speech"]}
    del speech["speech"]
    return {"components": components, "speech": speech}


def write_run(root, name, *, params, tokens, train_flops, loss, metrics=None):
    """One training output dir (summary.json) and, with metrics, an eval dir (results.json)."""
    run_dir = os.path.join(root, "checkpoints", name)
    os.makedirs(run_dir, exist_ok=True)
    summary = {
        "params": int(params),
        "tokens": int(tokens),
        "train_flops": float(train_flops),
        "final_validation_loss": float(loss),
        "heldout_nll": heldout_section(loss),
        "steps": 1,
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


TEXT_LOSS = 3.0
"""The text-only component's loss in `sweep_with_text_component`: the old macro mean is (speech + 3) / 2."""


def sweep_with_text_component(root, metrics=None):
    """SODA's two lowest budgets: speech loss from TRUE_LAW, a text component at `TEXT_LOSS`; with
    ``metrics`` (loss -> {name: value}) an evaluation per run. Returns (run paths, eval paths)."""
    run_paths, eval_paths = [], []
    for run in (r for r in sweep.isoflop_grid() if r.budget in (1e18, 3e18)):
        speech = float(TRUE_LAW(run.params, run.tokens))
        run_dir, eval_dir = write_run(
            root,
            run.name,
            params=run.params,
            tokens=run.tokens,
            train_flops=run.training_flops,
            loss=speech,
            metrics=metrics(speech) if metrics else None,
        )
        summary_path = os.path.join(run_dir, "summary.json")
        with open(summary_path) as f:
            summary = json.load(f)
        summary.update(final_validation_loss=(speech + TEXT_LOSS) / 2, heldout_nll=heldout_section(speech, TEXT_LOSS))
        with open(summary_path, "w") as f:
            json.dump(summary, f)
        run_paths.append(run_dir)
        eval_paths.append(eval_dir)
    return tuple(run_paths), tuple(eval_paths)


def write_synthetic_sweep(root, *, noise=0.001, seed=0):
    """SODA's paper grid with losses from TRUE_LAW (multiplicative noise) and a sigmoid metric."""
    rng = np.random.default_rng(seed)
    run_paths, eval_paths = [], []
    for run in sweep.isoflop_grid():
        loss = float(TRUE_LAW(run.params, run.tokens) * np.exp(rng.normal(0, noise)))
        accuracy = float(accuracy_for_loss(loss) + rng.normal(0, 0.003))
        run_dir, eval_dir = write_run(
            root,
            run.name,
            params=run.params,
            tokens=run.tokens,
            train_flops=run.training_flops,
            loss=loss,
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


# -- a stand-in for training in adaptive-sweep executor tests: a summary.json from a known loss --

NSTAR_AT_3E18, NSTAR_EXPONENT = 3e8, 0.42
"""The synthetic isoFLOP law of the adaptive tests: N* = 3e8 (C / 3e18)^0.42 (C in training FLOPs).
SODA's grid (d <= 2048) brackets the low budgets and puts the top ones at its upper edge."""


def nstar(training_flops):
    return NSTAR_AT_3E18 * (training_flops / 3e18) ** NSTAR_EXPONENT


def parabola_loss(run, nstar_of=nstar):
    """Loss quadratic in log10 N around N*(C), with a floor falling in C."""
    c = run.training_flops
    return 2.0 + 30 * c**-0.08 + 0.4 * (np.log10(run.params) - np.log10(nstar_of(c))) ** 2


@dataclasses.dataclass(frozen=True)
class SyntheticRunConfig:
    output_path: str
    budget: float
    """Forward budget of the run."""
    hidden: int
    """Model width."""
    log_path: str
    """A file every executed run appends its name to (to count what ran)."""


def write_synthetic_run(config: SyntheticRunConfig) -> None:
    """Write the training-run contract's summary.json for the sweep run (budget, hidden) of SODA's rules."""
    run = sweep.run_for_shape(sweep.SweepRules(), config.budget, sweep.SweepRules().shape_for_hidden(config.hidden))
    os.makedirs(config.output_path, exist_ok=True)
    summary = {
        "params": run.params,
        "tokens": run.tokens,
        "train_flops": float(run.training_flops),
        "final_validation_loss": float(parabola_loss(run)),
        "heldout_nll": heldout_section(parabola_loss(run)),
        "steps": run.steps,
    }
    with open(os.path.join(config.output_path, "summary.json"), "w") as f:
        json.dump(summary, f)
    with open(config.log_path, "a") as f:
        f.write(run.name + "\n")
