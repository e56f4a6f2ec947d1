"""Decode throughput of `soda_jax.inference.generate` on this CPU, against its rooflines and its peers.

    .venv/bin/python benchmarks/bench_generate.py [--new-tokens 64] [--contexts 256,1024,4096] [--no-levanter]

One CPU device. Model: `BENCH_20M` (d 384, ff 1024, 6 layers, 6/2 heads x 64) with random weights
and the 16,688-id test vocabulary (300 BPE ids + 4 markers + 8 x 2048 audio ids), f32, unrolled
layers (the CPU default). Prompts of 32 tokens, a fixed number of new tokens, no stop id.
Measured in the same run, after compilation (median of ``--repeats``):

* the machine's limits (`roofline`): matmul FLOP/s and copy bandwidth; every figure of ours is also
  given as a fraction of its roofline: per decode step, the bytes it must read (every weight but the
  embedding table, the filled KV cache) over the bandwidth or its FLOPs over the matmul peak,
  whichever is longer; for a prefill, its FLOPs over the peak;
* greedy at batch 1 and 8: ours; recompute (the same model recomputing the whole prefix per token,
  what generation costs without a cache); HF transformers' ``Qwen3ForCausalLM.generate`` (KV cache)
  on our ``hf/`` export of the same weights, torch on CPU; levanter's paged ``InferenceEngine`` on a
  scanned-layer build of the model (the layout it supports; its own random weights);
* sampling at SODA's TTS defaults (temperature 0.9, top-p 0.8, frame constraint, prompts ending in
  ``<|audio_start|>``) and continuation defaults (1.0, 0.9) at batch 1 and 8, ours against
  transformers' sampling with the same temperature and top-p (top-k off, no constraint);
* greedy with top-p 0.8 set against greedy without (top-p must cost nothing at temperature 0);
* context sweep at batch 1 (prompt of C - new tokens, new tokens at least C / `SWEEP_NEW_FRACTION`):
  prefill timed alone (one new token), decode ms/token from the difference (fastest of
  `SWEEP_REPEATS` runs each); on the unrolled model and on a scanned-layer build (the layout of a
  TPU-trained checkpoint).

Goals: greedy batch 1 >= 70% of the memory roofline and >= 2x hf; batch 8 >= 3x hf; sampling >= 2x
transformers'; top-p at temperature 0 within 1.1x of greedy; ms/token at 1024 within 1.15x of 256
and at 4096 within 1.4x; prefill >= 40% of the matmul peak. The load average before and after is
recorded; a run that started above `result_files.COMPARABLE_LOAD` is marked not comparable.
Writes benchmarks/results/bench_generate.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
from soda_jax.inference.generate import _full_logits, generate  # noqa: E402
from soda_jax.inference.loader import LoadedModel, build_mesh  # noqa: E402
from soda_jax.inference.sampling import SamplingParams  # noqa: E402
from soda_jax.models import BENCH_20M, qwen3_config  # noqa: E402
from soda_jax.training.parallelism import ParallelismConfig  # noqa: E402

PROMPT_TOKENS = 32
SAMPLING = {"tts": (0.9, 0.8, True), "continuation": (1.0, 0.9, True)}
"""SODA's defaults (`soda_jax.inference.prompts.TASK_DEFAULTS`): temperature, top-p, frame constraint."""
SWEEP_REPEATS = 3
"""The context sweep takes the fastest of at least this many runs of each generation: its ms/token is
a difference of two times, and medians of two runs moved 1,024's ratio to 256 from 1.07x to 1.43x
between two idle runs of the same commit."""
SWEEP_NEW_FRACTION = 4
"""The context sweep generates at least context / this many tokens (1,024 at 4,096: the decode runs
from column 3,072 to 4,096), so the decode time is well above the run-to-run noise of the prefill it
is separated from (with 1/16, 64 tokens at 1,024 read from 1.45x to 0.86x of 256 between runs)."""


def bench_model(vocab: AudioTextVocab, context: int, scan_layers: bool = False) -> LoadedModel:
    mesh, compute, params = build_mesh(ParallelismConfig(data=1))
    config = qwen3_config(BENCH_20M, context, gradient_checkpointing=False, scan_layers=scan_layers)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(params):
        model = hax.named_jit(lambda key: config.build(Axis("vocab", vocab.size), key=key), axis_resources=params)(
            jax.random.PRNGKey(0)
        )
    return LoadedModel(model, config, vocab, 8, mesh, compute, params, source="random BENCH_20M")


