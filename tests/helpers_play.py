"""A prefix for the playground tests: a tiny model trained by the executor (so the dashboard finds it
as a training output and `load_model` finds its vocabulary and codec through the recorded cache), a
LibriSpeech-layout shot set written by a second step, and audio clips to upload. Built once per
session and shared by tests/test_play.py and tests/test_play_browser.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from helpers_data import save_test_tokenizer
from helpers_training import (
    TRAIN_DOCUMENTS,
    VALIDATION_DOCUMENTS,
    synthetic_documents,
    tiny_config,
    write_split,
)

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.execution import Executor, ExecutorStep, this_output_path
from soda_jax.training import OptimizerRecipe, TrainRecipe

CONTEXT = 128
"""The model's context: a 3 s clip (38 frames, 304 audio ids) does not fit."""
MIMI = "random-tiny-seed0"
"""The seeded random tiny Mimi: real Mimi shapes, 2048 codes per codebook."""
TRAIN_STEPS = 2
SHOT_TRANSCRIPTS = {"1-10-0000": "HELLO THERE", "1-10-0001": "GOOD MORNING", "1-10-0002": "SEE YOU"}
SHOT_SECONDS = 0.2
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class ShotSetConfig:
    output_path: str
    """Where ``librispeech/dev-clean/1/10/`` goes."""


def write_shot_set(config: ShotSetConfig) -> None:
    """A LibriSpeech-layout dev-clean split of three short tones with transcripts (the layout
    `soda_jax.eval.readers.read_librispeech` reads)."""
    directory = os.path.join(config.output_path, "librispeech", "dev-clean", "1", "10")
    os.makedirs(directory, exist_ok=True)
    for i, item in enumerate(SHOT_TRANSCRIPTS):
        sf.write(os.path.join(directory, f"{item}.flac"), tone(SHOT_SECONDS, 300 + 100 * i, SAMPLE_RATE), SAMPLE_RATE)
    lines = "".join(f"{item} {text}\n" for item, text in SHOT_TRANSCRIPTS.items())
    fileio.atomic_write_text(os.path.join(directory, "1-10.trans.txt"), lines)


def tone(seconds: float, hz: float, rate: int = 24_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@dataclass(frozen=True)
class PlayPrefix:
    prefix: str
    model_rel: str
    """The training output, relative to the prefix (what the page offers)."""
    shot_set_rel: str
    clips: dict[str, str]
    """name -> path of files to upload: ``short`` (0.4 s WAV), ``flac`` (0.3 s), ``long`` (3 s WAV),
    ``text`` (not audio), ``empty`` (0 bytes), ``silent_header`` (a WAV with no samples)."""


def write_clips(directory: str) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    clips = {
        name: os.path.join(directory, file)
        for name, file in [
            ("short", "short.wav"),
            ("flac", "voice.flac"),
            ("long", "long.wav"),
            ("text", "notes.wav"),
            ("empty", "empty.wav"),
            ("silent_header", "nothing.wav"),
        ]
    }
    sf.write(clips["short"], tone(0.4, 220), 24_000)
    sf.write(clips["flac"], tone(0.3, 330, 48_000), 48_000)
    sf.write(clips["long"], tone(3.0, 220), 24_000)
    with open(clips["text"], "w") as f:
        f.write("these are notes, not audio\n")
    open(clips["empty"], "wb").close()
    sf.write(clips["silent_header"], np.zeros(0, np.float32), 24_000)
    return clips


def build_play_prefix(root: str) -> PlayPrefix:
    """Train the tiny model and write the shot set under ``{root}/prefix`` (in-process executor)."""
    from soda_jax.audio.codec import CodecConfig, MimiCodec
    from soda_jax.training.train import train

    text = AudioTextVocab.from_pretrained(save_test_tokenizer(os.path.join(root, "tokenizer"))).text_tokenizer
    vocab = AudioTextVocab(text)  # Mimi's 2048 codes per codebook, so encoded uploads fit
    cache = os.path.join(root, "cache")
    write_split(f"{cache}/train", synthetic_documents(vocab, TRAIN_DOCUMENTS, seed=0))
    write_split(f"{cache}/validation", synthetic_documents(vocab, VALIDATION_DOCUMENTS, seed=1))
    save_cache_vocab(vocab, cache)
    # What an interleave step records (docs/data-contracts.md): the codec that made the documents.
    codec = MimiCodec.from_config(CodecConfig(random_size="tiny", seed=0)).describe()
    assert codec["weights"] == MIMI
    fileio.atomic_write_json(
        os.path.join(cache, "stats.json"), {"layout": {"num_codebooks": {"speech": 8}, "codec": codec}}
    )

    recipe = TrainRecipe(
        seq_len=CONTEXT,
        batch_size=8,
        num_train_steps=TRAIN_STEPS,
        optimizer=OptimizerRecipe(learning_rate=1e-2, warmup=0.0, decay=0.2),
    )
    config = tiny_config(cache, this_output_path(), recipe=recipe, compilation_cache_dir=os.path.join(root, "jax"))
    training = ExecutorStep("checkpoints/play-tiny", train, config)
    shots = ExecutorStep("eval/play-shots", write_shot_set, ShotSetConfig(this_output_path()))
    prefix = os.path.join(root, "prefix")
    executor = Executor(prefix, use_ray=False)
    executor.run([training, shots], description="playground test models")
    rel = {s.name: os.path.relpath(executor.output_path(s), prefix) for s in (training, shots)}
    return PlayPrefix(
        prefix, rel[training.name], f"{rel[shots.name]}/librispeech/dev-clean", write_clips(os.path.join(root, "clips"))
    )


_built: dict[str, PlayPrefix] = {}


def shared_play_prefix(tmp_path_factory) -> PlayPrefix:
    """The prefix, built once per test session (training compiles for a while)."""
    base = str(tmp_path_factory.getbasetemp())
    if base not in _built:
        _built[base] = build_play_prefix(str(tmp_path_factory.mktemp("play")))
    return _built[base]
