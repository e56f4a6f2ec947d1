"""The ``tokenize_audio`` step: a speech corpus -> Mimi codes per utterance, as sharded parquet.

Output (docs/data-contracts.md, section 1)::

    {output_path}/codec.json              the codec's facts (sample rate, frame rate, codebooks ...)
    {output_path}/shards/{shard}.parquet  one per input shard, written atomically when it is done
    {output_path}/stats.json              hours, utterances, tokens, skipped by reason (+ examples)

Input shards are processed in parallel and the step resumes: a shard whose parquet exists is done
and is not read again. Each parquet carries its own shard statistics in its schema metadata, so
``stats.json`` is rebuilt from the parquet files alone. Where the shards run:

- CPU or GPU (the default): one Ray task per shard (when Ray is running), each reserving
  ``num_cpus_per_shard`` CPUs and ``num_gpus_per_shard`` GPUs; the torch codec moves to its GPU.
- A TPU slice (the step's ``Resources(tpu=...)``, `soda_jax.execution.tpu`): the step runs once on
  every host; each host's one process takes its `host_share` of the shards (shard ``i`` of the
  sorted listing on process ``i mod hosts``) and encodes them with the JAX Mimi over its local chips;
  then process 0 waits for the others and writes ``stats.json``. A host that dies makes the step
  start again on a fresh slice, resuming past the shards already written.

    python -m soda_jax.data.tokenize_audio --input_path DIR --output_path OUT --source yodas2
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.codec import (
    DEFAULT_BACKEND,
    CodecConfig,
    MimiCodec,
    backend_facts,
    batches_by_length,
    check_backend,
    check_precision,
    torch_device,
)
from soda_jax.audio.precision import DEFAULT_MATMUL_PRECISION
from soda_jax.contracts import CODEC_FILE, SHARDS_DIR, STATS_FILE
from soda_jax.data.skip_budget import DEFAULT_MAX_SKIP_FRACTION, enforce_skip_budget
from soda_jax.data.sources import SkipCounter, Utterance, get_source
from soda_jax.data.sources.utterance import OTHER_LANGUAGE
from soda_jax.execution.parallel import granted_gpu_ids, parallel_map
from soda_jax.execution.tpu import SliceHost, current_host, host_share, wait_for_peers

logger = logging.getLogger(__name__)

SHARD_STATS_KEY = b"soda_shard_stats"
"""Parquet schema-metadata key holding the shard's statistics (JSON)."""
SECONDS_PER_HOUR = 3600.0
DEFAULT_BATCH_SECONDS = 120.0
"""Padded audio per encoder batch on a CPU or GPU shard task."""
BUFFERED_BATCHES = 5
"""Audio read ahead, in batches: enough utterances of similar length to fill each batch."""
HOST_WAIT_S = 7 * 24 * 3600.0
"""On a TPU slice, how long a host that has finished its shards waits for the slowest host."""
CPU_JAX_ENV = {"JAX_PLATFORMS": "cpu"}
"""Environment of CPU shard tasks running the JAX codec: a task that lands on a TPU VM must not take
its chips (they belong to the one process of a TPU step)."""