def prompts_of(vocab: AudioTextVocab, batch: int, length: int, audio: bool = False) -> list[np.ndarray]:
    """Random text prompts; ``audio``: ending in ``<|audio_start|>`` (the TTS prompt's end)."""
    rng = np.random.default_rng(batch)
    prompts = [
        np.concatenate([[vocab.bos_id], rng.integers(4, vocab.text_size, length - 1)]).astype(np.int32)
        for _ in range(batch)
    ]
    if audio:
        for p in prompts:
            p[-1] = vocab.audio_start_id
    return prompts


def timed(fn, repeats: int, statistic=statistics.median) -> float:
    fn()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistic(times)


class Roofline:
    """Seconds the machine cannot beat for the benchmark model's prefill and decode steps."""

    def __init__(self, loaded: LoadedModel, limits: dict):
        arrays = [x for x in jax.tree.leaves(eqx.filter(loaded.model, eqx.is_array))]
        embedding = loaded.model.embeddings.token_embeddings.weight.size
        self.weight_bytes = 4 * (sum(x.size for x in arrays) - embedding)  # a step gathers one embedding row
        self.kv_bytes_per_column = 4 * 2 * BENCH_20M.num_layers * BENCH_20M.num_kv_heads * BENCH_20M.head_dim
        self.vocab = loaded.vocab.size
        self.limits = limits

    def step(self, batch: int, filled: int) -> float:
        """One decode step of ``batch`` sequences over ``filled`` cache columns."""
        bytes_read = self.weight_bytes + batch * filled * self.kv_bytes_per_column
        flops = batch * BENCH_20M.forward_flops_per_token(self.vocab, filled)
        return max(bytes_read / self.limits["memory_bytes_per_s"], flops / self.limits["matmul_flops"])

    def bound_by(self, batch: int, filled: int) -> str:
        """Which limit sets `step`: ``memory`` or ``flops``."""
        flops = batch * BENCH_20M.forward_flops_per_token(self.vocab, filled) / self.limits["matmul_flops"]
        return "flops" if flops >= self.step(batch, filled) else "memory"

    def prefill(self, batch: int, tokens: int) -> float:
        return batch * tokens * BENCH_20M.forward_flops_per_token(self.vocab, tokens) / self.limits["matmul_flops"]

    def generation(self, batch: int, prompt: int, new: int) -> float:
        return self.prefill(batch, prompt) + sum(self.step(batch, prompt + t) for t in range(new))


def ours(loaded, prompts, new_tokens: int, repeats: int, statistic=statistics.median, **sampling) -> float:
    sampling = {"temperature": 0.0, "audio_constraint": False, **sampling}
    params = [SamplingParams(max_new_tokens=new_tokens, seed=i, **sampling) for i in range(len(prompts))]
    return timed(lambda: generate(loaded, prompts, params), repeats, statistic)


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
    """levanter's paged-KV `InferenceEngine` (greedy) on a scanned-layer model, f32 cache, pages of 64 tokens."""
    from levanter.inference.engine import InferenceEngine, InferenceEngineConfig, Request
    from levanter.inference.jit_scheduler import SeqDecodingParams

    page, max_len = 64, PROMPT_TOKENS + new_tokens + 64
    pages_per_seq = -(-max_len // page)
    config = InferenceEngineConfig(
        max_seq_len=max_len,
        page_size=page,
        max_seqs=8,
        max_pages=8 * pages_per_seq,
        compute_dtype=jnp.float32,
        max_queued_tokens=64,
        max_seqs_in_prefill=8,
        max_prefill_size=8 * PROMPT_TOKENS,
        max_rounds=new_tokens,
    )
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        engine = InferenceEngine.from_model_with_config(
            loaded.model, loaded.vocab.text_tokenizer, config, loaded.compute_mapping
        )

        def run():
            requests = [
                Request(
                    prompt_tokens=[int(t) for t in p],
                    request_id=i,
                    n_generations=1,
                    decode_params=SeqDecodingParams(
                        max_num_tokens=jnp.array(PROMPT_TOKENS + new_tokens, jnp.int32),
                        stop_tokens=None,
                        temperature=jnp.array(0.0, jnp.float32),
                        top_p=jnp.array(1.0, jnp.float32),
                        key=jax.random.PRNGKey(i),
                    ),
                )
                for i, p in enumerate(prompts)
            ]
            result = engine.generate(requests)
            assert result.total_generated >= len(prompts) * new_tokens, result.total_generated

        return timed(run, repeats)


def hf_model(hf_dir: str):
    import torch
    from transformers import Qwen3ForCausalLM

    return Qwen3ForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()


def hf_generate(model, prompts, new_tokens: int, repeats: int, temperature: float = 0.0, top_p: float = 1.0) -> float:
    """transformers' ``generate`` (KV cache): greedy, or sampling with ``temperature`` and ``top_p`` (top-k off)."""
    import torch

    ids = torch.tensor(np.stack(prompts), dtype=torch.long)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
        if temperature > 0
        else {"do_sample": False}
    )

    def run():
        with torch.inference_mode():
            model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                use_cache=True,
                pad_token_id=0,
                **sampling,
            )

    return timed(run, repeats)


