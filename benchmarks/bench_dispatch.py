"""A training step's dispatch on this CPU: haliax's ``named_jit`` called directly, against the same
function dispatched by `FlatJit` (what `soda_jax.training.train` does through `FastDispatchTrainer`).

    .venv/bin/python benchmarks/bench_dispatch.py [--steps 50]

Models: three widths of the mini isoFLOP sweep (d 8, 20, 36; 3 layers, 2 heads, 16,900 ids,
batch 4 x 256) and `DEMO_6M`; random weights and tokens; one step = loss, gradient and an AdamW
update of the whole model under ``named_jit`` with the state donated, as levanter's step. Measured
in the same run, each the median over ``--steps`` steps after compilation:

* dispatch: the time until the call returns (host work; the device may still be computing);
* step: call + wait for the loss (what one training step costs when the loss is read each step).

Prints named_jit / FlatJit for both. Writes benchmarks/results/bench_dispatch.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))  # bench_cross_entropy

import equinox as eqx  # noqa: E402
import haliax as hax  # noqa: E402
import jax  # noqa: E402
import optax  # noqa: E402
from bench_cross_entropy import SEQ_LEN, benchmark_models  # noqa: E402  (the same models, measured the same way)
from haliax.partitioning import named_jit  # noqa: E402
from levanter.models.lm_model import LmExample  # noqa: E402
from result_files import Load, write_results  # noqa: E402

from soda_jax.models import qwen3_config  # noqa: E402
from soda_jax.training.dispatch import FlatJit  # noqa: E402
from soda_jax.training.loss import default_vocab_block, next_token_loss_fn  # noqa: E402


def make_train_step(optimizer):
    loss_fn = next_token_loss_fn("fused", 1e-4, vocab_block=default_vocab_block())

    def train_step(state, example):
        model, opt_state = state
        loss, grads = eqx.filter_value_and_grad(lambda m: loss_fn(m, example).scalar())(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return (eqx.apply_updates(model, updates), opt_state), loss

    return named_jit(train_step, donate_args=(True, False))


def time_steps(step, state, example, steps: int) -> tuple[float, float]:
    """Median (dispatch seconds, step seconds) over ``steps`` steps after the first (compiling) one."""
    state, loss = step(state, example)
    float(loss)
    dispatch, total = [], []
    for _ in range(steps):
        start = time.perf_counter()
        state, loss = step(state, example)
        returned = time.perf_counter()
        float(loss)
        dispatch.append(returned - start)
        total.append(time.perf_counter() - start)
    return statistics.median(dispatch), statistics.median(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    load = Load()
    optimizer = optax.adamw(1e-3)
    report = {
        "steps": args.steps,
        "models": {},
    }
    for name, shape, vocab_size, batch_size in benchmark_models():
        config = qwen3_config(shape, SEQ_LEN, gradient_checkpointing=False, scan_layers=False)
        Batch = hax.Axis("batch", batch_size)
        tokens = hax.random.randint(jax.random.PRNGKey(1), (Batch, config.max_Pos.resize(SEQ_LEN)), 0, vocab_size)
        example = hax.vmap(LmExample.causal, Batch)(tokens)
        seconds = {}
        for variant in ("named_jit", "FlatJit"):
            model = config.build(hax.Axis("vocab", vocab_size), key=jax.random.PRNGKey(0))
            state = (model, optimizer.init(eqx.filter(model, eqx.is_array)))
            step = make_train_step(optimizer)
            step = FlatJit(step) if variant == "FlatJit" else step
            seconds[variant] = time_steps(step, state, example, args.steps)
        dispatch_ratio = seconds["named_jit"][0] / seconds["FlatJit"][0]
        step_ratio = seconds["named_jit"][1] / seconds["FlatJit"][1]
        report["models"][name] = {
            "hidden_dim": shape.hidden_dim,
            "vocab_size": vocab_size,
            "batch": batch_size,
            "dispatch_seconds": {v: s[0] for v, s in seconds.items()},
            "step_seconds": {v: s[1] for v, s in seconds.items()},
            "dispatch_named_jit_over_flat": dispatch_ratio,
            "step_named_jit_over_flat": step_ratio,
        }
        print(
            f"{name:>11}: dispatch ms named_jit {1000 * seconds['named_jit'][0]:.1f}"
            f"  FlatJit {1000 * seconds['FlatJit'][0]:.1f} ({dispatch_ratio:.1f}x);"
            f"  step ms {1000 * seconds['named_jit'][1]:.1f} vs {1000 * seconds['FlatJit'][1]:.1f}"
            f" ({step_ratio:.2f}x)",
            flush=True,
        )
    print(load.finish().banner())
    print(f"wrote {write_results('bench_dispatch', report, load)}")


if __name__ == "__main__":
    main()