SCHEMA = pa.schema(
    [
        ("recording_id", pa.string()),
        ("segment_id", pa.string()),
        ("segment_index", pa.int32()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("num_frames", pa.int32()),
        ("codes", pa.list_(pa.int16())),
    ]
)


@dataclass(frozen=True)
class TokenizeAudioConfig:
    """Configuration of the tokenize_audio step."""

    input_path: str
    """Root of the corpus (local path or fsspec URL), in the layout of ``source``."""
    output_path: str
    """Step output directory (codec.json, shards/, stats.json)."""
    source: str
    """Corpus reader: "yodas2" or "emilia" (see soda_jax.data.sources)."""
    languages: tuple[str, ...] = ()
    """Keep only these languages (empty: all)."""
    codec: CodecConfig = field(default_factory=CodecConfig)
    """Which Mimi encodes (pretrained weights or a seeded random one) and how many codebooks."""
    codec_backend: str = DEFAULT_BACKEND
    """Run Mimi with "torch" (transformers) or "jax" (flax, sharded over the host's devices): the same
    codes up to rare near-ties. `default_tokenize` versions it only when a backend is chosen, so
    outputs made before the option existed keep their paths."""
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    """Padded audio per encoder batch; utterances are grouped by similar length to fill it. A TPU
    host splits each batch over its chips: size it for them (`default_tokenize(batch_seconds=)`)."""
    buffer_seconds: float = BUFFERED_BATCHES * DEFAULT_BATCH_SECONDS
    """Audio read ahead and sorted into batches at a time (bounds a shard's memory)."""
    num_cpus_per_shard: float = 1
    """CPUs reserved for each shard's Ray task; also its torch thread count (at least 1)."""
    num_gpus_per_shard: float = 0
    """GPUs reserved for each shard's Ray task (a fraction shares one); the torch codec then runs on
    it (`soda_jax.audio.codec.torch_device`: a GPU that torch cannot use is an error)."""
    matmul_precision: str = DEFAULT_MATMUL_PRECISION
    """Float32 matmul/convolution precision on accelerators: "highest" (full float32, the codes a CPU
    gives), "high" or "default" (faster on TPU/GPU; codes may change). Versioned by `default_tokenize`
    and recorded in codec.json when not "highest"; a CPU computes float32 either way."""
    host_wait_s: float = HOST_WAIT_S
    """On a TPU slice: how long a host that has finished its share waits for the other hosts."""
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION
    """Fail the step when more than this share of records is skipped as bad (the language filter
    does not count), or when no utterance is kept; the error gives the counts by reason."""


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a shard of the source, with the step config (pickled to Ray workers)."""

    config: TokenizeAudioConfig
    shard: Any


def shard_path(output_path: str, shard_name: str) -> str:
    return fileio.join(output_path, SHARDS_DIR, f"{shard_name}.parquet")


@functools.lru_cache(maxsize=2)
def load_codec(
    config: CodecConfig,
    backend: str = DEFAULT_BACKEND,
    device: str = "cpu",
    matmul_precision: str = DEFAULT_MATMUL_PRECISION,
) -> MimiCodec:
    """One codec per process, config, backend, device and precision (Ray workers reuse it across shards)."""
    return MimiCodec.from_config(config, backend=backend, device=device, matmul_precision=matmul_precision)


def shard_device(config: TokenizeAudioConfig) -> str:
    """The torch codec's device in this process: a GPU when the shard asked for one and got it."""
    if config.codec_backend != "torch" or config.num_gpus_per_shard <= 0:
        return "cpu"
    return torch_device(config.num_gpus_per_shard, granted_gpu_ids(), torch.cuda.is_available())


def shard_codec(config: TokenizeAudioConfig) -> MimiCodec:
    return load_codec(config.codec, config.codec_backend, shard_device(config), config.matmul_precision)


def encode_utterances(codec: MimiCodec, utterances: list[Utterance], batch_seconds: float) -> list[np.ndarray]:
    """Codes ``[K, frames]`` for each utterance, in input order, batched by similar length."""
    lengths = [len(u.audio) for u in utterances]
    codes: list[np.ndarray | None] = [None] * len(utterances)
    for batch in batches_by_length(lengths, round(batch_seconds * codec.sample_rate)):
        for i, c in zip(batch, codec.encode([utterances[i].audio for i in batch])):
            codes[i] = c
    return codes  # type: ignore[return-value]


def buffered(utterances: Iterator[Utterance], max_samples: int) -> Iterator[list[Utterance]]:
    """Consecutive groups of utterances holding up to ``max_samples`` of audio (at least one each)."""
    group: list[Utterance] = []
    samples = 0
    for utterance in utterances:
        group.append(utterance)
        samples += len(utterance.audio)
        if samples >= max_samples:
            yield group
            group, samples = [], 0
    if group:
        yield group


def rows_table(rows: dict[str, list], codes: list[np.ndarray], stats: dict[str, Any]) -> pa.Table:
    """The shard's parquet table; codes flattened frame-major (f0c0 f0c1 .. f1c0 ..)."""
    flat = [c.T.reshape(-1) for c in codes]
    offsets = np.zeros(len(flat) + 1, dtype=np.int32)
    np.cumsum([len(f) for f in flat], out=offsets[1:])
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int16)
    columns = {name: pa.array(rows[name], type=SCHEMA.field(name).type) for name in SCHEMA.names if name != "codes"}
    columns["codes"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int16()))
    table = pa.table(columns, schema=SCHEMA)
    return table.replace_schema_metadata({SHARD_STATS_KEY: json.dumps(stats).encode()})