def context_sweep(loaded, vocab, roof: Roofline, contexts: list[int], n: int, repeats: int, label: str) -> dict:
    """Batch 1: for each context C, a prompt of C - new tokens and new = max(n, C / `SWEEP_NEW_FRACTION`)
    generated, so the decode ends at column C; the prefill timed alone (one new token) and the decode's
    ms/token from the difference."""
    rows: dict = {}
    for context in contexts:
        new = max(n, context // SWEEP_NEW_FRACTION)
        prompts = prompts_of(vocab, 1, context - new)
        repeats = max(repeats, SWEEP_REPEATS)
        with_decode, prefill = ours(loaded, prompts, new, repeats, min), ours(loaded, prompts, 1, repeats, min)
        if with_decode <= prefill:
            rows[str(context)] = {"error": f"decode not measurable: {new} tokens took no longer than the prefill"}
            print(f"context {context} ({label}): {rows[str(context)]['error']}", flush=True)
            continue
        per_token = (with_decode - prefill) / (new - 1)
        rows[str(context)] = row = {
            "new_tokens": new,
            "ms_per_token": 1e3 * per_token,
            "decode_tokens_per_second": 1 / per_token,
            "decode_fraction_of_roofline": roof.step(1, context) / per_token,
            "prefill_seconds": prefill,
            "prefill_fraction_of_matmul_peak": roof.prefill(1, context - new) / prefill,
        }
        print(
            f"context {context} ({label}): decode {1e3 * per_token:.2f} ms/token "
            f"({100 * row['decode_fraction_of_roofline']:.0f}% of the roofline); "
            f"prefill of {context - new} tokens {prefill:.2f} s "
            f"({100 * row['prefill_fraction_of_matmul_peak']:.0f}% of the matmul peak)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--contexts", default="256,1024,4096")
    parser.add_argument(
        "--no-levanter", action="store_true", help="skip levanter's InferenceEngine (its compile is slow)"
    )
    args = parser.parse_args()
    from helpers_data import save_test_tokenizer

    from soda_jax.data.cache_vocab import levanter_tokenizer_path, save_cache_vocab
    from soda_jax.training.export import export_hf

    load = Load()
    contexts = [int(c) for c in args.contexts.split(",")]
    n = args.new_tokens
    limits = machine_limits()
    print(
        f"matmul peak {limits['matmul_flops'] / 1e9:.1f} GFLOP/s, "
        f"copy bandwidth {limits['memory_bytes_per_s'] / 1e9:.1f} GB/s",
        flush=True,
    )
    rows: dict = {
        "new_tokens": n,
        "prompt_tokens": PROMPT_TOKENS,
        "model": "BENCH_20M",
        "limits": limits,
        "batches": {},
        "sampling": {},
        "context": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        vocab = AudioTextVocab(
            AudioTextVocab.from_pretrained(save_test_tokenizer(os.path.join(tmp, "tok"))).text_tokenizer
        )
        rows["vocab"] = vocab.size
        loaded = bench_model(vocab, max(contexts) + 128)
        roof = Roofline(loaded, limits)
        rows["decode_step_weight_bytes"] = roof.weight_bytes
        hf_dir = os.path.join(tmp, "hf")
        save_cache_vocab(vocab, os.path.join(tmp, "cache"))  # the full-vocabulary tokenizer the export carries
        with hax.partitioning.set_mesh(loaded.mesh):
            export_hf(
                loaded.model,
                loaded.model_config,
                hf_dir,
                tokenizer_dir=levanter_tokenizer_path(os.path.join(tmp, "cache")),
            )
        hf = hf_model(hf_dir)
        scanned = None if args.no_levanter else bench_model(vocab, PROMPT_TOKENS + n + 128, scan_layers=True)
        for batch in (1, 8):
            prompts = prompts_of(vocab, batch, PROMPT_TOKENS)
            seconds = {
                "ours": ours(loaded, prompts, n, args.repeats),
                "ours_top_p_0.8_at_temperature_0": ours(loaded, prompts, n, args.repeats, top_p=0.8),
                "recompute": recompute(loaded, prompts, n, args.repeats),
                "hf": hf_generate(hf, prompts, n, args.repeats),
            }
            if scanned is not None:
                try:
                    seconds["levanter_engine_scanned"] = levanter_engine(scanned, prompts, n, args.repeats)
                except Exception as error:  # recorded, not fatal
                    rows.setdefault("levanter_engine_errors", []).append(
                        f"batch {batch}: {type(error).__name__}: {error}"[:500]
                    )
            tps = {k: batch * n / v for k, v in seconds.items()}
            roofline_seconds = roof.generation(batch, PROMPT_TOKENS, n)
            rows["batches"][str(batch)] = {
                "tokens_per_second": tps,
                "ours_vs_hf": tps["ours"] / tps["hf"],
                "ours_vs_recompute": tps["ours"] / tps["recompute"],
                "top_p_cost_at_temperature_0": seconds["ours_top_p_0.8_at_temperature_0"] / seconds["ours"],
                "ours_fraction_of_roofline": roofline_seconds / seconds["ours"],
                "decode_step_bound_by": roof.bound_by(batch, PROMPT_TOKENS),
            }
            r = rows["batches"][str(batch)]
            print(
                f"batch {batch} greedy: "
                + ", ".join(f"{k} {v:,.0f} tok/s" for k, v in tps.items())
                + f"; ours / hf = {r['ours_vs_hf']:.2f}x;"
                f" ours at {100 * r['ours_fraction_of_roofline']:.0f}% of the roofline;"
                f" top-p at T=0 costs {r['top_p_cost_at_temperature_0']:.2f}x",
                flush=True,
            )
            for task, (temperature, top_p, constrained) in SAMPLING.items():
                audio_prompts = prompts_of(vocab, batch, PROMPT_TOKENS, audio=True)
                mine = ours(
                    loaded,
                    audio_prompts,
                    n,
                    args.repeats,
                    temperature=temperature,
                    top_p=top_p,
                    audio_constraint=constrained,
                )
                theirs = hf_generate(hf, audio_prompts, n, args.repeats, temperature=temperature, top_p=top_p)
                rows["sampling"][f"{task}_batch{batch}"] = {
                    "temperature": temperature,
                    "top_p": top_p,
                    "frame_constraint": constrained,
                    "ours_tokens_per_second": batch * n / mine,
                    "hf_tokens_per_second": batch * n / theirs,
                    "ours_vs_hf": theirs / mine,
                }
                print(
                    f"batch {batch} sampling ({task}: T {temperature}, top-p {top_p}): "
                    f"ours {batch * n / mine:,.0f} tok/s, "
                    f"hf {batch * n / theirs:,.0f} tok/s; ours / hf = {theirs / mine:.2f}x",
                    flush=True,
                )
        rows["context"] = context_sweep(loaded, vocab, roof, contexts, n, args.repeats, "unrolled layers")
        rows["context_scanned_layers"] = context_sweep(
            bench_model(vocab, max(contexts) + 128, scan_layers=True),
            vocab,
            roof,
            contexts,
            n,
            args.repeats,
            "scanned layers",
        )
        for key in ("context", "context_scanned_layers"):
            base = rows[key].get("256", {}).get("ms_per_token")
            if base:
                ratios = {k: v["ms_per_token"] / base for k, v in rows[key].items() if "ms_per_token" in v}
                rows[f"ms_per_token_vs_256{key.removeprefix('context')}"] = ratios
                print(f"ms/token relative to 256 ({key}): " + ", ".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    print(load.finish().banner())
    print(f"wrote {write_results('bench_generate', rows, load)}")


if __name__ == "__main__":
    main()
