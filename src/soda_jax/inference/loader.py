"""Load a model to generate with: a soda-jax training output or an HF directory with SODA's vocabulary.

Accepted paths:

* a training output (docs/data-contracts.md section 3): its latest committed levanter checkpoint
  under ``checkpoints/`` (shape and layer loop from its training manifest), else its ``hf/`` export;
* an HF directory of a Qwen3 model (``config.json`` + safetensors + tokenizer) whose vocabulary
  has SODA's layout: our ``hf/`` export, or a downloaded SODA base model.

A training output describes itself in its manifest (`soda_jax.training.manifest`, written when
the run starts; rebuilt from the executor's record and ``summary.json`` for older runs): the
vocabulary of its data caches, how many codebooks the documents used and which codec made them,
so generated audio decodes with the same Mimi. Without a recorded vocabulary it comes from the HF
directory's full-vocabulary tokenizer, whose ``<|text_start|>`` id gives the text tokenizer's size.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from typing import Any

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
from haliax import Axis
from levanter.models.qwen import Qwen3Config, Qwen3LMHeadModel

from soda_jax import fileio
from soda_jax.audio.vocab import MIMI_CODEBOOKS, SPECIAL_TOKENS, AudioTextVocab, codebooks_for
from soda_jax.contracts import (
    CHECKPOINTS_DIR,
    HF_CONFIG_FILE,
    HF_DIR,
    HF_TOKENIZER_FILE,
    SUMMARY_FILE,
    TRAINING_MANIFEST_FILE,
)
from soda_jax.inference.decoder import decode_weights
from soda_jax.models.shapes import qwen3_config
from soda_jax.training.checkpoints import latest_checkpoint
from soda_jax.training.manifest import SCAN, TrainingManifest, read_manifest
from soda_jax.training.parallelism import ParallelismConfig

logger = logging.getLogger(__name__)

MAX_VOCAB_PADDING = 1024
"""A model's vocabulary may exceed the tokenizer's by levanter's partition padding (< this); the
padded ids are never sampled. A larger difference is a mismatch."""


class ModelLoadError(ValueError):
    """A path that does not hold a model we can generate with (the message names the file)."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready for `soda_jax.inference.generate`: weights on a mesh, vocabulary, layout."""

    model: Qwen3LMHeadModel
    """levanter Qwen3 (haliax), parameters sharded over ``mesh`` by ``param_mapping``."""
    model_config: Qwen3Config
    vocab: AudioTextVocab
    num_codebooks: int
    """Codebooks per audio frame in the documents the model learned (8, or 1 for semantic-only)."""
    mesh: jax.sharding.Mesh
    compute_mapping: dict
    """haliax axis -> mesh axes for activations (``batch`` over the data-parallel axes)."""
    param_mapping: dict
    source: str
    """What was loaded: the checkpoint directory or HF directory."""
    codec: dict[str, Any] | None = None
    """The data's ``codec.json`` facts (sample rate, codebooks, weights) when recorded, else None."""

    @functools.cached_property
    def decode_weights(self):
        """The decode loop's ``[in, out]`` copy of the projection and LM-head weights
        (`soda_jax.inference.decoder.decode_weights`), made on first use and kept: a second copy of
        those weights for the model's lifetime, which every generation held during its call anyway.
        Made per call, it took about 20 of the 40 ms of a one-token BENCH_20M generation at batch 1
        (interleaved runs, same process)."""
        with hax.partitioning.set_mesh(self.mesh), hax.axis_mapping(self.param_mapping):
            return eqx.filter_jit(decode_weights)(self.model)

    @property
    def context_length(self) -> int:
        """Longest sequence (prompt + generation) the model was configured for."""
        return int(self.model_config.max_seq_len)

    @property
    def data_parallel_size(self) -> int:
        """Devices the batch is split over (batch buckets are multiples of this)."""
        axes = self.compute_mapping.get("batch", ())
        axes = (axes,) if isinstance(axes, str) else axes
        return math.prod(self.mesh.shape.get(a, 1) for a in axes)

    def mimi_codec(self, *, pretrained: str | None = None):
        """The `MimiCodec` that made the data (``codec.json``), or the Mimi at ``pretrained``."""
        from soda_jax.audio.codec import CodecConfig, MimiCodec

        if pretrained is not None:
            return MimiCodec.from_config(CodecConfig(pretrained=pretrained, num_codebooks=self.num_codebooks))
        if self.codec is None:
            raise ModelLoadError(
                f"{self.source}: no codec recorded for its data; pass the Mimi weights (pretrained=...)"
            )
        return MimiCodec.from_config(codec_config_from_facts(self.codec, self.num_codebooks))