def tokenize_shard(task: ShardTask) -> dict[str, Any]:
    """Read, encode and write one shard atomically; returns its statistics."""
    config, shard = task.config, task.shard
    # Match torch's threads to the CPUs reserved: on a busy host, more threads than cores make
    # every small op wait at a thread barrier (measured 80x slower for the tiny Mimi on 2 cores).
    torch.set_num_threads(max(1, int(config.num_cpus_per_shard)))
    source = get_source(config.source)
    codec = shard_codec(config)
    skips = SkipCounter(f"{config.source}/{shard.name}")
    rows: dict[str, list] = {name: [] for name in SCHEMA.names if name != "codes"}
    codes: list[np.ndarray] = []
    seconds = 0.0
    progress = tqdm(desc=shard.name, unit="utt", leave=False)
    utterances = source.read_shard(shard, skips)
    for group in buffered(utterances, round(config.buffer_seconds * codec.sample_rate)):
        for utterance, utterance_codes in zip(group, encode_utterances(codec, group, config.batch_seconds)):
            for name in rows:
                rows[name].append(getattr(utterance, name) if name != "num_frames" else utterance_codes.shape[1])
            codes.append(utterance_codes)
            seconds += len(utterance.audio) / codec.sample_rate
        progress.update(len(group))
    progress.close()
    frames = int(sum(rows["num_frames"]))
    stats = {
        "shard": shard.name,
        "utterances": len(codes),
        "recordings": len(set(rows["recording_id"])),
        "seconds": seconds,
        "frames": frames,
        "tokens": frames * codec.num_codebooks,
        "skipped": skips.to_dict(),
    }
    host = current_host()
    if host is not None:
        stats["process"] = host.process_id
    buffer = pa.BufferOutputStream()
    pq.write_table(rows_table(rows, codes, stats), buffer, compression="zstd")
    fileio.atomic_write_bytes(shard_path(config.output_path, shard.name), buffer.getvalue().to_pybytes())
    logger.info(
        "%s: %d utterances, %.1f s of audio, %d tokens, %d skipped",
        shard.name,
        stats["utterances"],
        seconds,
        stats["tokens"],
        skips.total,
    )
    return stats


def read_shard_stats(path: str) -> dict[str, Any]:
    """The statistics a finished shard's parquet carries in its metadata."""
    fs, local = fileio.filesystem(path)
    with fs.open(local, "rb") as f:
        metadata = pq.read_schema(f).metadata or {}
    if SHARD_STATS_KEY not in metadata:
        raise ValueError(f"{path}: parquet has no {SHARD_STATS_KEY.decode()} metadata (not written by tokenize_audio?)")
    return json.loads(metadata[SHARD_STATS_KEY])


def codec_facts(config: TokenizeAudioConfig) -> dict[str, Any]:
    """What codec.json records for the step's codec, read off its torch model on CPU: the step's own
    process never touches an accelerator (on a TPU VM the chips belong to the one process of a TPU step)."""
    return load_codec(config.codec, "torch").describe() | backend_facts(config.codec_backend, config.matmul_precision)


def write_codec_facts(config: TokenizeAudioConfig, *, write: bool = True) -> None:
    """Write codec.json (only check it with ``write=False``), or check that a previous (resumed) run
    used the same codec."""
    path = fileio.join(config.output_path, CODEC_FILE)
    facts = codec_facts(config)
    previous = fileio.read_json_or_none(path)
    if previous is not None and previous != facts:
        raise ValueError(f"{path}: output was written with codec {previous}, this run uses {facts}")
    if write:
        fileio.atomic_write_json(path, facts)


