"""Fine-tuning end to end on CPU: a tiny model pretrained on a toy spoken language (interleaved
documents), then fine-tuned for ASR from its checkpoint and from its hf/ export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_data import save_test_tokenizer
from helpers_sft import write_word_corpus

from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.mixture import soda_mixture
from soda_jax.data.sft import sft_mixture
from soda_jax.data.sft_sources import TokenizedTaskSource
from soda_jax.data.sft_step import SftDataConfig, build_sft_data
from soda_jax.models import TEST_TINY
from soda_jax.training import CheckpointPolicy, OptimizerRecipe, ParallelismConfig, TrainConfig, TrainRecipe
from soda_jax.training.metrics import METRICS_FILE
from soda_jax.training.sft_recipe import AdamRecipe
from soda_jax.training.train import train
from soda_jax.training.validation import VALIDATION_LOSS

SEQ_LEN = 64
BATCH_SIZE = 8
PRETRAIN_STEPS = 30
FINETUNE_STEPS = 30
HELD_OUT = 0.2


def run_config(data, output_path: str, recipe: TrainRecipe, jax_cache: str, **overrides) -> TrainConfig:
    return TrainConfig(
        data=data,
        model=TEST_TINY,
        output_path=output_path,
        recipe=recipe,
        parallelism=ParallelismConfig(data=-1, model=1),
        checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
        gradient_checkpointing=False,
        steps_per_eval=1000,
        max_eval_batches=4,
        compilation_cache_dir=jax_cache,
        **overrides,
    )


def finetune_recipe(steps: int) -> TrainRecipe:
    return TrainRecipe(
        seq_len=SEQ_LEN,
        batch_size=BATCH_SIZE,
        num_train_steps=steps,
        optimizer=AdamRecipe(learning_rate=3e-3, warmup=0.1),
        z_loss_weight=0.0,
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sft")
    tokenizer = save_test_tokenizer(str(root / "tokenizer"))
    corpus = write_word_corpus(str(root / "tokenized"), recordings=60)
    interleave(
        InterleaveConfig(
            input_path=corpus, output_path=str(root / "interleaved"), tokenizer=tokenizer, validation_fraction=HELD_OUT
        )
    )
    asr = SftDataConfig(
        source=TokenizedTaskSource(corpus, "asr"),
        output_path=str(root / "asr"),
        tokenizer=tokenizer,
        max_tokens=SEQ_LEN,
        validation_fraction=HELD_OUT,
    )
    build_sft_data(asr)
    jax_cache = str(root / "jax-cache")
    pretrain = TrainRecipe(
        seq_len=SEQ_LEN,
        batch_size=BATCH_SIZE,
        num_train_steps=PRETRAIN_STEPS,
        optimizer=OptimizerRecipe(learning_rate=1e-2, warmup=0.1, decay=0.2),
    )
    train(
        run_config(
            soda_mixture({"speech": str(root / "interleaved")}, {"speech": 1.0}),
            str(root / "base"),
            pretrain,
            jax_cache,
        )
    )
    return {"root": str(root), "tokenizer": tokenizer, "corpus": corpus, "jax_cache": jax_cache}


@pytest.fixture(scope="module")
def from_checkpoint(workspace) -> dict:
    root = workspace["root"]
    data = sft_mixture({"asr": os.path.join(root, "asr")})
    return train(
        run_config(
            data,
            os.path.join(root, "sft-ckpt"),
            finetune_recipe(FINETUNE_STEPS),
            workspace["jax_cache"],
            init_from=os.path.join(root, "base"),
        )
    )


def first_loss(run_dir: str) -> float:
    return json.loads(Path(run_dir, METRICS_FILE).read_text().splitlines()[0])["loss"]


def test_asr_fine_tune_lowers_held_out_asr_loss(from_checkpoint):
    before = from_checkpoint["initial_validation"][VALIDATION_LOSS]
    after = from_checkpoint["final_validation_loss"]
    print(
        f"held-out ASR loss (response tokens): base model {before:.3f} -> fine-tuned {after:.3f} "
        f"after {FINETUNE_STEPS} steps"
    )
    assert from_checkpoint["steps"] == FINETUNE_STEPS
    assert after < before


def test_init_from_hf_export_equals_init_from_its_checkpoint(workspace, from_checkpoint):
    root = workspace["root"]
    data = sft_mixture({"asr": os.path.join(root, "asr")})
    from_hf = train(
        run_config(
            data,
            os.path.join(root, "sft-hf"),
            finetune_recipe(FINETUNE_STEPS),
            workspace["jax_cache"],
            init_from=os.path.join(root, "base", "hf"),
        )
    )
    # Same weights, same data order: the same losses before the first update and at it.
    assert from_hf["initial_validation"] == pytest.approx(from_checkpoint["initial_validation"], rel=1e-6)
    assert first_loss(os.path.join(root, "sft-hf")) == pytest.approx(
        first_loss(os.path.join(root, "sft-ckpt")), rel=1e-6
    )


def test_vocabulary_mismatch_names_both_sizes(workspace, tmp_path):
    small = write_word_corpus(str(tmp_path / "tokenized-small"), recordings=10, codebook_size=16)
    build_sft_data(
        SftDataConfig(
            source=TokenizedTaskSource(small, "asr"),
            output_path=str(tmp_path / "asr-small"),
            tokenizer=workspace["tokenizer"],
            max_tokens=SEQ_LEN,
            validation_fraction=HELD_OUT,
        )
    )
    config = run_config(
        sft_mixture({"asr": str(tmp_path / "asr-small")}),
        str(tmp_path / "run"),
        finetune_recipe(2),
        workspace["jax_cache"],
        init_from=os.path.join(workspace["root"], "base"),
    )
    with pytest.raises(ValueError, match=r"vocabulary of 16688 ids but the data caches' vocabulary has 432 ids"):
        train(config)
