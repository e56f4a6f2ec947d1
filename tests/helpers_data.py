"""Fixtures for the data tests: a small real BPE vocabulary and section-1 shards written with pyarrow."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from soda_jax import fileio
from soda_jax.audio.text_tokenizers import train_bpe
from soda_jax.audio.vocab import CODEBOOK_SIZE, MIMI_CODEBOOKS, AudioTextVocab

FRAME_RATE = 12.5
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a test of the speech model",
    "a long recording becomes one document",
    "speaker zero and speaker one take turns",
] * 20


def save_test_tokenizer(directory: str) -> str:
    """Train a small byte-level BPE and save it where `AudioTextVocab.from_pretrained` can load it."""
    train_bpe(CORPUS, vocab_size=300).save_pretrained(directory)
    return directory


@dataclass
class Segment:
    recording_id: str
    index: int
    text: str
    speaker: str
    codes: np.ndarray
    """[K, frames] raw codes."""


def random_recording(
    rng: np.random.Generator, recording_id: str, num_segments: int, *, max_frames: int = 6
) -> list[Segment]:
    words = " ".join(CORPUS[:4]).split()
    out = []
    for i in range(num_segments):
        frames = int(rng.integers(1, max_frames + 1))
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 6))))
        out.append(
            Segment(
                recording_id,
                i,
                text,
                f"spk{int(rng.integers(0, 2))}",
                rng.integers(0, CODEBOOK_SIZE, size=(MIMI_CODEBOOKS, frames)).astype(np.int16),
            )
        )
    return out


def write_tokenized_utterances(root: str, shards: dict[str, list[Segment]]) -> str:
    """Write a section-1 directory: codec.json + shards/{name}.parquet; returns ``root``."""
    fileio.atomic_write_json(
        fileio.join(root, "codec.json"),
        {
            "codec": "mimi",
            "sample_rate": 24000,
            "frame_rate": FRAME_RATE,
            "num_codebooks": MIMI_CODEBOOKS,
            "codebook_size": CODEBOOK_SIZE,
        },
    )
    os.makedirs(os.path.join(root, "shards"), exist_ok=True)
    for name, segments in shards.items():
        table = pa.table(
            {
                "recording_id": pa.array([s.recording_id for s in segments], pa.string()),
                "segment_id": pa.array([f"{s.recording_id}-{s.index:05d}" for s in segments], pa.string()),
                "segment_index": pa.array([s.index for s in segments], pa.int32()),
                "start": pa.array([float(s.index) for s in segments], pa.float64()),
                "end": pa.array([s.index + s.codes.shape[1] / FRAME_RATE for s in segments], pa.float64()),
                "text": pa.array([s.text for s in segments], pa.string()),
                "language": pa.array(["en"] * len(segments), pa.string()),
                "speaker": pa.array([s.speaker for s in segments], pa.string()),
                "num_frames": pa.array([s.codes.shape[1] for s in segments], pa.int32()),
                "codes": pa.array([s.codes.T.reshape(-1) for s in segments], pa.list_(pa.int16())),
            }
        )
        pq.write_table(table, os.path.join(root, "shards", f"{name}.parquet"))
    return root


def load_vocab(tokenizer_dir: str) -> AudioTextVocab:
    return AudioTextVocab.from_pretrained(tokenizer_dir)