def shards_by_process(shard_stats: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Process id -> the shards it wrote, as their parquet metadata records (steps on a TPU slice)."""
    by_process: dict[str, list[str]] = {}
    for s in shard_stats:
        by_process.setdefault(str(s.get("process", "?")), []).append(s["shard"])
    return dict(sorted(by_process.items()))


def summarize(shard_stats: list[dict[str, Any]], done_now: list[str], done_before: list[str]) -> dict[str, Any]:
    skips = SkipCounter()
    for s in shard_stats:
        skips.merge(s["skipped"])
    seconds = sum(s["seconds"] for s in shard_stats)
    return {
        "shards": len(shard_stats),
        "shards_processed": done_now,
        "shards_already_done": done_before,
        "recordings": sum(s["recordings"] for s in shard_stats),
        "utterances": sum(s["utterances"] for s in shard_stats),
        "hours": seconds / SECONDS_PER_HOUR,
        "seconds": seconds,
        "frames": sum(s["frames"] for s in shard_stats),
        "tokens": sum(s["tokens"] for s in shard_stats),
        "skipped": skips.to_dict(),
    }


def shard_env(config: TokenizeAudioConfig) -> dict[str, str] | None:
    """Environment of the CPU/GPU path's shard tasks (`CPU_JAX_ENV` for the JAX codec on CPU)."""
    return CPU_JAX_ENV if config.codec_backend == "jax" and config.num_gpus_per_shard <= 0 else None


def tokenize_on_host(config: TokenizeAudioConfig, shards: Sequence[Any], done: set[str], host: SliceHost) -> list[str]:
    """This host's share of ``shards`` (all of them, in listing order, as on every host), encoded here
    over the local devices; returns the names it tokenized."""
    mine = [s for s in host_share(shards, host) if s.name not in done]
    logger.info("process %d of %d: %d shards to tokenize", host.process_id, host.num_processes, len(mine))
    for shard in tqdm(mine, desc=f"tokenize {config.source} (process {host.process_id})", unit="shard"):
        tokenize_shard(ShardTask(config, shard))
    return [s.name for s in mine]


def tokenize_audio(config: TokenizeAudioConfig) -> dict[str, Any]:
    """Run the step (resuming past finished shards); returns what it writes to stats.json (on a TPU
    slice: process 0 does; another host returns the shards it tokenized)."""
    source = get_source(config.source)
    shards = source.list_shards(config.input_path, config.languages)
    if not shards:
        raise ValueError(f"{config.input_path}: no {config.source} shards found (languages={config.languages})")
    check_backend(config.codec_backend)
    check_precision(config.matmul_precision)
    host = current_host()
    # On a slice every host checks codec.json (none may write codes of another codec); one writes it.
    write_codec_facts(config, write=host is None or host.process_id == 0)
    done = {s.name for s in shards if fileio.exists(shard_path(config.output_path, s.name))}
    todo = [s for s in shards if s.name not in done]
    logger.info("%s: %d shards, %d already done, %d to tokenize", config.source, len(shards), len(done), len(todo))
    processed: list[str] = []
    if host is None:
        parallel_map(
            tokenize_shard,
            [ShardTask(config, s) for s in todo],
            num_cpus=config.num_cpus_per_shard,
            num_gpus=config.num_gpus_per_shard,
            env=shard_env(config),
            desc=f"tokenize {config.source}",
        )
    else:
        wait_for_peers("tokenize_audio: shards listed", config.host_wait_s)  # one view of what was done
        processed = tokenize_on_host(config, shards, done, host)
        wait_for_peers("tokenize_audio: shards written", config.host_wait_s)
        if host.process_id != 0:
            return {"process": host.process_id, "shards_processed_here": processed}
    shard_stats = [read_shard_stats(shard_path(config.output_path, s.name)) for s in shards]
    stats = summarize(shard_stats, [s.name for s in todo], sorted(done))
    stats["codec"] = asdict(config.codec)
    stats["codec_backend"] = config.codec_backend
    if host is not None:
        stats["shards_by_process"] = shards_by_process(shard_stats)
    fileio.atomic_write_json(fileio.join(config.output_path, STATS_FILE), stats)
    logger.info(
        "tokenize_audio: %.2f h, %d utterances, %d tokens, skipped %s",
        stats["hours"],
        stats["utterances"],
        stats["tokens"],
        stats["skipped"]["counts"],
    )
    enforce_skip_budget(
        f"tokenize_audio {config.output_path}",
        stats["utterances"],
        stats["skipped"]["counts"],
        config.max_skip_fraction,
        not_bad={OTHER_LANGUAGE},
    )
    return stats if host is None else stats | {"process": host.process_id, "shards_processed_here": processed}


def main() -> None:
    import draccus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tokenize_audio(draccus.parse(TokenizeAudioConfig))


if __name__ == "__main__":
    main()