def codec_config_from_facts(codec: dict[str, Any], num_codebooks: int):
    """`CodecConfig` from ``codec.json`` facts: ``weights`` is a path/hub id or ``random-{size}-seed{seed}``."""
    from soda_jax.audio.codec import CodecConfig

    weights = str(codec.get("weights", ""))
    if weights.startswith("random-"):
        size, _, seed = weights.removeprefix("random-").partition("-seed")
        return CodecConfig(random_size=size, seed=int(seed), num_codebooks=num_codebooks)
    if not weights:
        raise ModelLoadError(f"codec facts {codec} name no weights")
    return CodecConfig(pretrained=weights, num_codebooks=num_codebooks)


# --------------------------------------------------------------------------------------- mesh
def build_mesh(parallelism: ParallelismConfig) -> tuple[jax.sharding.Mesh, dict, dict]:
    """Mesh and (compute, parameter) mappings of ``parallelism``. With every size given (no -1) the
    mesh takes the first devices it needs, so a small mesh works on a larger machine."""
    from levanter.utils.mesh import create_mesh_from_axis_specs

    mesh_config = parallelism.mesh_config()
    sizes = [parallelism.replica, parallelism.data, parallelism.model]
    devices = jax.devices()
    if all(s > 0 for s in sizes):
        devices = devices[: math.prod(sizes)]
    ici, dcn = mesh_config.axis_shapes(len(devices), 1)
    mesh = create_mesh_from_axis_specs(ici_axes=ici, dcn_axes=dcn, devices=devices)
    return mesh, dict(mesh_config.resolved_compute_mapping), dict(mesh_config.resolved_param_mapping)


