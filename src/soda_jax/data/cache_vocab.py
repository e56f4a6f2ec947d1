"""The vocabulary a token cache carries: ``{out}/vocab/`` (AudioTextVocab) + a levanter tokenizer.

Levanter sizes the model's vocabulary with ``len(tokenizer)`` and reads the EOS id from it (to
block attention across packed documents), so training needs a tokenizer that knows every id of
the audio-text vocabulary. ``{out}/vocab/tokenizer/`` is that tokenizer: the text tokenizer's
``tokenizer.json`` with the 4 markers and 8 x 2048 audio tokens added as special tokens, at exactly
`AudioTextVocab`'s ids (checked when written).
"""

from __future__ import annotations

import json

from soda_jax import fileio
from soda_jax.audio.vocab import MIMI_CODEBOOKS, SPECIAL_TOKENS, AudioTextVocab
from soda_jax.contracts import HF_TOKENIZER_FILE, LEVANTER_TOKENIZER_DIR, VOCAB_DIR


def audio_token(codebook: int, code: int) -> str:
    """The string form of one audio id in the levanter tokenizer."""
    return f"<|audio_{codebook}_{code}|>"


def levanter_tokenizer_path(cache_root):
    """The full-vocabulary tokenizer of a cache root: a path, or an executor input when the root is
    a step (or `InputName`) that has not run yet."""
    if isinstance(cache_root, str):
        return fileio.join(cache_root, VOCAB_DIR, LEVANTER_TOKENIZER_DIR)
    return cache_root / f"{VOCAB_DIR}/{LEVANTER_TOKENIZER_DIR}"


def save_cache_vocab(vocab: AudioTextVocab, cache_root: str) -> None:
    """Write ``{cache_root}/vocab/`` and its levanter tokenizer."""
    from tokenizers import AddedToken, Tokenizer

    vocab.save(fileio.join(cache_root, VOCAB_DIR))
    backend = getattr(vocab.text_tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"{type(vocab.text_tokenizer).__name__} is not a fast tokenizer: levanter needs tokenizer.json"
        )
    tokenizer = Tokenizer.from_str(backend.to_str())
    names = list(SPECIAL_TOKENS) + [
        audio_token(c, k) for c in range(MIMI_CODEBOOKS) for k in range(vocab.codebook_size)
    ]
    tokenizer.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in names])
    expected = {
        SPECIAL_TOKENS[0]: vocab.text_start_id,
        audio_token(0, 0): vocab.audio_offset,
        audio_token(MIMI_CODEBOOKS - 1, vocab.codebook_size - 1): vocab.size - 1,
    }
    got = {name: tokenizer.token_to_id(name) for name in expected}
    if got != expected or tokenizer.get_vocab_size() != vocab.size:
        raise ValueError(
            f"levanter tokenizer ids {got} (size {tokenizer.get_vocab_size()}) do not match "
            f"the vocab {expected} (size {vocab.size})"
        )
    directory = levanter_tokenizer_path(cache_root)
    fileio.atomic_write_text(fileio.join(directory, HF_TOKENIZER_FILE), tokenizer.to_str())
    config = {
        "bos_token": vocab.text_tokenizer.bos_token,
        "eos_token": vocab.text_tokenizer.eos_token,
        "pad_token": vocab.text_tokenizer.pad_token,
        "model_input_names": ["input_ids"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    fileio.atomic_write_text(fileio.join(directory, "tokenizer_config.json"), json.dumps(config, indent=2) + "\n")


def load_cache_vocab(cache_root: str) -> AudioTextVocab:
    return AudioTextVocab.load(fileio.join(cache_root, VOCAB_DIR))
