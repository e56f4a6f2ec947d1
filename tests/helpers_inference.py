"""Tiny random Qwen3 models on the test vocabulary, loaded as `LoadedModel`s (no training needed)."""

from __future__ import annotations

import haliax as hax
import jax
from haliax import Axis
from helpers_data import save_test_tokenizer
from helpers_training import TEST_CODEBOOK_SIZE

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.inference.loader import LoadedModel, build_mesh
from soda_jax.models import TEST_TINY
from soda_jax.models.shapes import qwen3_config
from soda_jax.training.parallelism import ParallelismConfig

CONTEXT = 128
UNSHARDED = ParallelismConfig(data=1)
MESH_4X2 = ParallelismConfig(data=4, model=2)


def make_vocab(directory: str) -> AudioTextVocab:
    """The training tests' vocabulary: a 300-id BPE, 4 markers, 8 x 16 audio ids (432 ids)."""
    text = AudioTextVocab.from_pretrained(save_test_tokenizer(directory)).text_tokenizer
    return AudioTextVocab(text, codebook_size=TEST_CODEBOOK_SIZE)


def random_model(
    vocab: AudioTextVocab,
    *,
    num_codebooks: int = 8,
    parallelism: ParallelismConfig = UNSHARDED,
    seed: int = 0,
    scan_layers: bool = True,
) -> LoadedModel:
    """A randomly initialised TEST_TINY Qwen3 over ``vocab``, sharded like training would shard it."""
    mesh, compute, params = build_mesh(parallelism)
    config = qwen3_config(TEST_TINY, CONTEXT, gradient_checkpointing=False, scan_layers=scan_layers)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(params):
        model = hax.named_jit(lambda key: config.build(Axis("vocab", vocab.size), key=key), axis_resources=params)(
            jax.random.PRNGKey(seed)
        )
    return LoadedModel(model, config, vocab, num_codebooks, mesh, compute, params, source=f"random-seed{seed}")
