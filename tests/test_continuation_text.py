"""SODA's continuation behaviour as an option: text between audio spans allowed, dropped at conversion.

``continuation_text="stop"`` (the default) ends a continuation at the model's first <|audio_end|>;
``"drop"`` (SODA's) lets it go on through text spans and more audio, and the audio conversion keeps
the audio spans' whole frames only. Tiny random TEST_TINY models on the 432-id test vocabulary.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_inference import make_vocab, random_model

from soda_jax.audio.codec import MimiCodec, tiny_mimi_config
from soda_jax.data.parse import AUDIO, TEXT, span_codes
from soda_jax.inference.generate import FINISH_STOP, generate
from soda_jax.inference.parse import generated_audio, generated_spans, generated_text_spans
from soda_jax.inference.prompts import (
    CONTINUATION_TEXT,
    DEFAULT_CONTINUATION_TEXT,
    TASK_DEFAULTS,
    continuation_prompt,
    sampling_params,
)
from soda_jax.inference.sampling import VocabLayout, allowed_mask, frame_state_of

NEW_TOKENS = 96
SEEDS = range(12)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return make_vocab(str(tmp_path_factory.mktemp("vocab")))


@pytest.fixture(scope="module")
def loaded(vocab):
    return random_model(vocab, seed=5)


def frames(vocab, n, start=0):
    """``n`` whole frames of audio ids, codes counting up from ``start``."""
    codes = (start + np.arange(8 * n).reshape(8, n)) % vocab.codebook_size
    return vocab.codes_to_ids(codes), codes


def test_the_option_picks_the_continuation_stop_markers(vocab):
    default = sampling_params("continuation", vocab)
    assert default.stop_ids == (vocab.audio_end_id, vocab.eos_id)
    assert TASK_DEFAULTS["continuation"].stop == CONTINUATION_TEXT[DEFAULT_CONTINUATION_TEXT]
    assert sampling_params("continuation", vocab, continuation_text="stop").stop_ids == default.stop_ids
    soda = sampling_params("continuation", vocab, continuation_text="drop", seed=4)
    assert soda.stop_ids == (vocab.eos_id,) and soda.seed == 4 and soda.max_new_tokens == default.max_new_tokens
    with pytest.raises(ValueError, match="choose from \\['drop', 'stop'\\]"):
        sampling_params("continuation", vocab, continuation_text="keep")
    with pytest.raises(ValueError, match="applies to the continuation task, not 'tts'"):
        sampling_params("tts", vocab, continuation_text="drop")


def test_the_frame_constraint_allows_sodas_layout_between_audio_spans(vocab):
    """Every token of ``<|audio_end|> <|text_start|> T <|text_end|> <|audio_start|> A2`` after an
    open audio span is allowed at its position; text inside the audio span, or a second
    <|audio_end|> outside any span, is not."""
    prompt = continuation_prompt(vocab, frames(vocab, 2)[0])
    text = vocab.encode_text("hello world")
    generated = np.concatenate(
        [
            frames(vocab, 1, 3)[0],
            [vocab.audio_end_id, vocab.text_start_id],
            text,
            [vocab.text_end_id, vocab.audio_start_id],
            frames(vocab, 2, 5)[0],
        ]
    ).astype(np.int32)
    layout = VocabLayout.of(vocab, 8)
    sequence = np.concatenate([prompt, generated])
    for i in range(prompt.size, sequence.size):
        span, slot = frame_state_of(sequence[:i], layout)
        allowed = np.asarray(allowed_mask(np.array([span]), np.array([slot]), np.array([True]), vocab.size, layout))[0]
        assert allowed[sequence[i]], f"position {i}: id {sequence[i]} refused after {sequence[i - 3 : i]}"
    span, slot = frame_state_of(prompt, layout)  # inside the prompt's audio span, at a frame boundary
    inside = np.asarray(allowed_mask(np.array([span]), np.array([slot]), np.array([True]), vocab.size, layout))[0]
    assert not inside[text].any() and inside[vocab.audio_end_id]
    outside = frame_state_of(np.concatenate([prompt, frames(vocab, 1)[0], [vocab.audio_end_id]]), layout)
    after_end = np.asarray(
        allowed_mask(np.array([outside[0]]), np.array([outside[1]]), np.array([True]), vocab.size, layout)
    )[0]
    assert after_end[vocab.text_start_id] and after_end[vocab.audio_start_id] and not after_end[vocab.audio_end_id]


def test_conversion_joins_the_audio_spans_and_drops_the_text(vocab):
    """A SODA continuation written out by hand: one more frame, a transcript, two frames and part of a third."""
    prompt = continuation_prompt(vocab, frames(vocab, 2)[0])
    ids1, codes1 = frames(vocab, 1, 3)
    ids2, codes2 = frames(vocab, 2, 5)
    text = vocab.encode_text("hello world")
    tokens = np.concatenate(
        [
            ids1,
            [vocab.audio_end_id, vocab.text_start_id],
            text,
            [vocab.text_end_id, vocab.audio_start_id],
            ids2,
            frames(vocab, 1, 9)[0][:3],
        ]
    ).astype(np.int32)
    spans = generated_spans(vocab, prompt, tokens)
    assert [s.kind for s in spans] == [AUDIO, TEXT, AUDIO]
    assert span_codes(spans[2], vocab, 8, repair=True)[1] == 3 and not spans[2].terminated
    np.testing.assert_array_equal(generated_audio(vocab, prompt, tokens, 8), np.concatenate([codes1, codes2], axis=1))
    assert generated_text_spans(vocab, prompt, tokens) == [vocab.decode_text(text)]


def test_stop_ends_at_the_first_audio_end_and_drop_goes_on_past_it(vocab, loaded):
    prompt = continuation_prompt(vocab, frames(vocab, 3)[0])
    runs = {}
    for option in ("stop", "drop"):
        params = [
            sampling_params("continuation", vocab, continuation_text=option, max_new_tokens=NEW_TOKENS, seed=s)
            for s in SEEDS
        ]
        runs[option] = generate(loaded, [prompt] * len(params), params)
    codec = MimiCodec.random(tiny_mimi_config(), num_codebooks=8)
    closed = 0
    for stopped, soda in zip(runs["stop"], runs["drop"]):
        closes = np.flatnonzero(soda.tokens == vocab.audio_end_id)
        if closes.size:  # the model closed the span: the two options agree up to there, then part
            closed += 1
            first = int(closes[0])
            assert stopped.finish_reason == FINISH_STOP
            np.testing.assert_array_equal(stopped.tokens, soda.tokens[: first + 1])
            assert soda.tokens.size > first + 1  # SODA's goes on (EOS or the budget)
        spans = generated_spans(vocab, soda.prompt, soda.tokens)  # raises on any layout error
        assert len([s for s in generated_spans(vocab, stopped.prompt, stopped.tokens) if s.kind == TEXT]) == 0
        audio = [
            span_codes(s, vocab, 8, repair=True)[0] for s in spans if s.kind == AUDIO
        ]  # raises on an id out of its codebook
        joined = generated_audio(vocab, soda.prompt, soda.tokens, 8)
        expected = (
            np.concatenate(audio, axis=1) if audio else np.zeros((8, 0), joined.dtype)
        )  # closed at once: no audio
        np.testing.assert_array_equal(joined, expected)
        assert generated_text_spans(vocab, soda.prompt, soda.tokens) == [
            vocab.decode_text(s.ids) for s in spans if s.kind == TEXT
        ]
        if joined.shape[1]:
            [wave] = codec.decode([joined])
            assert wave.shape == (joined.shape[1] * codec.samples_per_frame,) and np.isfinite(wave).all()
    assert closed >= 2, "too few generations closed their audio span to compare the options"
    assert any(generated_text_spans(vocab, g.prompt, g.tokens) for g in runs["drop"]), "no SODA continuation wrote text"
