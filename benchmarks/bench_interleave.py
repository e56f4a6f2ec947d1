"""Interleave + pack throughput on one core, against a bare numpy concatenation of the same arrays.

    .venv/bin/python benchmarks/bench_interleave.py [--recordings 1000] [--repeats 3]

Synthetic shard in memory: recordings of 10 segments, each ~10 s of Mimi audio (125 frames x 8
codebooks = 1,000 codes) and ~30 text ids. Measured in the same run:

* floor: per recording, ``np.concatenate`` of its segments' text ids and (already converted)
  int32 audio ids: the copy every interleaver must do at least (also reported: the same with
  the raw int16 codes, which numpy upcasts while copying);
* ours: as the interleave step does it, chunks of recordings (`recording_chunks`) go from raw
  int16 codes to text_first documents in one call each (`interleave_segments`), back to back
  into one stream, then `pack_windows` cuts 4,096-token windows with boundary loss masks.

Prints tokens/s and the ratio ours/floor (goal: < 3x and > 20M tokens/s) and writes
benchmarks/results/bench_interleave.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from result_files import Load, write_results

from soda_jax.audio.vocab import LLAMA3_TEXT_SIZE, SPECIAL_TOKENS
from soda_jax.data.interleave import Markers, audio_ids, get_pattern, interleave_segments, recording_chunks
from soda_jax.data.packing import pack_windows
from soda_jax.training.recipe import SODA_SEQ_LEN

NUM_CODEBOOKS = 8
CODEBOOK_SIZE = 2048
SEGMENTS_PER_RECORDING = 10
FRAMES_PER_SEGMENT = 125
"""10 s at Mimi's 12.5 Hz."""
TEXT_IDS_PER_SEGMENT = 30
SEQ_LEN = SODA_SEQ_LEN


class BenchVocab:
    """The vocabulary facts the interleaver reads, with Llama-3 / SODA ids (no tokenizer needed)."""

    text_size = LLAMA3_TEXT_SIZE
    text_start_id, text_end_id, audio_start_id, audio_end_id = (
        LLAMA3_TEXT_SIZE + i for i in range(len(SPECIAL_TOKENS))
    )
    audio_offset = LLAMA3_TEXT_SIZE + len(SPECIAL_TOKENS)
    codebook_size = CODEBOOK_SIZE
    bos_id, eos_id = 128_000, 128_001


def make_shard(rng: np.random.Generator, recordings: int):
    segments = recordings * SEGMENTS_PER_RECORDING
    codes = rng.integers(0, CODEBOOK_SIZE, size=segments * FRAMES_PER_SEGMENT * NUM_CODEBOOKS, dtype=np.int16)
    texts = [rng.integers(0, 128_000, size=TEXT_IDS_PER_SEGMENT, dtype=np.int32) for _ in range(segments)]
    return codes, texts


def run_ours(codes, texts, recordings: int, vocab, markers, pattern):
    """As the interleave step: chunks of recordings, each converted to ids and built at once (here
    back to back into one stream, where the step writes each chunk to its cache); then windows + masks."""
    per_recording = SEGMENTS_PER_RECORDING * FRAMES_PER_SEGMENT * NUM_CODEBOOKS
    stream = np.empty(recordings * (per_recording + SEGMENTS_PER_RECORDING * (TEXT_IDS_PER_SEGMENT + 4) + 2), np.int32)
    position = 0
    for chunk in recording_chunks([per_recording] * recordings):
        first, last = chunk.start * SEGMENTS_PER_RECORDING, chunk.stop * SEGMENTS_PER_RECORDING
        documents = interleave_segments(
            pattern,
            codes[chunk.start * per_recording : chunk.stop * per_recording],
            np.full(last - first, FRAMES_PER_SEGMENT * NUM_CODEBOOKS),
            NUM_CODEBOOKS,
            markers,
            texts=texts[first:last],
            segments_per_document=np.full(len(chunk), SEGMENTS_PER_RECORDING),
            out=stream[position:],
        )
        position += len(documents.tokens)
    windows, mask = pack_windows(stream[:position], SEQ_LEN, vocab.eos_id)
    return position, windows, mask


def run_floor(pieces_of, texts, recordings: int):
    """Per recording, one np.concatenate of its segments' text arrays and audio arrays."""
    total = 0
    for r in range(recordings):
        first = r * SEGMENTS_PER_RECORDING
        pieces = []
        for i in range(first, first + SEGMENTS_PER_RECORDING):
            pieces += [texts[i], pieces_of(i)]
        total += np.concatenate(pieces).shape[0]
    return total


def best_of(repeats: int, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = Load()

    vocab = BenchVocab()
    markers = Markers.from_vocab(vocab)
    pattern = get_pattern("text_first")
    codes, texts = make_shard(np.random.default_rng(0), args.recordings)
    converted = audio_ids(codes, NUM_CODEBOOKS, vocab)
    per_segment = FRAMES_PER_SEGMENT * NUM_CODEBOOKS

    def converted_audio(i):
        return converted[i * per_segment : (i + 1) * per_segment]

    def raw_audio(i):
        return codes[i * per_segment : (i + 1) * per_segment]

    floor_s, floor_tokens = best_of(args.repeats, lambda: run_floor(converted_audio, texts, args.recordings))
    raw_floor_s, _ = best_of(args.repeats, lambda: run_floor(raw_audio, texts, args.recordings))
    ours_s, (tokens, packed, _) = best_of(
        args.repeats, lambda: run_ours(codes, texts, args.recordings, vocab, markers, pattern)
    )
    result = {
        "recordings": args.recordings,
        "document_tokens": tokens,
        "floor_tokens": floor_tokens,
        "packed_windows": int(packed.shape[0]),
        "floor_seconds": floor_s,
        "raw_floor_seconds": raw_floor_s,
        "ours_seconds": ours_s,
        "floor_tokens_per_s": floor_tokens / floor_s,
        "ours_tokens_per_s": tokens / ours_s,
        "ratio_ours_over_floor": ours_s / floor_s,
        "ratio_ours_over_raw_floor": ours_s / raw_floor_s,
        "floors": {
            "floor": "np.concatenate of int32 text ids and already-converted int32 audio ids",
            "raw_floor": "np.concatenate of int32 text ids and the raw int16 codes (numpy upcasts)",
        },
        "goal": {"max_ratio": 3.0, "min_tokens_per_s": 20e6},
        "numpy": np.__version__,
    }
    result["meets_goal"] = result["ratio_ours_over_floor"] < 3.0 and result["ours_tokens_per_s"] > 20e6
    print(
        f"floor {result['floor_tokens_per_s'] / 1e6:.1f}M tok/s "
        f"| interleave+pack {result['ours_tokens_per_s'] / 1e6:.1f}M tok/s "
        f"| ratio {result['ratio_ours_over_floor']:.2f}x "
        f"(vs raw-codes floor {result['ratio_ours_over_raw_floor']:.2f}x) "
        f"| goal met: {result['meets_goal']}"
    )
    print(load.finish().banner())
    print(f"wrote {write_results('bench_interleave', result, load)}")


if __name__ == "__main__":
    main()
