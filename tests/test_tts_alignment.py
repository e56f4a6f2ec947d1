"""The ``tts_alignment`` pair task on a real tiny model: speech scored after its own transcript
against after another transcript of as many words (`soda_jax.eval.pairs`, modality ``alignment``).

The model is trained on text-first documents ``<bos> <|text_start|> T <|text_end|> <|audio_start|> A
<|audio_end|> <eos>`` of four two-word phrases read by flite, A their codes from the demo's seeded
random tiny Mimi. On a LibriSpeech-layout split of the same recordings it aligns every item; on a split
whose transcripts are shifted by one (each recording labelled with the previous one's text) every
item's "other" transcript is the true one, and the task must fail (accuracy 0)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers_data import save_test_tokenizer
from helpers_eval import eval_train_config
from helpers_training import write_split

from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.audio.codec import CodecConfig, MimiCodec
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.synth import FLITE_VOICES, synthesize
from soda_jax.eval.heldout import Excerpt, write_librispeech
from soda_jax.eval.pairs import NO_OTHER_TRANSCRIPT, other_transcript, tts_alignment
from soda_jax.eval.step import EvalConfig, run_eval
from soda_jax.training.train import train

CODEC = CodecConfig(pretrained=None, random_size="tiny", seed=0)
PHRASES = ("red lamp", "blue door", "green fan", "white screen")
"""Two words each: every item's other transcript has as many words."""
REPEATS = 24
SEQ_LEN = 256
"""Room for a phrase and its ~1 s of 8-codebook audio (~110 tokens), whole, in one sequence."""
STEPS = 40


@pytest.fixture(scope="module")
def recordings():
    return [synthesize(p, FLITE_VOICES[0]) for p in PHRASES]


@pytest.fixture(scope="module")
def aligned_model(tmp_path_factory, recordings) -> str:
    root = tmp_path_factory.mktemp("alignment")
    vocab = AudioTextVocab.from_pretrained(save_test_tokenizer(str(root / "tokenizer")))
    codes = MimiCodec.from_config(CODEC).encode(recordings)
    docs = [
        np.asarray(
            [
                vocab.bos_id,
                vocab.text_start_id,
                *vocab.encode_text(phrase),
                vocab.text_end_id,
                vocab.audio_start_id,
                *vocab.codes_to_ids(c),
                vocab.audio_end_id,
                vocab.eos_id,
            ],
            np.int32,
        )
        for phrase, c in zip(PHRASES, codes)
    ]
    write_split(str(root / "cache" / "train"), docs * REPEATS)
    write_split(str(root / "cache" / "validation"), docs)
    save_cache_vocab(vocab, str(root / "cache"))
    recipe = dataclasses.replace(eval_train_config("", "").recipe, seq_len=SEQ_LEN, num_train_steps=STEPS)
    summary = train(eval_train_config(str(root / "cache"), str(root / "run"), steps=STEPS, recipe=recipe))
    assert summary["final_train_loss"] < 1.0, "the fixture model must have memorised its documents"
    return str(root / "run")


def write_split_of(root, split: str, recordings, texts) -> str:
    excerpts = [
        Excerpt(f"r{i}", f"r{i}", "flite-kal16", tuple(t.split()), 0.0, len(w) / MIMI_SAMPLE_RATE, w)
        for i, (w, t) in enumerate(zip(recordings, texts))
    ]
    write_librispeech(str(root), split, excerpts, {"flite-kal16": 100})
    return f"{root}/{split}"


def test_other_transcript_has_as_many_words_and_another_text():
    texts = ["a b", "a b", "c", "d e", "f"]
    assert other_transcript(texts, 0) == 3  # the next two-word text that differs (1 is the same text)
    assert other_transcript(texts, 2) == 4
    assert other_transcript(["a b", "c"], 0) is None


def test_alignment_scores_own_transcript_and_fails_on_shifted_pairs(aligned_model, recordings, tmp_path):
    sets = tmp_path / "librispeech"
    true = write_split_of(sets, "test-clean", recordings, PHRASES)
    shifted = write_split_of(
        sets, "test-other", recordings, PHRASES[-1:] + PHRASES[:-1]
    )  # recording i labelled with text i-1
    lonely = write_split_of(sets, "dev-clean", recordings[:2], ("red lamp", "blue"))  # no other text of as many words
    tasks = (
        tts_alignment(true),
        dataclasses.replace(tts_alignment(shifted), name="shifted"),
        dataclasses.replace(tts_alignment(lonely), name="lonely"),
    )
    results = run_eval(
        EvalConfig(model_path=aligned_model, output_path=str(tmp_path / "eval"), tasks=tasks, codec=CODEC, batch_size=8)
    )
    assert results["tasks"]["tts_alignment"]["items"] == len(PHRASES)
    assert results["metrics"]["tts_alignment/accuracy"] == 1.0, results["tasks"]["tts_alignment"]
    # shifted pairing: the "other" transcript of each recording is its true one -> every item wrong
    assert results["metrics"]["shifted/accuracy"] == 0.0, results["tasks"]["shifted"]
    assert results["tasks"]["lonely"]["skipped"] == {NO_OTHER_TRANSCRIPT: 2}, results["tasks"]["lonely"]
