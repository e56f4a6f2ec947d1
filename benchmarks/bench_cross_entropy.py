"""The training loss's forward + backward on this CPU: the fused kernel's vocabulary block, against
levanter's choice and against materialised logits.

    .venv/bin/python benchmarks/bench_cross_entropy.py [--repeats 8] [--blocks 256,512,1024,2048]
    taskset -c 0 .venv/bin/python benchmarks/bench_cross_entropy.py     # one core, as the mini sweep's runs

Models: three widths of the mini isoFLOP sweep (d 8, 20, 36; 3 layers, 2 heads, its 16,900-id
vocabulary, batch 4 x 256) and `DEMO_6M` (d 64, the demo's 48,388 ids, batch 8 x 256); random
weights and tokens, f32, unrolled layers, no gradient checkpointing (the CPU training settings).
Measured in the same run, each the median of ``--repeats`` calls after compilation of
``value_and_grad(next_token_loss_fn(...))`` (z-loss on):

* levanter: the fused kernel with levanter's block (``vocab_block=None``; on CPU 8,192 ids);
* ours: ``vocab_block=CPU_VOCAB_BLOCK``, what training uses on CPU (`default_vocab_block`);
* full: materialised logits (``cross_entropy="full"``);
* block_<n>: the fused kernel with other blocks, to show where the optimum lies.

Prints levanter / ours (the speed-up of the default) per model. Writes
benchmarks/results/bench_cross_entropy.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import equinox as eqx  # noqa: E402
import haliax as hax  # noqa: E402
import jax  # noqa: E402
from levanter.models.lm_model import LmExample  # noqa: E402
from result_files import Load, write_results  # noqa: E402

from soda_jax.models import DEMO_6M, qwen3_config  # noqa: E402
from soda_jax.recipes.isoflop_mini import MINI_RULES, MINI_VOCAB_SIZE  # noqa: E402
from soda_jax.training.loss import CPU_VOCAB_BLOCK, next_token_loss_fn  # noqa: E402

SEQ_LEN = 256
DEMO_VOCAB_SIZE = 48_388
DEMO_BATCH_SIZE = 8
MINI_WIDTHS = (8, 20, 36)
Z_LOSS_WEIGHT = 1e-4


def benchmark_models():
    """``(name, ModelShape, vocab size, batch size)`` of each model measured."""
    models = [
        (f"mini d={d}", MINI_RULES.shape_for_hidden(d), MINI_VOCAB_SIZE, MINI_RULES.fixed_batch_size)
        for d in MINI_WIDTHS
    ]
    return [*models, ("DEMO_6M", DEMO_6M, DEMO_VOCAB_SIZE, DEMO_BATCH_SIZE)]


def median_seconds(loss_fn, model, example, repeats: int) -> tuple[float, float]:
    """Median wall time of one jit-compiled loss + gradient (after compilation), and the loss."""
    step = eqx.filter_jit(eqx.filter_value_and_grad(lambda m, e: loss_fn(m, e).scalar()))
    loss, grads = step(model, example)
    jax.block_until_ready(grads)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(model, example))
        times.append(time.perf_counter() - start)
    return statistics.median(times), float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--blocks", default="256,512,2048", help="other vocabulary blocks to time (comma-separated)")
    args = parser.parse_args()
    blocks = [int(b) for b in args.blocks.split(",") if b]
    load = Load()

    variants = {
        "levanter": next_token_loss_fn("fused", Z_LOSS_WEIGHT, vocab_block=None),
        "ours": next_token_loss_fn("fused", Z_LOSS_WEIGHT, vocab_block=CPU_VOCAB_BLOCK),
        "full": next_token_loss_fn("full", Z_LOSS_WEIGHT),
        **{f"block_{b}": next_token_loss_fn("fused", Z_LOSS_WEIGHT, vocab_block=b) for b in blocks},
    }
    report = {
        "cpu_vocab_block": CPU_VOCAB_BLOCK,
        "seq_len": SEQ_LEN,
        "models": {},
    }
    for name, shape, vocab_size, batch_size in benchmark_models():
        config = qwen3_config(shape, SEQ_LEN, gradient_checkpointing=False, scan_layers=False)
        model = config.build(hax.Axis("vocab", vocab_size), key=jax.random.PRNGKey(0))
        Batch = hax.Axis("batch", batch_size)
        tokens = hax.random.randint(jax.random.PRNGKey(1), (Batch, config.max_Pos.resize(SEQ_LEN)), 0, vocab_size)
        example = hax.vmap(LmExample.causal, Batch)(tokens)
        times, losses = {}, {}
        for variant, loss_fn in variants.items():
            times[variant], losses[variant] = median_seconds(loss_fn, model, example, args.repeats)
        spread = max(losses.values()) - min(losses.values())  # the variants compute one loss
        report["models"][name] = {
            "hidden_dim": shape.hidden_dim,
            "vocab_size": vocab_size,
            "batch": batch_size,
            "seconds": times,
            "loss_spread": spread,
            "levanter_over_ours": times["levanter"] / times["ours"],
            "full_over_ours": times["full"] / times["ours"],
        }
        row = "  ".join(f"{v} {1000 * t:.0f}" for v, t in times.items())
        print(
            f"{name:>11} (V {vocab_size}, batch {batch_size}) ms: {row}   levanter / ours: "
            f"{times['levanter'] / times['ours']:.2f}x  full / ours: {times['full'] / times['ours']:.2f}x  "
            f"loss spread {spread:.1e}",
            flush=True,
        )
    print(load.finish().banner())
    print(f"wrote {write_results('bench_cross_entropy', report, load)}")


if __name__ == "__main__":
    main()
