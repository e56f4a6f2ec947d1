"""AudioTextVocab: layout, frame-major round trips, validation, counted trims, save/load."""

import json

import fsspec
import numpy as np
import pytest

from soda_jax import fileio
from soda_jax.audio.text_tokenizers import mistral_sentencepiece, train_bpe
from soda_jax.audio.vocab import (
    CODEBOOK_SIZE,
    MIMI_CODEBOOKS,
    SPECIAL_TOKENS,
    VOCAB_FILE,
    AudioTextVocab,
    AudioTokenError,
    codebooks_for,
)
from soda_jax.contracts import TEXT_TOKENIZER_DIR

CORPUS = ["the quick brown fox jumps over the lazy dog", "speech and text tokens", "hello world"] * 20


@pytest.fixture(scope="module")
def vocab():
    return AudioTextVocab(train_bpe(CORPUS, vocab_size=300))


def random_codes(k, frames, seed=0):
    return np.random.default_rng(seed).integers(0, CODEBOOK_SIZE, size=(k, frames))


def test_layout_derives_from_the_text_tokenizer(vocab):
    t = len(vocab.text_tokenizer)
    assert vocab.text_size == t
    assert vocab.special_ids == tuple(range(t, t + len(SPECIAL_TOKENS)))
    assert vocab.audio_offset == t + len(SPECIAL_TOKENS)
    assert vocab.size == vocab.audio_offset + MIMI_CODEBOOKS * CODEBOOK_SIZE


def test_real_offline_tokenizer_layout():
    vocab = AudioTextVocab(mistral_sentencepiece())
    assert (vocab.text_size, vocab.audio_offset, vocab.size) == (32_000, 32_004, 32_004 + 16_384)
    ids = vocab.encode_text("Hello speech tokens")
    assert vocab.decode_text(ids) == "Hello speech tokens"


@pytest.mark.parametrize("k", [1, 4, 8])
def test_codes_ids_round_trip_is_exact_and_frame_major(vocab, k):
    codes = random_codes(k, 37, seed=k)
    ids = vocab.codes_to_ids(codes)
    assert ids.dtype == np.int32 and ids.shape == (k * 37,)
    # Frame-major: token f*k + c is codebook c of frame f.
    expected = [vocab.audio_offset + c * CODEBOOK_SIZE + codes[c, f] for f in range(37) for c in range(k)]
    assert ids.tolist() == expected
    back, trim = vocab.ids_to_codes(ids, codebooks_for(k))
    np.testing.assert_array_equal(back, codes)
    assert trim.dropped_tokens == 0


def test_semantic_only_ids_stay_in_codebook_zero(vocab):
    ids = vocab.codes_to_ids(random_codes(1, 50))
    assert ids.min() >= vocab.audio_offset and ids.max() < vocab.audio_offset + CODEBOOK_SIZE
    assert vocab.is_audio(ids).all()
    with pytest.raises(AudioTokenError, match="not an audio id of codebook 1"):
        vocab.ids_to_codes(ids[:2], codebooks=(0, 1))


def test_incomplete_frame_is_an_error_with_its_position(vocab):
    ids = vocab.codes_to_ids(random_codes(8, 3))[:-3]
    with pytest.raises(AudioTokenError, match="incomplete frame starts at position 16"):
        vocab.ids_to_codes(ids, codebooks_for(8))


def test_incomplete_frame_repair_is_counted(vocab):
    codes = random_codes(8, 3)
    ids = vocab.codes_to_ids(codes)[:-3]
    back, trim = vocab.ids_to_codes(ids, codebooks_for(8), repair=True)
    np.testing.assert_array_equal(back, codes[:, :2])
    assert trim.dropped_tokens == 5


def test_wrong_codebook_position_names_the_position(vocab):
    ids = vocab.codes_to_ids(random_codes(8, 4))
    ids[13], ids[14] = ids[14], ids[13]  # frame 1, slots 5 and 6 swapped
    with pytest.raises(AudioTokenError, match=r"position 13 \(frame 1, slot 5\)"):
        vocab.ids_to_codes(ids, codebooks_for(8))
    text_ids = np.array([5, 6, 7, 8], dtype=np.int32)
    with pytest.raises(AudioTokenError, match="position 0"):
        vocab.ids_to_codes(text_ids, codebooks_for(4))


def test_bad_codes_and_layouts_are_rejected(vocab):
    with pytest.raises(AudioTokenError, match="codes must be in"):
        vocab.codes_to_ids(np.full((8, 2), CODEBOOK_SIZE))
    with pytest.raises(AudioTokenError, match="shape"):
        vocab.codes_to_ids(np.zeros(8, dtype=np.int64))
    for bad in (0, MIMI_CODEBOOKS + 1):
        with pytest.raises(ValueError, match="num_codebooks"):
            codebooks_for(bad)


def test_token_kinds(vocab):
    text = vocab.encode_text("hello world")
    audio = vocab.codes_to_ids(random_codes(2, 5))
    ids = np.concatenate([[vocab.bos_id, vocab.text_start_id], text, [vocab.text_end_id, vocab.audio_start_id], audio])
    assert vocab.token_kinds(ids) == {"text": len(text) + 1, "special": 3, "audio": 10}


@pytest.mark.parametrize("where", ["local", "memory"])
def test_save_and_load(vocab, tmp_path, where):
    directory = str(tmp_path / "vocab") if where == "local" else "memory://vocab-test/vocab"
    try:
        vocab.save(directory)
        loaded = AudioTextVocab.load(directory)
        assert loaded.describe() == vocab.describe()
        assert loaded.encode_text("the lazy dog").tolist() == vocab.encode_text("the lazy dog").tolist()
        codes = random_codes(8, 6)
        np.testing.assert_array_equal(loaded.codes_to_ids(codes), vocab.codes_to_ids(codes))
        # a tokenizer directory in a bucket (e.g. Llama-3's, copied into the prefix) loads as a local one
        from_url = AudioTextVocab.from_pretrained(fileio.join(directory, TEXT_TOKENIZER_DIR))
        assert from_url.describe() == vocab.describe()
    finally:
        if where == "memory":
            fsspec.filesystem("memory").rm("/vocab-test", recursive=True)


def test_load_rejects_a_layout_that_no_longer_matches(vocab, tmp_path):
    directory = str(tmp_path / "vocab")
    vocab.save(directory)
    recorded = fileio.read_json(fileio.join(directory, VOCAB_FILE))
    recorded["audio_offset"] += 1
    fileio.atomic_write_text(fileio.join(directory, VOCAB_FILE), json.dumps(recorded))
    with pytest.raises(ValueError, match="does not match"):
        AudioTextVocab.load(directory)
