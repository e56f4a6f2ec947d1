"""A tiny model overfitted to a few known documents, for the evaluation tests.

The vocabulary has Mimi's real 2048-code codebooks, so audio from the seeded random tiny Mimi
(`DEMO_CODEC`) is in it. Documents (each repeated, so the model memorises them):

    text:   <bos> <|text_start|> T <|text_end|> <eos>        for T in `TRAINED_TEXTS`
    audio:  <bos> <|audio_start|> A <|audio_end|> <eos>      A: `AUDIO_FRAMES` frames of random codes
"""

from __future__ import annotations

import numpy as np
from helpers_data import save_test_tokenizer
from helpers_training import write_split

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.mixture import soda_mixture
from soda_jax.models import ModelShape
from soda_jax.training import CheckpointPolicy, OptimizerRecipe, ParallelismConfig, TrainConfig, TrainRecipe

EVAL_MODEL = ModelShape(hidden_dim=64, intermediate_dim=128, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16)
SEQ_LEN = 128
TRAINED_TEXTS = ("the cat sat on the mat", "a dog ran in the park", "birds sing at dawn")
AUDIO_DOCUMENTS = 3
AUDIO_FRAMES = 4
REPEATS = 16


def audio_bodies(vocab: AudioTextVocab) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        vocab.codes_to_ids(rng.integers(0, vocab.codebook_size, size=(8, AUDIO_FRAMES))) for _ in range(AUDIO_DOCUMENTS)
    ]


def documents(vocab: AudioTextVocab) -> list[np.ndarray]:
    docs = []
    for text in TRAINED_TEXTS:
        docs.append([vocab.bos_id, vocab.text_start_id, *vocab.encode_text(text), vocab.text_end_id, vocab.eos_id])
    for body in audio_bodies(vocab):
        docs.append([vocab.bos_id, vocab.audio_start_id, *body, vocab.audio_end_id, vocab.eos_id])
    return [np.asarray(d, np.int32) for d in docs]


def write_eval_cache(root: str, tokenizer_dir: str) -> AudioTextVocab:
    vocab = AudioTextVocab.from_pretrained(save_test_tokenizer(tokenizer_dir))
    docs = documents(vocab)
    write_split(f"{root}/train", docs * REPEATS)
    write_split(f"{root}/validation", docs)
    save_cache_vocab(vocab, root)
    return vocab


def eval_train_config(cache_root: str, output_path: str, *, steps: int = 30, **overrides) -> TrainConfig:
    fields = dict(
        data=soda_mixture({"speech": cache_root}, {"speech": 1.0}),
        model=EVAL_MODEL,
        output_path=output_path,
        recipe=TrainRecipe(
            seq_len=SEQ_LEN,
            batch_size=8,
            num_train_steps=steps,
            optimizer=OptimizerRecipe(learning_rate=1e-2, warmup=0.05, decay=0.2),
        ),
        parallelism=ParallelismConfig(data=8, model=1),
        checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
        gradient_checkpointing=False,
        # Full logits: at this vocabulary (16,384 audio ids) on 8 fake devices sharing 2 cores, the
        # token-blocked kernel's small blocks made the tts_alignment fixture 54 s against 29 s (measured);
        # the fused loss has its own tests (test_token_blocked_loss, test_fitted_loss, test_models).
        cross_entropy="full",
        steps_per_eval=steps,
        max_eval_batches=1,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def resume_eval_config(run: str, output_path: str, pairs: str, librispeech: str):
    """The evaluation the resume test kills and re-runs: a pair task, then ASR one item at a time."""
    from soda_jax.audio.codec import CodecConfig
    from soda_jax.eval.step import EvalConfig
    from soda_jax.eval.tasks import AsrTask, Sampling, twuggy

    return EvalConfig(
        model_path=run,
        output_path=output_path,
        batch_size=1,
        codec=CodecConfig(pretrained=None, random_size="tiny", seed=0),
        tasks=(twuggy(pairs), AsrTask("asr", librispeech, sampling=Sampling(max_new_tokens=16))),
    )
