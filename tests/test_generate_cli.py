"""End to end: a tiny model trained for a few steps answers ``soda generate tts`` and ``asr``; its
``hf/`` export generates what its checkpoint generates; bad input is named in the error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
from helpers_data import save_test_tokenizer
from helpers_training import (
    TRAIN_DOCUMENTS,
    VALIDATION_DOCUMENTS,
    synthetic_documents,
    tiny_config,
    write_split,
)

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.cli import main as soda
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.inference.generate import generate
from soda_jax.inference.loader import load_model
from soda_jax.inference.prompts import tts_prompt
from soda_jax.inference.sampling import SamplingParams
from soda_jax.training import OptimizerRecipe, ParallelismConfig, TrainRecipe
from soda_jax.training.train import train

CONTEXT = 128
MIMI = "random-tiny-seed0"
"""The seeded random tiny Mimi (`CodecConfig.weights` form): real Mimi shapes, 2048 codes per codebook."""
SAMPLES_PER_FRAME = 1920


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, AudioTextVocab]:
    """A TEST_TINY model trained 4 steps on synthetic documents over a vocabulary with Mimi's real
    2048 codes per codebook (so encoded speech fits), context 128."""
    root = tmp_path_factory.mktemp("generate")
    text = AudioTextVocab.from_pretrained(save_test_tokenizer(str(root / "tokenizer"))).text_tokenizer
    vocab = AudioTextVocab(text)
    cache = str(root / "cache")
    write_split(f"{cache}/train", synthetic_documents(vocab, TRAIN_DOCUMENTS, seed=0))
    write_split(f"{cache}/validation", synthetic_documents(vocab, VALIDATION_DOCUMENTS, seed=1))
    save_cache_vocab(vocab, cache)
    recipe = TrainRecipe(
        seq_len=CONTEXT,
        batch_size=8,
        num_train_steps=4,
        optimizer=OptimizerRecipe(learning_rate=1e-2, warmup=0.0, decay=0.2),
    )
    run = str(root / "run")
    train(tiny_config(cache, run, recipe=recipe))
    return run, vocab


@pytest.fixture(scope="module")
def run_dir(trained) -> str:
    return trained[0]


@pytest.fixture(scope="module")
def vocab(trained) -> AudioTextVocab:
    return trained[1]


def sine_wav(path, seconds: float) -> str:
    t = np.arange(int(seconds * 24_000)) / 24_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24_000)
    return str(path)


def test_generate_tts_writes_a_decodable_wav_of_whole_frames(run_dir, vocab, tmp_path, capsys):
    out = tmp_path / "out"
    rc = soda(
        [
            "generate",
            "tts",
            "--checkpoint",
            run_dir,
            "--out",
            str(out),
            "--text",
            "hello world",
            "--mimi",
            MIMI,
            "--max-new-tokens",
            "48",
            "--temperature",
            "1.0",
            "--seed",
            "3",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    record = json.loads((out / "tts.json").read_text())
    assert record["task"] == "tts" and record["seed"] == 3 and record["sampling"]["max_new_tokens"] == 48
    assert record["checkpoint"].startswith(os.path.join(run_dir, "checkpoints"))
    np.testing.assert_array_equal(record["prompt_ids"], tts_prompt(vocab, "hello world"))
    generated = np.array(record["generated_ids"])
    audio = generated[vocab.is_audio(generated)]
    assert record["frames"] == audio.size // 8 > 0  # frame-constrained: every whole frame decodes
    wave, rate = sf.read(record["output"])
    assert rate == 24_000 and wave.shape == (record["frames"] * SAMPLES_PER_FRAME,)
    assert record["output"] in capsys.readouterr().out


def test_generate_asr_writes_a_transcript(run_dir, vocab, tmp_path, capsys):
    speech = sine_wav(tmp_path / "speech.wav", 0.5)
    out = tmp_path / "out"
    rc = soda(
        [
            "generate",
            "asr",
            "--checkpoint",
            run_dir,
            "--out",
            str(out),
            "--audio",
            speech,
            "--mimi",
            MIMI,
            "--max-new-tokens",
            "24",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    record = json.loads((out / "asr.json").read_text())
    assert (out / "asr.txt").read_text() == record["text"] + "\n"
    assert record["inputs"] == {"audio": speech} and record["sampling"]["temperature"] == 0.5
    prompt = np.array(record["prompt_ids"])  # 0.5 s of speech = 7 frames = 56 audio ids
    assert prompt.shape == (60,) and vocab.is_audio(prompt[2:58]).all()
    assert list(prompt[[0, 1, 58, 59]]) == [vocab.bos_id, vocab.audio_start_id, vocab.audio_end_id, vocab.text_start_id]
    assert record["finish_reason"] in ("stop", "length")


def test_generate_asr_with_shots_builds_sodas_nshot_prompt(run_dir, vocab, tmp_path, capsys):
    shot = sine_wav(tmp_path / "shot.wav", 0.2)
    speech = sine_wav(tmp_path / "speech.wav", 0.3)
    out = tmp_path / "out"
    common = ["--checkpoint", run_dir, "--out", str(out), "--mimi", MIMI, "--max-new-tokens", "8"]
    rc = soda(["generate", "asr", *common, "--audio", speech, "--shot", shot, "hello world"])
    assert rc == 0, capsys.readouterr().err
    assert "asr_nshot.json" in capsys.readouterr().out
    record = json.loads((out / "asr_nshot.json").read_text())
    assert record["task"] == "asr_nshot" and record["inputs"]["shots"] == [[shot, "hello world"]]
    prompt = np.array(record["prompt_ids"])
    (shot_start,) = np.flatnonzero(prompt == vocab.text_start_id)[:1]
    np.testing.assert_array_equal(
        prompt[shot_start + 1 : shot_start + 1 + len(vocab.encode_text("hello world"))],
        vocab.encode_text("hello world"),
    )
    assert list(prompt[prompt == vocab.bos_id].shape) == [2]  # the shot's document, then the query's
    assert soda(["generate", "tts", *common, "--text", "hi", "--shot", shot, "hi"]) == 2
    assert "--shot is for asr" in capsys.readouterr().err


def test_hf_export_and_checkpoint_generate_the_same(run_dir):
    single = ParallelismConfig(data=1)
    from_checkpoint = load_model(run_dir, parallelism=single)
    from_hf = load_model(os.path.join(run_dir, "hf"), parallelism=single)
    assert from_checkpoint.source != from_hf.source and from_hf.source.endswith("/hf")
    assert from_checkpoint.vocab.describe() == from_hf.vocab.describe()
    vocab = from_checkpoint.vocab
    prompts = [tts_prompt(vocab, "hello world"), tts_prompt(vocab, "the lazy dog jumps")]
    params = [
        SamplingParams(temperature=0.0, max_new_tokens=16),
        SamplingParams(temperature=1.0, max_new_tokens=16, seed=5),
    ]
    for a, b in zip(generate(from_checkpoint, prompts, params), generate(from_hf, prompts, params)):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_bad_input_is_named(run_dir, tmp_path, capsys):
    def error(*args) -> str:
        assert soda(["generate", *args, "--checkpoint", run_dir, "--out", str(tmp_path / "out"), "--mimi", MIMI]) == 2
        return capsys.readouterr().err

    assert "tokenizes to nothing" in error("tts", "--text", " ")
    garbage = tmp_path / "broken.wav"
    garbage.write_bytes(b"not audio at all")
    assert str(garbage) in error("asr", "--audio", str(garbage))
    long_speech = sine_wav(tmp_path / "long.wav", 3.0)  # 38 frames = 304 audio ids > the 128-token context
    message = error("asr", "--audio", long_speech)
    assert long_speech in message and "context is 128" in message
    assert "needs --audio" in error("asr")
    assert "no such directory" in soda_error(
        ["generate", "tts", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--text", "hi"], capsys
    )


def soda_error(argv, capsys) -> str:
    assert soda(argv) == 2
    return capsys.readouterr().err
