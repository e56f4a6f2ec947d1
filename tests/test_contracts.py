"""The output layout's names are defined once (soda_jax.contracts) and documented; derived sizes follow the vocabulary."""

from __future__ import annotations

import os

from soda_jax import contracts
from soda_jax.audio.text_tokenizers import MISTRAL_V1_TEXT_SIZE, mistral_sentencepiece
from soda_jax.audio.vocab import LLAMA3_TEXT_SIZE, SODA_VOCAB_SIZE, AudioTextVocab, audio_text_vocab_size

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "data-contracts.md")


def test_every_contract_name_is_documented():
    text = open(DOCS).read()
    names = {k: v for k, v in vars(contracts).items() if k.isupper() and isinstance(v, str)}
    assert names, "contracts defines no names"
    undocumented = {k: v for k, v in names.items() if v not in text}
    assert not undocumented, f"names in soda_jax/contracts.py missing from docs/data-contracts.md: {undocumented}"


def test_vocabulary_sizes_derive_from_the_text_tokenizer():
    assert audio_text_vocab_size(MISTRAL_V1_TEXT_SIZE) == AudioTextVocab(mistral_sentencepiece()).size == 48_388
    assert SODA_VOCAB_SIZE == audio_text_vocab_size(LLAMA3_TEXT_SIZE) == 144_644  # SODA's released tokenizer
