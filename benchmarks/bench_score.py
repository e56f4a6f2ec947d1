"""Likelihood scoring (`soda_jax.inference.generate.score`) against the full-logits scoring it replaced.

    .venv/bin/python benchmarks/bench_score.py [--sequences 256] [--repeats 2] [--model demo]

One CPU device, random weights, f32, scanned layers (how training saves models). Models: ``demo``
(`DEMO_6M` with the demo's 48,388-id vocabulary: the embeddings dominate, as in SODA's small
models) or ``bench`` (`BENCH_20M` with the 16,688-id test vocabulary). Sequences of random ids, of
seeded random lengths between `MIN_LENGTH` and `MAX_LENGTH` tokens (sWUGGY/sBLIMP-sized pieces).
Measured in the same run, after a first call that compiles (median of ``--repeats``):

* ours: `score` (sequences packed into rows, blockwise log-sum-exp over the vocabulary);
* full_logits: the scoring it replaced, kept here as the baseline: groups of ``max_batch``
  sequences sorted by length, each right-padded to its power-of-two length bucket (rows padded to a
  power of two), the full [rows, length, vocabulary] logits materialised, then ``log_softmax``.

Reported: scored tokens/s of each, their ratio, each as a fraction of the matmul peak (the model's
forward FLOPs of the scored tokens), the number of compiled shapes each used, and the largest
difference between their log-probs. Goal: ours >= 3x full_logits, same values to 1e-5. The load
average before and after is recorded (`result_files.Load`). Writes benchmarks/results/bench_score.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the test BPE
sys.path.insert(0, os.path.dirname(__file__))  # roofline, result_files

import equinox as eqx  # noqa: E402
import haliax as hax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from haliax import Axis  # noqa: E402
from result_files import Load, write_results  # noqa: E402
from roofline import machine_limits  # noqa: E402

from soda_jax.audio.vocab import AudioTextVocab  # noqa: E402
from soda_jax.inference.generate import BATCH, MIN_PROMPT_BUCKET, POSITION, batch_bucket, bucket, score  # noqa: E402
from soda_jax.inference.loader import LoadedModel, build_mesh  # noqa: E402
from soda_jax.models import BENCH_20M, DEMO_6M, qwen3_config  # noqa: E402
from soda_jax.training.parallelism import ParallelismConfig  # noqa: E402

MIN_LENGTH, MAX_LENGTH = 20, 400
"""Range of the sequence lengths (tokens)."""
CONTEXT = 1024
MAX_BATCH = 32
"""Sequences (baseline) or packed rows (ours) per forward: `score`'s default."""
MODELS = {"demo": (DEMO_6M, 48_388), "bench": (BENCH_20M, None)}
"""Shape and vocabulary rows (None: the test vocabulary's size)."""


def bench_model(vocab: AudioTextVocab, model: str) -> LoadedModel:
    shape, rows = MODELS[model]
    mesh, compute, params = build_mesh(ParallelismConfig(data=1))
    config = qwen3_config(shape, CONTEXT, gradient_checkpointing=False, scan_layers=True)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(params):
        built = hax.named_jit(
            lambda key: config.build(Axis("vocab", rows or vocab.size), key=key), axis_resources=params
        )(jax.random.PRNGKey(0))
    return LoadedModel(built, config, vocab, 8, mesh, compute, params, source=f"random {model}")


@eqx.filter_jit
def _full_logits_bucket(model, tokens):
    from levanter.layers.attention import AttentionMask

    Batch, Pos = Axis(BATCH, tokens.shape[0]), Axis(POSITION, tokens.shape[1])
    logits = model(hax.shard(hax.named(tokens, (Batch, Pos))), attn_mask=AttentionMask.causal()).array.astype(
        jnp.float32
    )
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    return jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


def full_logits_score(loaded: LoadedModel, sequences: list[np.ndarray], shapes: set) -> list[np.ndarray]:
    """The scoring `score` replaced (see the module docstring); adds each forward's shape to ``shapes``."""
    order = sorted(range(len(sequences)), key=lambda i: sequences[i].size)
    results: list = [None] * len(sequences)
    for start in range(0, len(order), MAX_BATCH):
        group = order[start : start + MAX_BATCH]
        length = min(bucket(max(sequences[i].size for i in group), MIN_PROMPT_BUCKET), loaded.context_length)
        tokens = np.zeros((batch_bucket(len(group), 1), length), np.int32)
        for row, i in enumerate(group):
            tokens[row, : sequences[i].size] = sequences[i]
        shapes.add(tokens.shape)
        with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
            logp = np.asarray(jax.device_get(_full_logits_bucket(loaded.model, jnp.asarray(tokens))))
        for row, i in enumerate(group):
            results[i] = logp[row, : sequences[i].size - 1]
    return results


def timed(fn, repeats: int) -> tuple[float, list]:
    out = fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=sorted(MODELS), default="demo")
    args = parser.parse_args()
    from helpers_data import save_test_tokenizer

    load = Load()
    limits = machine_limits()
    with tempfile.TemporaryDirectory() as tmp:
        vocab = AudioTextVocab(
            AudioTextVocab.from_pretrained(save_test_tokenizer(os.path.join(tmp, "tok"))).text_tokenizer
        )
    loaded = bench_model(vocab, args.model)
    vocab_rows = loaded.model.Vocab.size
    rng = np.random.default_rng(0)
    sequences = [
        rng.integers(0, vocab.size, int(n)).astype(np.int32)
        for n in rng.integers(MIN_LENGTH, MAX_LENGTH + 1, args.sequences)
    ]
    scored_tokens = sum(s.size - 1 for s in sequences)
    shape, _ = MODELS[args.model]
    mean_length = int(np.mean([s.size for s in sequences]))
    flops = sum(s.size for s in sequences) * shape.forward_flops_per_token(vocab_rows, mean_length)

    baseline_shapes: set = set()
    full_seconds, reference = timed(lambda: full_logits_score(loaded, sequences, baseline_shapes), args.repeats)
    before = _score_cache_size()
    ours_seconds, got = timed(lambda: score(loaded, sequences, max_batch=MAX_BATCH), args.repeats)
    ours_shapes = _score_cache_size() - before
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(got, reference))
    runs = {"ours": ours_seconds, "full_logits": full_seconds}
    report = {
        "model": args.model,
        "vocab_rows": vocab_rows,
        "sequences": args.sequences,
        "scored_tokens": scored_tokens,
        "lengths": [MIN_LENGTH, MAX_LENGTH],
        "limits": limits,
        "runs": {
            k: {
                "seconds": v,
                "tokens_per_second": scored_tokens / v,
                "fraction_of_matmul_peak": flops / v / limits["matmul_flops"],
            }
            for k, v in runs.items()
        },
        "ours_vs_full_logits": full_seconds / ours_seconds,
        "compiled_shapes": {"ours": ours_shapes, "full_logits": len(baseline_shapes)},
        "max_abs_logprob_difference": difference,
    }
    load.finish()
    for name, run in report["runs"].items():
        print(
            f"{name:>12}: {run['tokens_per_second']:9,.0f} scored tokens/s "
            f"({100 * run['fraction_of_matmul_peak']:.0f}% of the matmul peak), "
            f"{report['compiled_shapes'][name]} compiled shapes"
        )
    print(f"ours / full logits: {report['ours_vs_full_logits']:.2f}x; largest log-prob difference {difference:.2e}")
    print(load.banner())
    print(f"wrote {write_results('bench_score', report, load)}")


def _score_cache_size() -> int:
    """Programs `score` has compiled in this process."""
    from soda_jax.inference.generate import _score_rows

    return _score_rows._cached._cache_size()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
