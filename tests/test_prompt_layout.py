"""SODA's prompts are prefixes of the documents the model trains on.

A model learns the layout of its training documents; a prompt that departs from it (a marker missing or
moved, codebooks in another order) is out of distribution, and a small model is robust enough to some
such faults that the learning test's thresholds miss them (a missing ``<|audio_start|>`` in the ASR and
alignment prompts costs the learning demo 0.00 WER and 0.04 alignment, docs/demo.md). So the layout is
checked here directly, token for token: codes go through the tokenize step's writer (`rows_table`) and the
interleave step's layouts (`interleave_recording`) on one side, through the evaluation's conversion
(`AudioTextVocab.codes_to_ids`) and the prompt builders on the other.
"""

import numpy as np
import pyarrow as pa
import pytest
from helpers_data import save_test_tokenizer

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.interleave import Markers, get_pattern, interleave_recording
from soda_jax.data.tokenize_audio import SCHEMA, rows_table
from soda_jax.inference.prompts import (
    asr_nshot_prompt,
    asr_prompt,
    continuation_prompt,
    tts_prompt,
    voice_tts_prompt,
)

CODEBOOKS = 8
FRAMES = (5, 3)
TEXTS = ("hello world", "good morning")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return AudioTextVocab.from_pretrained(save_test_tokenizer(str(tmp_path_factory.mktemp("tok"))))


@pytest.fixture(scope="module")
def codes():
    """Two utterances' codec output, ``[codebooks, frames]`` each, every code distinct by codebook."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 2048, size=(CODEBOOKS, frames)).astype(np.int16) for frames in FRAMES]


def stored_codes(codes: list[np.ndarray]) -> list[np.ndarray]:
    """The codes as the tokenize step stores them (its own writer), read back."""
    rows: dict[str, list] = {name: [] for name in SCHEMA.names if name != "codes"}
    for i, c in enumerate(codes):
        for name, value in dict(
            recording_id="r",
            segment_id=f"r-{i}",
            segment_index=i,
            start=float(i),
            end=float(i + 1),
            text=TEXTS[i],
            language="en",
            speaker="s",
            num_frames=c.shape[1],
        ).items():
            rows[name].append(value)
    table: pa.Table = rows_table(rows, codes, stats={})
    return [np.asarray(c, dtype=np.int16) for c in table.column("codes").to_pylist()]


def training_document(vocab: AudioTextVocab, pattern: str, codes: list[np.ndarray], texts=TEXTS) -> np.ndarray:
    (document,) = interleave_recording(
        get_pattern(pattern),
        [vocab.encode_text(t) for t in texts],
        stored_codes(codes),
        CODEBOOKS,
        Markers.from_vocab(vocab),
    )
    return document


def test_tts_and_alignment_follow_text_first_documents(vocab, codes):
    document = training_document(vocab, "text_first", codes[:1], TEXTS[:1])
    prompt = tts_prompt(vocab, TEXTS[0])
    np.testing.assert_array_equal(document[: prompt.size], prompt)
    # the alignment task scores <TTS prompt> A <|audio_end|>: the whole document but its <eos>
    audio = vocab.codes_to_ids(codes[0])
    np.testing.assert_array_equal(np.concatenate([prompt, audio, [vocab.audio_end_id]]), document[:-1])


def test_voice_tts_follows_a_two_segment_text_first_document(vocab, codes):
    document = training_document(vocab, "text_first", codes)
    prompt = voice_tts_prompt(vocab, TEXTS[0], vocab.codes_to_ids(codes[0]), TEXTS[1])
    np.testing.assert_array_equal(document[: prompt.size], prompt)


def test_asr_and_continuation_follow_audio_first_documents(vocab, codes):
    document = training_document(vocab, "audio_first", codes[:1], TEXTS[:1])
    audio = vocab.codes_to_ids(codes[0])
    prompt = asr_prompt(vocab, audio)
    np.testing.assert_array_equal(document[: prompt.size], prompt)
    # what the model should write next is the transcript, then <|text_end|> <eos>
    np.testing.assert_array_equal(
        document[prompt.size :], np.concatenate([vocab.encode_text(TEXTS[0]), [vocab.text_end_id, vocab.eos_id]])
    )
    np.testing.assert_array_equal(document[: 2 + audio.size], continuation_prompt(vocab, audio))


def test_nshot_asr_is_whole_audio_first_documents_then_the_asr_prompt(vocab, codes):
    shot = training_document(vocab, "audio_first", codes[:1], TEXTS[:1])
    audio = vocab.codes_to_ids(codes[1])
    prompt = asr_nshot_prompt(vocab, [(vocab.codes_to_ids(codes[0]), TEXTS[0])], audio)
    np.testing.assert_array_equal(prompt[: shot.size], shot)
    np.testing.assert_array_equal(prompt[shot.size :], asr_prompt(vocab, audio))


def test_a_swapped_codebook_order_departs_from_the_training_layout(vocab, codes):
    """The check above would catch an evaluation that flattened codebook-major or swapped codebooks."""
    document = training_document(vocab, "audio_first", codes[:1], TEXTS[:1])
    codebook_major = vocab.audio_offset + (codes[0] + (np.arange(CODEBOOKS) * 2048)[:, None]).reshape(-1)
    assert not np.array_equal(document[2 : 2 + codebook_major.size], codebook_major)
    swapped = vocab.codes_to_ids(codes[0][::-1])
    assert not np.array_equal(document[2 : 2 + swapped.size], swapped)
