"""Loading for generation: the vocabulary rebuilt from a full-vocabulary tokenizer, codec facts,
and the errors for paths that hold no usable model."""

from __future__ import annotations

import haliax as hax
import jax
import numpy as np
import pytest
from haliax import Axis
from helpers_inference import make_vocab, random_model

from soda_jax.audio.codec import CodecConfig
from soda_jax.data.cache_vocab import levanter_tokenizer_path, save_cache_vocab
from soda_jax.inference.generate import generate
from soda_jax.inference.loader import (
    ModelLoadError,
    codec_config_from_facts,
    load_model,
    vocab_from_full_tokenizer,
)
from soda_jax.inference.sampling import SamplingParams
from soda_jax.training.export import export_hf
from soda_jax.training.parallelism import ParallelismConfig

SINGLE = ParallelismConfig(data=1)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    vocab = make_vocab(str(root / "text"))
    save_cache_vocab(vocab, str(root / "cache"))
    return str(root / "cache"), vocab


def test_vocab_rebuilt_from_the_full_tokenizer_matches_the_recorded_one(cache_root):
    cache, vocab = cache_root
    rebuilt = vocab_from_full_tokenizer(levanter_tokenizer_path(cache))
    assert rebuilt.describe() == vocab.describe()
    np.testing.assert_array_equal(rebuilt.encode_text("hello world"), vocab.encode_text("hello world"))


def test_codec_facts_name_the_mimi_to_rebuild():
    assert codec_config_from_facts({"weights": "random-tiny-seed3"}, 1) == CodecConfig(
        random_size="tiny", seed=3, num_codebooks=1
    )
    assert codec_config_from_facts({"weights": "/models/mimi"}, 8) == CodecConfig(pretrained="/models/mimi")


def test_an_exported_random_model_loads_and_generates_like_the_original(cache_root, tmp_path):
    cache, vocab = cache_root
    original = random_model(vocab, parallelism=SINGLE)
    with hax.partitioning.set_mesh(original.mesh):
        export_hf(
            original.model, original.model_config, str(tmp_path / "hf"), tokenizer_dir=levanter_tokenizer_path(cache)
        )
    loaded = load_model(str(tmp_path / "hf"), parallelism=SINGLE)
    assert loaded.source == str(tmp_path / "hf") and loaded.num_codebooks == 8 and loaded.codec is None
    prompt = np.array([vocab.bos_id, vocab.text_start_id, 40, vocab.text_end_id, vocab.audio_start_id], np.int32)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=2)
    [a], [b] = generate(original, [prompt], params), generate(loaded, [prompt], params)
    np.testing.assert_array_equal(a.tokens, b.tokens)


def test_paths_without_a_usable_model_are_named(cache_root, tmp_path):
    cache, vocab = cache_root
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_model(str(tmp_path / "nowhere"), parallelism=SINGLE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="neither a committed checkpoint"):
        load_model(str(tmp_path / "empty"), parallelism=SINGLE)
    reference = random_model(vocab, parallelism=SINGLE)
    with hax.partitioning.set_mesh(reference.mesh):
        model = reference.model_config.build(
            Axis("vocab", 400), key=jax.random.PRNGKey(0)
        )  # fewer rows than the vocabulary
        export_hf(model, reference.model_config, str(tmp_path / "small"), tokenizer_dir=levanter_tokenizer_path(cache))
    with pytest.raises(ModelLoadError, match="400 vocabulary rows but the vocabulary has 432 ids"):
        load_model(str(tmp_path / "small"), parallelism=SINGLE)