# ------------------------------------------------------------------------------------- vocab
def vocab_from_full_tokenizer(directory: str) -> AudioTextVocab:
    """Rebuild the `AudioTextVocab` from a full-vocabulary tokenizer (text + markers + audio ids),
    as our HF export and SODA's released models carry."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        full = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{directory}: no loadable tokenizer ({error})") from None
    text_size = full.convert_tokens_to_ids(SPECIAL_TOKENS[0])
    if not isinstance(text_size, int) or text_size == full.unk_token_id:
        raise ModelLoadError(
            f"{directory}: the tokenizer has no {SPECIAL_TOKENS[0]} token: not SODA's vocabulary layout"
        )
    audio_ids = len(full) - text_size - len(SPECIAL_TOKENS)
    if audio_ids <= 0 or audio_ids % MIMI_CODEBOOKS:
        raise ModelLoadError(
            f"{directory}: {len(full)} ids leave {audio_ids} audio ids after {SPECIAL_TOKENS[0]} at {text_size}: "
            f"not {MIMI_CODEBOOKS} codebooks"
        )
    spec = json.loads(full.backend_tokenizer.to_str())
    spec["added_tokens"] = [t for t in spec.get("added_tokens", []) if t["id"] < text_size]
    text = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token=full.bos_token,
        eos_token=full.eos_token,
        pad_token=full.pad_token,
        unk_token=full.unk_token,
    )
    vocab = AudioTextVocab(text, codebook_size=audio_ids // MIMI_CODEBOOKS)
    if vocab.text_size != text_size or vocab.size != len(full):
        raise ModelLoadError(
            f"{directory}: rebuilt vocabulary ({vocab.text_size} text ids, {vocab.size} in all) "
            f"does not match the tokenizer ({text_size}, {len(full)})"
        )
    return vocab


# -------------------------------------------------------------------------------------- model
def check_vocab_size(vocab: AudioTextVocab, model_vocab: int, where: str) -> None:
    if not vocab.size <= model_vocab < vocab.size + MAX_VOCAB_PADDING:
        raise ModelLoadError(
            f"{where}: the model has {model_vocab} vocabulary rows but the vocabulary has {vocab.size} ids"
        )


def _load_checkpoint(
    manifest: TrainingManifest | None, checkpoint: str, mesh, param_mapping
) -> tuple[Qwen3LMHeadModel, Qwen3Config]:
    from levanter.checkpoint import load_checkpoint

    if manifest is None or manifest.model is None or manifest.seq_len is None or manifest.padded_vocab_size is None:
        raise ModelLoadError(
            f"{checkpoint}: its run records no model shape (no {TRAINING_MANIFEST_FILE}, no {SUMMARY_FILE})"
        )
    config = qwen3_config(
        manifest.model,
        manifest.seq_len,
        gradient_checkpointing=False,
        scan_layers=(manifest.layer_loop or SCAN) == SCAN,
    )
    Vocab = Axis("vocab", manifest.padded_vocab_size)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(param_mapping):
        abstract = eqx.filter_eval_shape(config.build, Vocab, key=jax.random.PRNGKey(0))
        model = load_checkpoint(abstract, checkpoint, subpath="model", axis_mapping=param_mapping, mesh=mesh)
    return model, config


def _load_hf(directory: str, mesh, param_mapping) -> tuple[Qwen3LMHeadModel, Qwen3Config]:
    from levanter.compat.hf_checkpoints import HFCheckpointConverter
    from transformers.models.qwen3 import Qwen3Config as HfQwen3Config

    converter = HFCheckpointConverter(
        Qwen3Config, reference_checkpoint=directory, HfConfigClass=HfQwen3Config, tokenizer=directory
    )
    hf_config = converter.hf_config_from_hf_checkpoint(directory)
    if getattr(hf_config, "model_type", None) != "qwen3":
        raise ModelLoadError(
            f"{fileio.join(directory, HF_CONFIG_FILE)}: model_type {hf_config.model_type!r}, expected 'qwen3'"
        )
    config = dataclasses.replace(converter.config_from_hf_config(hf_config), gradient_checkpointing=False)
    with hax.partitioning.set_mesh(mesh), hax.axis_mapping(param_mapping):
        model = converter.load_pretrained(
            Qwen3LMHeadModel, ref=directory, config=config, axis_mapping=param_mapping, dtype=jnp.float32
        )
    return model, config


def is_run_dir(path: str) -> bool:
    """Whether ``path`` is a training output: it has checkpoints, a training manifest or a summary."""
    return any(
        fileio.exists(fileio.join(path, name)) for name in (CHECKPOINTS_DIR, TRAINING_MANIFEST_FILE, SUMMARY_FILE)
    )


def load_model(
    path: str,
    *,
    parallelism: ParallelismConfig | None = None,
    num_codebooks: int | None = None,
    prefer: str = "checkpoint",
) -> LoadedModel:
    """Load ``path`` (a training output or an HF directory) for generation on ``parallelism``'s mesh.

    ``num_codebooks`` overrides the recorded layout (default: the data's, else 8). ``prefer``
    ``"hf"`` loads a training output's ``hf/`` export even when checkpoints exist.
    """
    path = path.rstrip("/")
    if not fileio.exists(path):
        raise ModelLoadError(f"{path}: no such directory")
    mesh, compute_mapping, param_mapping = build_mesh(parallelism or ParallelismConfig())
    run_dir = path if is_run_dir(path) else None
    if run_dir is None and path.endswith(f"/{HF_DIR}"):
        parent = path.rsplit("/", 1)[0]
        run_dir = parent if is_run_dir(parent) else None
    manifest = read_manifest(run_dir) if run_dir else None

    is_hf_dir = fileio.exists(fileio.join(path, HF_CONFIG_FILE))  # named explicitly: load it, not the run's checkpoint
    checkpoint = None
    if not is_hf_dir and run_dir is not None and prefer != "hf":
        checkpoint = latest_checkpoint(fileio.join(run_dir, CHECKPOINTS_DIR))
    hf_dir = path if is_hf_dir else (fileio.join(run_dir, HF_DIR) if run_dir else None)
    if checkpoint is None and (hf_dir is None or not fileio.exists(fileio.join(hf_dir, HF_CONFIG_FILE))):
        raise ModelLoadError(
            f"{path}: neither a committed checkpoint under {CHECKPOINTS_DIR}/ nor an HF directory ({HF_CONFIG_FILE})"
        )

    if manifest is not None and manifest.vocabulary is not None:
        vocab = AudioTextVocab.load(manifest.vocabulary)
        recorded_books, codec = manifest.num_codebooks, manifest.codec
    else:
        tokenizer_dir = hf_dir if hf_dir and fileio.exists(fileio.join(hf_dir, HF_TOKENIZER_FILE)) else None
        if tokenizer_dir is None:
            raise ModelLoadError(
                f"{path}: no recorded data vocabulary ({TRAINING_MANIFEST_FILE}) and no {HF_TOKENIZER_FILE}"
            )
        vocab = vocab_from_full_tokenizer(tokenizer_dir)
        recorded_books, codec = None, None

    if checkpoint is not None:
        model, config = _load_checkpoint(manifest, checkpoint, mesh, param_mapping)
        source = checkpoint
    else:
        assert hf_dir is not None  # checked above: no checkpoint means an HF directory
        model, config = _load_hf(hf_dir, mesh, param_mapping)
        source = hf_dir
    check_vocab_size(vocab, model.Vocab.size, source)
    books = num_codebooks or recorded_books or (codec or {}).get("num_codebooks") or MIMI_CODEBOOKS
    codebooks_for(books)
    logger.info("loaded %s (%d vocabulary ids, %d codebooks per frame)", source, vocab.size, books)
    return LoadedModel(model, config, vocab, int(books), mesh, compute_mapping, param_mapping, source, codec)
