"""The text-tokenizer steps: an offline tokenizer exported, or a BPE trained on a corpus's texts,
written to a directory where ``AutoTokenizer.from_pretrained`` finds it (the tokenizers themselves:
`soda_jax.audio.text_tokenizers`)."""

from __future__ import annotations

from dataclasses import dataclass

from soda_jax.audio.text_tokenizers import OFFLINE_TOKENIZERS, save_tokenizer, train_bpe


@dataclass(frozen=True)
class ExportTokenizerConfig:
    """Write an offline text tokenizer to a directory, where ``AutoTokenizer.from_pretrained`` finds it."""

    output_path: str
    """Directory for the tokenizer files."""
    name: str = "mistral-v1"
    """One of `OFFLINE_TOKENIZERS`."""


def export_tokenizer(config: ExportTokenizerConfig) -> None:
    if config.name not in OFFLINE_TOKENIZERS:
        raise ValueError(f"unknown offline tokenizer {config.name!r}; known: {sorted(OFFLINE_TOKENIZERS)}")
    save_tokenizer(OFFLINE_TOKENIZERS[config.name](), config.output_path)


@dataclass(frozen=True)
class TrainBpeConfig:
    """Train a byte-level BPE (`train_bpe`) on given texts and write it to a directory."""

    output_path: str
    """Directory for the tokenizer files."""
    texts: tuple[str, ...]
    """What the BPE learns its merges from (e.g. the sentences of the corpus it will tokenize)."""
    vocab_size: int = 512
    """Text ids: 256 bytes, 4 specials and the merges."""


def train_bpe_tokenizer(config: TrainBpeConfig) -> None:
    if not config.texts:
        raise ValueError(f"{config.output_path}: no texts to train a BPE on")
    save_tokenizer(train_bpe(config.texts, config.vocab_size), config.output_path)
