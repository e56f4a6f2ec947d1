"""Text tokenizers that need no hub: a real offline one for demos, a trainable BPE for tests and
for small corpora (the mini isoFLOP sweep's 512-id BPE keeps its vocabulary near 17k ids).

Production runs load Llama-3's tokenizer with `AudioTextVocab.from_pretrained(dir_or_hub_id)`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from transformers import LlamaTokenizerFast, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from soda_jax import fileio

MISTRAL_V1_MODEL = "tokenizer.model.v1"
"""The 32,000-id Llama/Mistral-style SentencePiece model shipped inside the mistral-common wheel."""

MISTRAL_V1_TEXT_SIZE = 32_000
"""Ids of `mistral_sentencepiece` (the demo's text tokenizer)."""

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"


def mistral_sentencepiece() -> LlamaTokenizerFast:
    """Mistral-7B-v0.1's SentencePiece tokenizer (32,000 ids), from the mistral-common wheel."""
    import mistral_common

    model = os.path.join(os.path.dirname(mistral_common.__file__), "data", MISTRAL_V1_MODEL)
    # legacy=True keeps SentencePiece's own handling of the leading space.
    return LlamaTokenizerFast(vocab_file=model, legacy=True, add_bos_token=False, from_slow=True)


def train_bpe(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``texts`` with BOS/EOS/UNK/PAD specials (about 0.3 s per MB)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_input_names=["input_ids"],
    )


OFFLINE_TOKENIZERS = {"mistral-v1": mistral_sentencepiece}
"""Real text tokenizers this package can build without a hub, by name."""


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str) -> None:
    """``save_pretrained`` to any fsspec directory, each file written atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                fileio.atomic_write_bytes(fileio.join(directory, name), f.read())
