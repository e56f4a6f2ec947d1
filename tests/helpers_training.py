"""Fixtures for the training tests: a small real token cache (levanter `SerialCacheWriter`) and tiny configs."""

from __future__ import annotations

import numpy as np
from helpers_data import save_test_tokenizer
from levanter.store.cache import SerialCacheWriter

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.mixture import soda_mixture
from soda_jax.models import TEST_TINY
from soda_jax.training import CheckpointPolicy, OptimizerRecipe, ParallelismConfig, TrainConfig, TrainRecipe

SEQ_LEN = 32
BATCH_SIZE = 8
TEST_CODEBOOK_SIZE = 16
"""Small codebooks keep the vocabulary (and the LM head) tiny: 300 text + 4 + 8 x 16 audio ids."""
TRAIN_DOCUMENTS = 96
VALIDATION_DOCUMENTS = 24


def synthetic_documents(vocab: AudioTextVocab, count: int, seed: int) -> list[np.ndarray]:
    """Documents with structure a tiny model learns in a few steps: BOS, a counting run of audio
    ids starting at a random code, EOS."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(count):
        length = int(rng.integers(12, 40))
        start = int(rng.integers(0, TEST_CODEBOOK_SIZE))
        audio = vocab.audio_offset + (start + np.arange(length)) % (8 * TEST_CODEBOOK_SIZE)
        docs.append(np.concatenate([[vocab.bos_id], audio, [vocab.eos_id]]).astype(np.int32))
    return docs


def write_split(directory: str, documents: list[np.ndarray]) -> None:
    with SerialCacheWriter(directory, {"input_ids": np.zeros((0,), np.int32)}) as writer:
        writer.write_batch([{"input_ids": doc} for doc in documents])


def write_test_cache(root: str, tokenizer_dir: str) -> AudioTextVocab:
    """A token cache as docs/data-contracts.md section 2 lays it out: train/, validation/, vocab/."""
    vocab = AudioTextVocab(
        AudioTextVocab.from_pretrained(save_test_tokenizer(tokenizer_dir)).text_tokenizer,
        codebook_size=TEST_CODEBOOK_SIZE,
    )
    write_split(f"{root}/train", synthetic_documents(vocab, TRAIN_DOCUMENTS, seed=0))
    write_split(f"{root}/validation", synthetic_documents(vocab, VALIDATION_DOCUMENTS, seed=1))
    save_cache_vocab(vocab, root)
    return vocab


def tiny_config(
    cache_root: str, output_path: str, *, steps: int = 8, data: int = -1, model: int = 1, **overrides
) -> TrainConfig:
    fields = dict(
        data=soda_mixture({"speech": cache_root}, {"speech": 1.0}),
        model=TEST_TINY,
        output_path=output_path,
        recipe=TrainRecipe(
            seq_len=SEQ_LEN,
            batch_size=BATCH_SIZE,
            num_train_steps=steps,
            optimizer=OptimizerRecipe(learning_rate=1e-2, warmup=0.0, decay=0.2),
        ),
        parallelism=ParallelismConfig(data=data, model=model),
        # The final checkpoint only (each save costs ~0.5 s here): a test that resumes mid-run asks for more.
        checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
        gradient_checkpointing=False,
        steps_per_eval=4,
        max_eval_batches=2,
    )
    fields.update(overrides)
    return TrainConfig(**fields)
