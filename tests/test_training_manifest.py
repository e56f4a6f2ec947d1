"""The training manifest: a run trained by a plain ``train()`` call (no executor) describes itself,
so the model loader finds its data vocabulary without being told; resuming or branching with another
``layer_loop`` is refused, naming both values; a run from before manifests is read from the
executor's record and its summary."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from helpers_training import tiny_config, write_test_cache

from soda_jax.contracts import (
    CHECKPOINTS_DIR,
    HF_DIR,
    INFO_FILE,
    LEVANTER_TOKENIZER_DIR,
    SUMMARY_FILE,
    TRAINING_MANIFEST_FILE,
    VOCAB_DIR,
)
from soda_jax.inference.loader import load_model
from soda_jax.models import TEST_TINY
from soda_jax.training.manifest import LayerLoopMismatch, read_manifest
from soda_jax.training.parallelism import ParallelismConfig
from soda_jax.training.train import train

STEPS = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("manifest")
    cache = str(root / "cache")
    vocab = write_test_cache(cache, str(root / "tokenizer"))
    config = tiny_config(cache, str(root / "run"), steps=STEPS, export_hf=False, layer_loop="unrolled")
    summary = train(config)
    return {"config": config, "summary": summary, "cache": cache, "vocab": vocab, "run": config.output_path}


def test_the_run_records_what_it_read_and_its_layout(run):
    assert not os.path.exists(os.path.join(run["run"], INFO_FILE)), "trained outside the executor: no executor record"
    manifest = read_manifest(run["run"])
    assert manifest is not None and os.path.exists(os.path.join(run["run"], TRAINING_MANIFEST_FILE))
    assert manifest.caches == {"speech": run["cache"]}
    assert manifest.vocabulary == os.path.join(run["cache"], VOCAB_DIR)
    assert manifest.model == TEST_TINY and manifest.seq_len == run["config"].recipe.seq_len
    assert manifest.padded_vocab_size == run["summary"]["padded_vocab_size"]
    assert manifest.layer_loop == run["summary"]["layer_loop"] == "unrolled"


def test_a_run_trained_outside_the_executor_loads_without_naming_its_caches(run):
    assert not os.path.exists(os.path.join(run["run"], HF_DIR)), "no hf/ export to take a tokenizer from"
    loaded = load_model(run["run"], parallelism=ParallelismConfig(data=1))
    assert loaded.source.startswith(os.path.join(run["run"], CHECKPOINTS_DIR))
    assert loaded.vocab.describe() == run["vocab"].describe()
    assert loaded.model.Vocab.size == run["summary"]["padded_vocab_size"]


def test_resuming_with_another_layer_loop_is_refused(run):
    with pytest.raises(
        LayerLoopMismatch, match=r"resuming .*layer_loop='unrolled' but this run uses layer_loop='scan'"
    ):
        train(dataclasses.replace(run["config"], layer_loop="scan"))


def test_branching_with_another_layer_loop_is_refused(run, tmp_path):
    branch = dataclasses.replace(
        run["config"], output_path=str(tmp_path / "branch"), resume_from=run["run"], layer_loop="scan"
    )
    with pytest.raises(
        LayerLoopMismatch, match=r"resume_from .*layer_loop='unrolled' but this run uses layer_loop='scan'"
    ):
        train(branch)


def test_a_run_from_before_manifests_is_read_from_its_executor_record_and_summary(run, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    data = {
        "components": {"speech": run["cache"]},
        "tokenizer": os.path.join(run["cache"], VOCAB_DIR, LEVANTER_TOKENIZER_DIR),
    }
    (old / INFO_FILE).write_text(json.dumps({"config": {"data": data}}))
    (old / SUMMARY_FILE).write_text(json.dumps(run["summary"]))
    manifest = read_manifest(str(old))
    new = read_manifest(run["run"])
    assert manifest == new
    (old / TRAINING_MANIFEST_FILE).write_text(json.dumps({"caches": {}}))
    with pytest.raises(ValueError, match=f"{TRAINING_MANIFEST_FILE}: not a training manifest"):
        read_manifest(str(old))
