"""Mimi speed: the codec wrapper's overhead, JAX vs torch, the demo's tiny codec, a TPU estimate.

All on the full-size Mimi config (kyutai/mimi's shapes, 79M params) with random weights unless
said otherwise: speed does not depend on the weights. Runs alternate so machine load hits both
alike; minimum over repeats (the intrinsic cost), medians recorded too.

- ``overhead``: MimiCodec (torch) vs a bare transformers ``MimiModel.encode`` on the same input:
  wall-clock with torch's default threads and process CPU time with one thread.
- ``backends``: encode and decode of one batch (``--batch`` x ``--seconds``), audio seconds per
  second, torch vs jax on this CPU, same input, same run, alternating (jax timed after its compile,
  which is reported separately); the per-process figure a CPU pool's estimate uses (docs/tpu.md).
- ``demo``: the demo's tiny random codec encoding a demo-sized batch list from a cold start (build +
  compile + encode), per backend: which one ``make demo`` should use.
- ``tpu``: ahead-of-time compile of a batched encode for one TPU v5p chip (``v5p:2x2x1`` topology,
  libtpu, no TPU needed) at the tokenize step's matmul precision (``--tpu-precision``, default
  "highest"): compiled FLOPs, bytes and memory -> roofline audio hours per chip-hour and chip-hours
  for 1.4M hours. Falls back to the CPU compile's FLOPs (labelled) without libtpu.

Every run records the commit, the machine and the load average before and after (other jobs on a
shared machine slow both backends alike; the load says how much). Run it alone on the machine:

    .venv/bin/python benchmarks/bench_codec.py [--parts overhead,backends,demo,tpu] [--repeats 5]
    .venv/bin/python benchmarks/bench_codec.py --parts backends --batch 8 --seconds 10   # JAX vs torch only
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from result_files import Load, previous_report, write_results

from soda_jax.audio.codec import MimiCodec, batches_by_length
from soda_jax.audio.mimi_jax.runner import DEFAULT_MATMUL_PRECISION, MATMUL_PRECISIONS

NAME = "bench_codec"
"""Its results file: benchmarks/results/bench_codec.json (`result_files.results_path`)."""
NUM_CODEBOOKS = 8
SODA_HOURS = 1.4e6
"""Hours of speech SODA tokenizes (YODAS2 + Emilia)."""
V5P_PEAK_FLOPS = 459e12
"""TPU v5p peak bf16 FLOP/s per chip (Google Cloud's v5p specification)."""
V5P_HBM_BYTES_PER_S = 2.765e12
"""TPU v5p HBM bandwidth per chip (same source)."""


def timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def speech_like(seconds: float, seed: int = 0, samples_per_frame: int = 1920) -> np.ndarray:
    """Whole frames of noise (speed does not depend on the signal)."""
    samples = round(seconds * 12.5) * samples_per_frame
    return (np.random.default_rng(seed).standard_normal(samples) * 0.1).astype(np.float32)


# ------------------------------------------------------------------------------- overhead
def bare_encode(codec: MimiCodec, wave: np.ndarray) -> None:
    """What a user of transformers would write: one forward, default config (no KV cache)."""
    codec.model.config.use_cache = False
    try:
        with torch.inference_mode():
            codec.model.encode(torch.from_numpy(wave)[None, None], num_quantizers=NUM_CODEBOOKS)
    finally:
        codec.model.config.use_cache = True


def compare_overhead(codec: MimiCodec, wave: np.ndarray, repeats: int) -> dict[str, float]:
    bare_encode(codec, wave)  # warm-up both paths (allocator, oneDNN kernels)
    codec.encode([wave])
    bare, wrapped, bare_cpu, wrapped_cpu = [], [], [], []
    threads = torch.get_num_threads()
    for _ in range(repeats):
        bare.append(timed(lambda: bare_encode(codec, wave)))
        wrapped.append(timed(lambda: codec.encode([wave])))
        torch.set_num_threads(1)
        bare_cpu.append(timed(lambda: bare_encode(codec, wave), time.process_time))
        wrapped_cpu.append(timed(lambda: codec.encode([wave]), time.process_time))
        torch.set_num_threads(threads)
    audio_seconds = len(wave) / codec.sample_rate
    bare_s, wrapped_s = min(bare), min(wrapped)
    return {
        "audio_seconds": audio_seconds,
        "bare_seconds_median": statistics.median(bare),
        "wrapper_seconds_median": statistics.median(wrapped),
        "bare_seconds": bare_s,
        "wrapper_seconds": wrapped_s,
        "bare_audio_seconds_per_second": audio_seconds / bare_s,
        "wrapper_audio_seconds_per_second": audio_seconds / wrapped_s,
        "bare_cpu_seconds_1_thread": min(bare_cpu),
        "wrapper_cpu_seconds_1_thread": min(wrapped_cpu),
        "wrapper_overhead": min(wrapped_cpu) / min(bare_cpu) - 1.0,
        "wrapper_overhead_wall": wrapped_s / bare_s - 1.0,
    }


def overhead(codec: MimiCodec, seconds: float, repeats: int) -> dict:
    wave = speech_like(seconds)
    results = {
        "utterance": compare_overhead(codec, wave, repeats),
        # A long recording: the wrapper streams it in 30 s chunks, the bare model takes it whole.
        "long_recording_chunked": compare_overhead(codec, np.tile(wave, 6), repeats),
    }
    for name, r in results.items():
        print(
            f"overhead {name:24s} {r['audio_seconds']:5.0f} s audio: bare "
            f"{r['bare_audio_seconds_per_second']:6.1f} audio-s/s, wrapper "
            f"{r['wrapper_audio_seconds_per_second']:6.1f} audio-s/s, overhead "
            f"{100 * r['wrapper_overhead']:+.1f}% (1-thread CPU time), {100 * r['wrapper_overhead_wall']:+.1f}% (wall)"
        )
    return results


# ------------------------------------------------------------------------------- backends
def backends(torch_codec: MimiCodec, seconds: float, batch: int, repeats: int) -> dict:
    """Encode and decode the same batch with both backends, alternating; jax after its compile."""
    from soda_jax.audio.mimi_jax import from_transformers

    start = time.perf_counter()
    jax_codec = MimiCodec(from_transformers(torch_codec.model))
    convert_s = time.perf_counter() - start
    waves = [speech_like(seconds, seed=i) for i in range(batch)]
    codecs = {"torch": torch_codec, "jax": jax_codec}
    first = {name: timed(lambda c=c: c.encode(waves)) for name, c in codecs.items()}  # jax: compiles
    codes = torch_codec.encode(waves)
    first_decode = {name: timed(lambda c=c: c.decode(codes)) for name, c in codecs.items()}
    enc: dict[str, list[float]] = {"torch": [], "jax": []}
    dec: dict[str, list[float]] = {"torch": [], "jax": []}
    for _ in range(repeats):
        for name, c in codecs.items():
            enc[name].append(timed(lambda c=c: c.encode(waves)))
            dec[name].append(timed(lambda c=c: c.decode(codes)))
    audio = batch * seconds
    result = {
        "audio_seconds": audio,
        "batch": batch,
        "seconds_per_item": seconds,
        "torch_threads": torch.get_num_threads(),
        "jax_devices": len(jax_codec.runner.mesh.devices.flat),
        "jax_convert_seconds": convert_s,
        "jax_encode_compile_seconds": first["jax"] - min(enc["jax"]),
        "jax_decode_compile_seconds": first_decode["jax"] - min(dec["jax"]),
    }
    for name in codecs:
        result[f"{name}_encode_audio_seconds_per_second"] = audio / min(enc[name])
        result[f"{name}_decode_audio_seconds_per_second"] = audio / min(dec[name])
        result[f"{name}_encode_seconds_median"] = statistics.median(enc[name])
        result[f"{name}_decode_seconds_median"] = statistics.median(dec[name])
    result["jax_over_torch_encode"] = min(enc["torch"]) / min(enc["jax"])
    result["jax_over_torch_decode"] = min(dec["torch"]) / min(dec["jax"])
    print(
        f"backends {batch} x {seconds:.0f} s: encode torch {result['torch_encode_audio_seconds_per_second']:.1f}, "
        f"jax {result['jax_encode_audio_seconds_per_second']:.1f} audio-s/s (jax/torch "
        f"{result['jax_over_torch_encode']:.2f}x); decode torch {result['torch_decode_audio_seconds_per_second']:.1f}, "
        f"jax {result['jax_decode_audio_seconds_per_second']:.1f} audio-s/s ({result['jax_over_torch_decode']:.2f}x); "
        f"jax compile {result['jax_encode_compile_seconds']:.1f} s encode, "
        f"{result['jax_decode_compile_seconds']:.1f} s decode"
    )
    return result


# ----------------------------------------------------------------------------------- demo
def demo(repeats: int) -> dict:
    """The demo's workload in miniature: 40 utterances of 2-6 s, batched by length (120 s budget),
    from a cold codec (build, compile, encode) and again warm."""
    rng = np.random.default_rng(0)
    waves = [speech_like(float(s), seed=i)[: int(s * 24_000)] for i, s in enumerate(rng.uniform(2, 6, 40))]
    batches = batches_by_length([len(w) for w in waves], 120 * 24_000)
    audio = sum(len(w) for w in waves) / 24_000

    def run(backend: str) -> tuple[float, float]:
        start = time.perf_counter()
        codec = MimiCodec.random(seed=0, backend=backend)
        for b in batches:
            codec.encode([waves[i] for i in b])
        cold = time.perf_counter() - start
        warm = timed(lambda: [codec.encode([waves[i] for i in b]) for b in batches])
        return cold, warm

    runs: dict[str, list[tuple[float, float]]] = {"torch": [], "jax": []}
    for _ in range(max(1, repeats // 2)):
        for backend, times in runs.items():
            times.append(run(backend))
    result = {"audio_seconds": audio, "utterances": len(waves), "batches": len(batches)}
    for backend, times in runs.items():
        result[f"{backend}_cold_seconds"] = min(t[0] for t in times)
        result[f"{backend}_warm_seconds"] = min(t[1] for t in times)
    result["faster_cold"] = min(runs, key=lambda b: result[f"{b}_cold_seconds"])
    print(
        f"demo tiny codec, {audio:.0f} s of audio in {len(batches)} batches: cold torch "
        f"{result['torch_cold_seconds']:.1f} s, jax {result['jax_cold_seconds']:.1f} s; warm torch "
        f"{result['torch_warm_seconds']:.2f} s, jax {result['jax_warm_seconds']:.2f} s"
    )
    return result


# ------------------------------------------------------------------------------------ tpu
def tpu(batch: int, seconds: float, precision: str = DEFAULT_MATMUL_PRECISION) -> dict:
    """Compile a batched full-size encode (``batch`` x ``seconds``, 8 codebooks) for one v5p chip, its
    float32 matmuls and convolutions at ``precision`` (as `MimiRunner` runs them)."""
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # other processes may hold libtpu's lock
    import jax
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from soda_jax.audio.mimi_jax import Mimi, MimiJaxConfig
    from soda_jax.audio.mimi_jax.runner import DATA_AXIS, _encode

    try:
        from jax.experimental import topologies

        device = topologies.get_topology_desc(platform="tpu", topology_name="v5p:2x2x1").devices[0]
        target = "tpu v5p (ahead-of-time compile via libtpu)"
    except (ImportError, RuntimeError, ValueError) as error:  # no libtpu: a labelled CPU-FLOPs bound
        print(f"tpu: no v5p topology ({type(error).__name__}: {error}); using the CPU compile's FLOPs")
        device = jax.devices("cpu")[0]
        target = "cpu cost_analysis FLOPs with the v5p peak (bound; no TPU compile)"
    mesh = Mesh(np.array([device]), (DATA_AXIS,))
    abstract = nnx.eval_shape(lambda: Mimi(MimiJaxConfig()))
    graphdef, params = nnx.split(abstract)

    def on(spec):
        return lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec))

    params = jax.tree.map(on(P()), params)
    samples = round(seconds * 12.5) * 1920
    audio = on(P(DATA_AXIS, None))(jax.ShapeDtypeStruct((batch, samples), np.float32))
    state = jax.eval_shape(lambda: abstract.initial_state(batch))
    state = jax.tree.map(lambda x: on(P(DATA_AXIS) if x.ndim else P())(x), state)
    start = time.perf_counter()
    with jax.default_matmul_precision(precision):
        compiled = _encode.lower(graphdef, params, audio, state, NUM_CODEBOOKS).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    memory = compiled.memory_analysis()
    flops, bytes_accessed = float(cost["flops"]), float(cost.get("bytes accessed", 0.0))
    seconds_per_call = max(flops / V5P_PEAK_FLOPS, bytes_accessed / V5P_HBM_BYTES_PER_S)
    audio_hours_per_chip_hour = batch * seconds / seconds_per_call
    result = {
        "target": target,
        "matmul_precision": precision,
        "batch": batch,
        "seconds_per_item": seconds,
        "compile_seconds": compile_s,
        "flops_per_call": flops,
        "flops_per_audio_second": flops / (batch * seconds),
        "bytes_accessed_per_call": bytes_accessed,
        "roofline_seconds_per_call": seconds_per_call,
        "bound_by": "flops" if flops / V5P_PEAK_FLOPS >= bytes_accessed / V5P_HBM_BYTES_PER_S else "memory",
        "roofline_audio_hours_per_chip_hour": audio_hours_per_chip_hour,
        "roofline_chip_hours_for_1.4M_hours": SODA_HOURS / audio_hours_per_chip_hour,
        "v5p_peak_flops": V5P_PEAK_FLOPS,
        "v5p_hbm_bytes_per_s": V5P_HBM_BYTES_PER_S,
    }
    if memory is not None:
        for key in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"):
            result[key] = int(getattr(memory, key, 0))
    print(
        f"tpu [{target}] batch {batch} x {seconds:.0f} s: {flops / 1e12:.2f} TFLOP/call "
        f"({flops / (batch * seconds) / 1e9:.2f} GFLOP per audio-s), {bytes_accessed / 1e9:.1f} GB accessed, "
        f"temp {result.get('temp_size_in_bytes', 0) / 2**30:.1f} GiB; roofline "
        f"{audio_hours_per_chip_hour:,.0f} audio-h per chip-h ({result['bound_by']}-bound), "
        f"{result['roofline_chip_hours_for_1.4M_hours']:,.0f} chip-h for 1.4M h"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="overhead,backends,demo,tpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=2, help="utterances per batch for the backend comparison")
    parser.add_argument("--tpu-batch", type=int, default=32)
    parser.add_argument("--tpu-seconds", type=float, default=30.0)
    parser.add_argument("--tpu-precision", default=DEFAULT_MATMUL_PRECISION, choices=MATMUL_PRECISIONS)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    load = Load()

    from transformers import MimiConfig

    # Parts run separately update one results file (each part records its own figures); the commit, machine
    # and load are this run's.
    results: dict = previous_report(NAME) or {}
    for legacy in ("load_average_before", "load_average_after"):  # a file written before result_files.Load
        results.pop(legacy, None)
    results.update({"device": "cpu", "torch_threads": torch.get_num_threads(), "repeats": args.repeats})
    codec = MimiCodec.random(MimiConfig(), seed=0)
    results["params"] = sum(p.numel() for p in codec.model.parameters())
    if "overhead" in parts:
        results.update(overhead(codec, args.seconds, args.repeats))
    if "backends" in parts:
        results["backends"] = backends(codec, args.seconds, args.batch, args.repeats)
    if "demo" in parts:
        results["demo_tiny_codec"] = demo(args.repeats)
    if "tpu" in parts:
        results["tpu_encode_estimate"] = tpu(args.tpu_batch, args.tpu_seconds, args.tpu_precision)
    results["parts_run"] = sorted(parts)
    print(load.finish().banner())
    print(f"wrote {write_results(NAME, results, load)}")


if __name__ == "__main__":
    main()
