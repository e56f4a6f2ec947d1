"""SODA's prompt formats on the test vocabulary, as golden id arrays written by hand.

Test vocabulary (tests/helpers_inference.py): <pad> 0, <bos> 1, <eos> 2, 300 text ids, then
<|text_start|> 300, <|text_end|> 301, <|audio_start|> 302, <|audio_end|> 303, audio from 304
(codebook k, code c -> 304 + 16 k + c). Text ids come from the tokenizer (not ours to test).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_inference import make_vocab

from soda_jax.inference import prompts
from soda_jax.inference.sampling import SamplingParams

BOS, EOS, TS, TE, AS, AE = 1, 2, 300, 301, 302, 303
A = np.array([304, 320, 336, 352, 368, 384, 400, 416, 305, 321, 337, 353, 369, 385, 401, 417], np.int32)
"""Two 8-codebook frames: codes (0, 0, ...) then (1, 1, ...)."""
B = np.array([306, 322, 338, 354, 370, 386, 402, 418], np.int32)
"""One frame of code 2 in every codebook."""


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    vocab = make_vocab(str(tmp_path_factory.mktemp("vocab")))
    assert (vocab.bos_id, vocab.eos_id, *vocab.special_ids, vocab.audio_offset) == (BOS, EOS, TS, TE, AS, AE, 304)
    return vocab


def golden(*parts) -> np.ndarray:
    return np.concatenate([np.atleast_1d(np.asarray(p, np.int32)) for p in parts])


def test_continuation(vocab):
    np.testing.assert_array_equal(prompts.continuation_prompt(vocab, A), golden(BOS, AS, A))


def test_tts(vocab):
    T = vocab.encode_text("hello world")
    np.testing.assert_array_equal(prompts.tts_prompt(vocab, "hello world"), golden(BOS, TS, T, TE, AS))


def test_voice_tts(vocab):
    R, T = vocab.encode_text("the lazy dog"), vocab.encode_text("hello world")
    got = prompts.voice_tts_prompt(vocab, "the lazy dog", A, "hello world")
    np.testing.assert_array_equal(got, golden(BOS, TS, R, TE, AS, A, AE, TS, T, TE, AS))


def test_asr_zero_shot(vocab):
    np.testing.assert_array_equal(prompts.asr_prompt(vocab, A), golden(BOS, AS, A, AE, TS))


def test_asr_n_shot(vocab):
    T1, T2 = vocab.encode_text("hello world"), vocab.encode_text("the lazy dog")
    got = prompts.asr_nshot_prompt(vocab, [(A, "hello world"), (B, "the lazy dog")], B)
    expected = golden(BOS, AS, A, AE, TS, T1, TE, EOS, BOS, AS, B, AE, TS, T2, TE, EOS, BOS, AS, B, AE, TS)
    np.testing.assert_array_equal(got, expected)


def test_translation(vocab):
    shot = vocab.encode_text("Translation: hallo welt")
    opener = vocab.encode_text("Translation:")
    got = prompts.translation_prompt(vocab, [(A, "hallo welt")], B)
    np.testing.assert_array_equal(got, golden(BOS, AS, A, AE, TS, shot, TE, EOS, BOS, AS, B, AE, TS, opener))


def test_bad_inputs_are_named(vocab):
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        prompts.tts_prompt(vocab, "")
    with pytest.raises(ValueError, match="not an audio id"):
        prompts.asr_prompt(vocab, np.array([304, 40], np.int32))


def test_shots_are_per_item_and_seeded_unless_shared():
    per_item = [prompts.choose_shots(50, 3, item_index=i, seed=0) for i in range(5)]
    assert per_item == [prompts.choose_shots(50, 3, item_index=i, seed=0) for i in range(5)]
    assert len({tuple(s) for s in per_item}) > 1
    shared = {tuple(prompts.choose_shots(50, 3, item_index=i, seed=0, same_for_every_item=True)) for i in range(5)}
    assert len(shared) == 1


def test_task_defaults_resolve_to_sampling_params(vocab):
    tts = prompts.sampling_params("voice_tts", vocab)
    assert (tts.temperature, tts.top_p, tts.max_new_tokens, tts.stop_ids) == (0.9, 0.8, 1500, (AE, EOS))
    asr = prompts.sampling_params("asr", vocab, seed=4, max_new_tokens=20)
    assert asr == SamplingParams(temperature=0.5, top_p=0.8, max_new_tokens=20, stop_ids=(TE, EOS), seed=4)
    assert prompts.sampling_params("continuation", vocab).max_new_tokens == 1200
    with pytest.raises(ValueError, match="unknown task"):
        prompts.sampling_params("sing", vocab)
