"""Decode throughput of `soda_jax.inference.generate` on this CPU, against recomputation and HF transformers.

    .venv/bin/python benchmarks/bench_generate.py [--new-tokens 64] [--contexts 256,1024,4096]

One CPU device. Model: `BENCH_20M` (d 384, ff 1024, 6 layers, 6/2 heads x 64) with random weights
and the 16,688-id test vocabulary (300 BPE ids + 4 markers + 8 x 2048 audio ids), f32. Greedy,
no stop id, a fixed number of new tokens per sequence, prompts of 32 tokens. Measured in the same run:

* ours: the dense KV cache decode loop (one jit per bucket, ``lax.while_loop``), after compilation;
* recompute: the same model recomputing the whole (bucket-padded) prefix for every new token, one
  jit-compiled full forward per step (what generation costs without a cache);
* levanter_engine: levanter's paged ``InferenceEngine`` on the same weights (greedy; on CPU its
  ragged paged attention is the reference implementation);
* hf: transformers' ``Qwen3ForCausalLM.generate`` (KV cache, greedy) on our ``hf/`` export of the
  same weights, torch on CPU.

Then ours at growing context (prompt of C - 64 tokens, 64 new tokens): decode tokens/s from the
difference between 64 and 16 new tokens, so the prefill is not counted. Goals: ours >= 2x hf at
batch 1 and 8, and a per-token cost that stays flat as the context grows.
Writes benchmarks/results/bench_generate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the test BPE

import haliax as hax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from haliax import Axis  # noqa: E402

from soda_jax.audio.vocab import AudioTextVocab  # noqa: E402
from soda_jax.inference.generate import _full_logits, generate  # noqa: E402
from soda_jax.inference.loader import LoadedModel, build_mesh  # noqa: E402
from soda_jax.inference.sampling import SamplingParams  # noqa: E402
from soda_jax.models import BENCH_20M, qwen3_config  # noqa: E402
from soda_jax.training.parallelism import ParallelismConfig  # noqa: E402

PROMPT_TOKENS = 32
RESULTS = os.path.join(os.path.dirname(__file__), "results", "bench_generate.json")


def bench_model(vocab: AudioTextVocab, context: int) -> LoadedModel:
    mesh, compute, params = build_mesh(ParallelismConfig(data=1))
    config = qwen3_config(BENCH_20M, context, gradient_checkpointing=False, scan_layers=False)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(params):
        model = hax.named_jit(lambda key: config.build(Axis("vocab", vocab.size), key=key), axis_resources=params)(jax.random.PRNGKey(0))
    return LoadedModel(model, config, vocab, 8, mesh, compute, params, source="random BENCH_20M")


def prompts_of(vocab: AudioTextVocab, batch: int, length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(batch)
    return [np.concatenate([[vocab.bos_id], rng.integers(4, vocab.text_size, length - 1)]).astype(np.int32) for _ in range(batch)]


def timed(fn, repeats: int) -> float:
    fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(loaded, prompts, new_tokens: int, repeats: int) -> float:
    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, audio_constraint=False)
    return timed(lambda: generate(loaded, prompts, params), repeats)


def recompute(loaded, prompts, new_tokens: int, repeats: int) -> float:
    """Greedy decode with a full forward over the padded prefix for every token (no cache)."""
    width = PROMPT_TOKENS + new_tokens
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        def run():
            tokens = np.zeros((len(prompts), width), np.int32)
            tokens[:, :PROMPT_TOKENS] = np.stack(prompts)
            tokens = jnp.asarray(tokens)
            for position in range(PROMPT_TOKENS, width):
                logits = _full_logits(loaded.model, tokens)
                tokens = tokens.at[:, position].set(jnp.argmax(logits[:, position - 1, : loaded.vocab.size], axis=-1))
            tokens.block_until_ready()

        return timed(run, repeats)


def levanter_engine(loaded, prompts, new_tokens: int, repeats: int) -> float:
    """levanter's paged-KV `InferenceEngine` (greedy), f32 cache, pages of 64 tokens."""
    from levanter.inference.engine import InferenceEngine, InferenceEngineConfig, Request
    from levanter.inference.jit_scheduler import SeqDecodingParams

    page, max_len = 64, PROMPT_TOKENS + new_tokens + 64
    pages_per_seq = -(-max_len // page)
    config = InferenceEngineConfig(
        max_seq_len=max_len, page_size=page, max_seqs=8, max_pages=8 * pages_per_seq, compute_dtype=jnp.float32,
        max_queued_tokens=64, max_seqs_in_prefill=8, max_prefill_size=8 * PROMPT_TOKENS, max_rounds=new_tokens,
    )  # fmt: skip
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        engine = InferenceEngine.from_model_with_config(loaded.model, loaded.vocab.text_tokenizer, config, loaded.compute_mapping)

        def run():
            requests = [
                Request(
                    prompt_tokens=[int(t) for t in p], request_id=i, n_generations=1,
                    decode_params=SeqDecodingParams(
                        max_num_tokens=jnp.array(PROMPT_TOKENS + new_tokens, jnp.int32), stop_tokens=None,
                        temperature=jnp.array(0.0, jnp.float32), top_p=jnp.array(1.0, jnp.float32), key=jax.random.PRNGKey(i),
                    ),
                )
                for i, p in enumerate(prompts)
            ]  # fmt: skip
            result = engine.generate(requests)
            assert result.total_generated >= len(prompts) * new_tokens, result.total_generated

        return timed(run, repeats)


def hf_generate(loaded, prompts, new_tokens: int, repeats: int, hf_dir: str) -> float:
    import torch
    from transformers import Qwen3ForCausalLM

    model = Qwen3ForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    ids = torch.tensor(np.stack(prompts), dtype=torch.long)

    def run():
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, use_cache=True, pad_token_id=0)  # fmt: skip

    return timed(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--contexts", default="256,1024,4096")
    args = parser.parse_args()
    from helpers_data import save_test_tokenizer

    from soda_jax.data.cache_vocab import levanter_tokenizer_path, save_cache_vocab
    from soda_jax.training.export import export_hf

    contexts = [int(c) for c in args.contexts.split(",")]
    n = args.new_tokens
    rows: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "new_tokens": n,
                  "prompt_tokens": PROMPT_TOKENS, "model": "BENCH_20M", "batches": {}, "context": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        vocab = AudioTextVocab(AudioTextVocab.from_pretrained(save_test_tokenizer(os.path.join(tmp, "tok"))).text_tokenizer)
        rows["vocab"] = vocab.size
        loaded = bench_model(vocab, max(contexts) + 128)
        hf_dir = os.path.join(tmp, "hf")
        save_cache_vocab(vocab, os.path.join(tmp, "cache"))  # the full-vocabulary tokenizer the export carries
        with hax.partitioning.set_mesh(loaded.mesh):
            export_hf(loaded.model, loaded.model_config, hf_dir, tokenizer_dir=levanter_tokenizer_path(os.path.join(tmp, "cache")))
        for batch in (1, 8):
            prompts = prompts_of(vocab, batch, PROMPT_TOKENS)
            seconds = {
                "ours": ours(loaded, prompts, n, args.repeats),
                "recompute": recompute(loaded, prompts, n, args.repeats),
                "hf": hf_generate(loaded, prompts, n, args.repeats, hf_dir),
            }
            try:
                seconds["levanter_engine"] = levanter_engine(loaded, prompts, n, args.repeats)
            except Exception as error:  # recorded, not fatal: the comparison that chose our engine
                rows.setdefault("levanter_engine_errors", []).append(f"batch {batch}: {type(error).__name__}: {error}"[:500])
            tps = {k: batch * n / v for k, v in seconds.items()}
            rows["batches"][str(batch)] = {"tokens_per_second": tps, "ours_vs_hf": tps["ours"] / tps["hf"], "ours_vs_recompute": tps["ours"] / tps["recompute"]}
            print(f"batch {batch}: " + ", ".join(f"{k} {v:,.0f} tok/s" for k, v in tps.items()) + f"; ours / hf = {tps['ours'] / tps['hf']:.2f}x", flush=True)
        short = 16
        for context in contexts:
            prompts = prompts_of(vocab, 1, context - n)
            long_run, short_run = ours(loaded, prompts, n, args.repeats), ours(loaded, prompts, short, args.repeats)
            per_token = max(long_run - short_run, 1e-9) / (n - short)
            rows["context"][str(context)] = {"decode_tokens_per_second": 1 / per_token, "ms_per_token": 1e3 * per_token, "seconds_with_prefill": long_run}
            print(f"context {context}: {1 / per_token:,.0f} decode tok/s at batch 1 ({1e3 * per_token:.2f} ms/token)", flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
