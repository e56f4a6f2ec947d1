"""``soda plan --budget 1e21``: the compute-optimal model and data for a training-FLOP budget.

From a scaling analysis (``scaling_fits.json`` written by `soda_jax.scaling.analysis`):

1. N* and D* from the approach-2 power laws (when fitted);
2. the catalogue model (SODA's sweep rules: depth, heads, MLP from the width) whose parameter
   count is closest to N* in log space, or, without approach 2, the catalogue model with the
   lowest predicted L(N, D) at this budget;
3. its token count D filling the budget exactly (C = 3 x forward FLOPs/token x D), and the sweep
   recipe's batch, steps, learning rate and beta2;
4. the predicted final loss from L(N, D) with a bootstrap interval, and each capability predicted
   from that loss (interval: the capability curve at the ends of the loss interval).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from typing import Any

import numpy as np

from soda_jax import fileio
from soda_jax.audio.vocab import SODA_VOCAB_SIZE
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.models.shapes import ModelShape
from soda_jax.scaling.capability import CapabilityFit
from soda_jax.scaling.fits import CONFIDENCE_LEVEL, Interval, ParametricLaw, PowerLaw
from soda_jax.scaling.sweep import SweepRules, run_for_shape
from soda_jax.training.recipe import SODA_SEQ_LEN

logger = logging.getLogger(__name__)

WIDTH_STEP = 128
"""Widths considered are multiples of this (heads of 128 dims)."""
MAX_WIDTH = 32_768
"""Widest model considered."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """The planner's answer for one budget."""

    budget: float
    """Training FLOPs C."""
    params_opt: float | None
    """N* from the approach-2 power law (None without it)."""
    tokens_opt: float | None
    """D* from the approach-2 power law (None without it)."""
    shape: ModelShape
    """Catalogue model chosen."""
    params: int
    """Its total parameter count."""
    tokens: int
    """Tokens that fill the budget with that model."""
    batch_size: int | None
    """Sweep-recipe batch (None if the recipe's rules reject this budget/model)."""
    steps: int | None
    learning_rate: float | None
    beta2: float | None
    predicted_loss: float | None
    """L(N, D) of the chosen model (None without a parametric fit)."""
    loss_interval: Interval | None
    """Bootstrap interval of the predicted loss."""
    capabilities: dict[str, dict[str, float]]
    """metric -> {"value", "low", "high"} predicted from the loss."""


def _law(record: dict | None, cls):
    if not record or "error" in record:
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in fields and k != "exponent_interval"})


def plan(
    fits: dict[str, Any],
    budget: float,
    *,
    vocab_size: int = SODA_VOCAB_SIZE,
    seq_len: int = SODA_SEQ_LEN,
    rules: SweepRules = SweepRules(),
) -> Plan:
    """Plan a run of ``budget`` training FLOPs from a scaling_fits.json object."""
    if not budget > 0:
        raise ValueError(f"budget must be positive, got {budget}")
    rules = dataclasses.replace(rules, vocab_size=vocab_size, seq_len=seq_len)
    compute_optimal = fits.get("compute_optimal") or {}
    params_law = _law(compute_optimal.get("params_law"), PowerLaw)
    tokens_law = _law(compute_optimal.get("tokens_law"), PowerLaw)
    parametric = fits.get("parametric") or {}
    law = _law(parametric.get("law"), ParametricLaw)
    bootstrap = [ParametricLaw(**b) for b in parametric.get("bootstrap", [])] if law else []
    if params_law is None and law is None:
        raise ValueError("the fits hold neither an approach-2 power law nor L(N, D): nothing to plan with")

    candidates = [rules.shape_for_hidden(h) for h in range(WIDTH_STEP, MAX_WIDTH + 1, WIDTH_STEP)]

    def tokens_for(shape: ModelShape) -> int:
        return int(budget / (TRAINING_FLOPS_MULTIPLIER * shape.forward_flops_per_token(vocab_size, seq_len)))

    if params_law is not None:
        target = float(params_law(budget))
        shape = min(candidates, key=lambda s: abs(math.log(s.param_counts(vocab_size).total / target)))
    else:
        shape = min(candidates, key=lambda s: float(law(s.param_counts(vocab_size).total, tokens_for(s))))
    params, tokens = shape.param_counts(vocab_size).total, tokens_for(shape)
    recipe = run_for_shape(rules, budget / TRAINING_FLOPS_MULTIPLIER, shape)

    predicted_loss, loss_interval = None, None
    if law is not None:
        predicted_loss = float(law(params, tokens))
        if bootstrap:
            loss_interval = Interval.of(np.array([float(b(params, tokens)) for b in bootstrap]), CONFIDENCE_LEVEL)
    capabilities = {}
    if predicted_loss is not None:
        for metric, record in (fits.get("capabilities") or {}).items():
            if "error" in record:
                continue
            fit = CapabilityFit(**record)
            ends = [predicted_loss] if loss_interval is None else [loss_interval.low, loss_interval.high]
            at_ends = [float(fit.predict(x)) for x in ends]
            capabilities[metric] = {
                "value": float(fit.predict(predicted_loss)),
                "low": min(at_ends),
                "high": max(at_ends),
            }
    return Plan(
        budget=budget,
        params_opt=None if params_law is None else float(params_law(budget)),
        tokens_opt=None if tokens_law is None else float(tokens_law(budget)),
        shape=shape,
        params=params,
        tokens=tokens,
        batch_size=recipe.batch_size if recipe else None,
        steps=recipe.steps if recipe else None,
        learning_rate=recipe.learning_rate if recipe else None,
        beta2=recipe.beta2 if recipe else None,
        predicted_loss=predicted_loss,
        loss_interval=loss_interval,
        capabilities=capabilities,
    )


def format_plan(p: Plan) -> str:
    """Human-readable plan."""
    s = p.shape
    lines = [f"budget: {p.budget:.3g} training FLOPs (3 x forward)"]
    if p.params_opt is not None:
        lines.append(
            f"compute-optimal (isoFLOP power laws): N* = {p.params_opt:.3g} params, D* = {p.tokens_opt:.3g} tokens"
        )
    lines.append(
        f"catalogue model: d={s.hidden_dim} ff={s.intermediate_dim} layers={s.num_layers} "
        f"heads={s.num_heads}/{s.num_kv_heads} "
        f"head_dim={s.head_dim}: {p.params:.3g} params"
    )
    lines.append(f"data: {p.tokens:.3g} tokens ({p.tokens / p.params:.1f} tokens/param)")
    if p.batch_size is not None:
        lines.append(
            f"sweep recipe: batch {p.batch_size} x {p.steps} steps, lr {p.learning_rate:.4g}, beta2 {p.beta2:.4f}"
        )
    else:
        lines.append("sweep recipe: none (batch < 8 or > 400k steps under the sweep rules)")
    if p.predicted_loss is not None:
        interval = (
            ""
            if p.loss_interval is None
            else f" ({CONFIDENCE_LEVEL:.0%} interval {p.loss_interval.low:.4f} .. {p.loss_interval.high:.4f})"
        )
        lines.append(f"predicted final validation loss: {p.predicted_loss:.4f}{interval}")
    for metric, value in p.capabilities.items():
        lines.append(f"predicted {metric}: {value['value']:.4g} ({value['low']:.4g} .. {value['high']:.4g})")
    return "\n".join(lines)


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """``soda plan``'s arguments."""
    parser.add_argument("--budget", type=float, required=True, help="training FLOPs (3 x forward), e.g. 1e21")
    parser.add_argument(
        "--fits", required=True, metavar="PATH", help="scaling_fits.json, or the analysis step's output directory"
    )
    parser.add_argument("--vocab-size", type=int, default=SODA_VOCAB_SIZE, help="vocabulary of the planned model")
    parser.add_argument("--seq-len", type=int, default=SODA_SEQ_LEN, help="sequence length of the planned run")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def plan_main(argv: list[str]) -> int:
    """Command line of ``soda plan`` on its own parser; returns the exit status."""
    parser = argparse.ArgumentParser(prog="soda plan", description=__doc__.splitlines()[0])
    add_plan_arguments(parser)
    return run_plan(parser.parse_args(argv))


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan the parsed ``soda plan`` arguments ask for; returns the exit status."""
    from soda_jax.contracts import FITS_FILE

    url = args.fits if args.fits.endswith(".json") else fileio.join(args.fits, FITS_FILE)
    try:
        fits = fileio.read_json(url)
        result = plan(fits, args.budget, vocab_size=args.vocab_size, seq_len=args.seq_len)
    except (FileNotFoundError, ValueError) as error:
        print(f"soda plan: {url}: {error}")
        return 2
    print(json.dumps(dataclasses.asdict(result), indent=2) if args.json else format_plan(result))
    return 0
