"""The training manifest: what a run reads and how its checkpoints are laid out.

`soda_jax.training.train` writes ``{out}/training_manifest.json`` (atomically) when a run starts,
before its first step: the token caches it reads, the vocabulary, the codebooks per audio frame and
the codec of its documents, the model shape, sequence length, padded vocabulary and ``layer_loop``.
So a run is self-describing wherever it was trained, by the executor or by a direct ``train()``
call: the model loader (`soda_jax.inference.loader`), the evaluation's validation NLL and
``init_from`` read it with `read_manifest`. For a run written before the manifest existed,
`read_manifest` rebuilds what it can from the executor's record of the run's config
(``.executor_info``: the caches) and its ``summary.json`` (shape and layer loop).

Resuming a run, or branching one off another (`soda_jax.training.branching`), with a different
``layer_loop`` would read checkpoints whose layers are stored the other way: `check_layer_loop`
refuses it, naming both values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from soda_jax import fileio
from soda_jax.audio.vocab import MIMI_CODEBOOKS
from soda_jax.contracts import (
    CHECKPOINTS_DIR,
    INFO_FILE,
    LEVANTER_TOKENIZER_DIR,
    STATS_FILE,
    SUMMARY_FILE,
    TRAINING_MANIFEST_FILE,
    VOCAB_DIR,
    VOCAB_FILE,
)
from soda_jax.models.shapes import ModelShape
from soda_jax.training.checkpoints import latest_checkpoint

SCAN, UNROLLED = "scan", "unrolled"
"""The two ways a run's checkpoints store the layers (`TrainConfig.layer_loop` once resolved)."""


class LayerLoopMismatch(ValueError):
    """Checkpoints stored with one layer loop, read by a run configured with the other."""


@dataclasses.dataclass(frozen=True)
class TrainingManifest:
    """What a training run reads and how it is laid out (``training_manifest.json``)."""

    caches: dict[str, str]
    """Component name -> the token cache root the run reads (``train/``, ``validation/``)."""
    vocabulary: str | None
    """The ``vocab/`` directory of the run's vocabulary (its tokenizer's cache); None: none found."""
    num_codebooks: int | None
    """Codebooks per audio frame in the documents (the vocabulary cache's ``stats.json``); None: not recorded."""
    codec: dict[str, Any] | None
    """``codec.json`` facts of the codec that made the audio tokens; None: not recorded."""
    model: ModelShape | None
    """The model's shape; None only for an old run that never finished (no ``summary.json``)."""
    seq_len: int | None
    padded_vocab_size: int | None
    """Rows of the model's embedding matrix: the vocabulary padded for partitioning (or an ``init_from`` source's)."""
    layer_loop: str | None
    """`SCAN` or `UNROLLED`: how the checkpoints store the layers; None only for an old run that does not say."""

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["model"] = dataclasses.asdict(self.model) if self.model is not None else None
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any], where: str) -> TrainingManifest:
        """The manifest of a parsed record; a ValueError naming ``where`` when a field is missing."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in record]
        if missing or not isinstance(record.get("caches"), dict):
            raise ValueError(f"{where}: not a training manifest (missing {missing or ['caches']})")
        fields = {name: record[name] for name in names}
        fields["model"] = ModelShape(**record["model"]) if record["model"] is not None else None
        return cls(**fields)


def layer_loop_name(scan_layers: bool) -> str:
    """`SCAN` or `UNROLLED`, from a model config's ``scan_layers``."""
    return SCAN if scan_layers else UNROLLED


def check_layer_loop(recorded: str | None, current: str, *, where: str) -> None:
    """Raise `LayerLoopMismatch` (naming ``where`` and both values) unless checkpoints stored with
    ``recorded`` (None: not recorded, not checked) may be read by a run using ``current``."""
    if recorded is not None and recorded != current:
        raise LayerLoopMismatch(
            f"{where}: its checkpoints store the layers with layer_loop={recorded!r} but this run uses "
            f"layer_loop={current!r}; set layer_loop={recorded!r} (or start afresh from its hf/ export)"
        )


def check_resume(output_path: str, layer_loop: str) -> None:
    """Refuse to resume the run at ``output_path`` (it has a committed checkpoint) with a
    ``layer_loop`` other than the one its checkpoints were stored with (`LayerLoopMismatch`)."""
    if latest_checkpoint(fileio.join(output_path, CHECKPOINTS_DIR)) is None:
        return
    manifest = read_manifest(output_path)
    check_layer_loop(manifest.layer_loop if manifest else None, layer_loop, where=f"resuming {output_path}")


# ----------------------------------------------------------------------------- from the caches
def cache_layout(cache_root: str) -> tuple[int | None, dict | None]:
    """(codebooks per frame, codec facts) recorded in a cache's ``stats.json`` (None when absent)."""
    stats = fileio.read_json_or_none(fileio.join(cache_root, STATS_FILE)) or {}
    layout = stats.get("layout", stats)
    books = layout.get("num_codebooks")
    if isinstance(books, dict):
        values = sorted(set(books.values()))
        books = values[0] if len(values) == 1 else (MIMI_CODEBOOKS if MIMI_CODEBOOKS in values else max(values))
    return (int(books) if books else None), layout.get("codec")


def vocabulary_cache(caches: Mapping[str, str], tokenizer: Any) -> str | None:
    """The cache whose vocabulary the run uses: the tokenizer's (``{cache}/vocab/tokenizer``), else
    the first component with a recorded vocabulary (None: none has one)."""
    suffix = f"/{VOCAB_DIR}/{LEVANTER_TOKENIZER_DIR}"
    candidates = list(caches.values())
    if isinstance(tokenizer, str) and tokenizer.rstrip("/").endswith(suffix):
        candidates.insert(0, tokenizer.rstrip("/").removesuffix(suffix))
    return next((root for root in candidates if fileio.exists(fileio.join(root, VOCAB_DIR, VOCAB_FILE))), None)


def inputs_manifest(caches: Mapping[str, str], tokenizer: Any, **layout: Any) -> TrainingManifest:
    """The manifest of a run reading ``caches`` with ``tokenizer``; ``layout``: the model fields
    (``model``, ``seq_len``, ``padded_vocab_size``, ``layer_loop``)."""
    root = vocabulary_cache(caches, tokenizer)
    books, codec = cache_layout(root) if root is not None else (None, None)
    vocabulary = fileio.join(root, VOCAB_DIR) if root is not None else None
    return TrainingManifest(dict(caches), vocabulary, books, codec, **layout)


# ---------------------------------------------------------------------------------- read/write
def write_manifest(output_path: str, manifest: TrainingManifest) -> None:
    fileio.atomic_write_json(fileio.join(output_path, TRAINING_MANIFEST_FILE), manifest.to_json())


def read_manifest(run_dir: str) -> TrainingManifest | None:
    """The run's manifest; for a run written before manifests, one rebuilt from its executor record
    and ``summary.json``; None when neither says anything. A malformed manifest is an error naming it."""
    path = fileio.join(run_dir, TRAINING_MANIFEST_FILE)
    record = fileio.read_json_or_none(path)
    if record is not None:
        return TrainingManifest.from_json(record, path)
    return _manifest_of_old_run(run_dir)


def _manifest_of_old_run(run_dir: str) -> TrainingManifest | None:
    info = fileio.read_json_or_none(fileio.join(run_dir, INFO_FILE)) or {}
    data = (info.get("config") or {}).get("data") or {}
    summary = fileio.read_json_or_none(fileio.join(run_dir, SUMMARY_FILE))
    caches = recorded_caches(data)
    if not caches and summary is None:
        return None
    summary = summary or {}
    model = ModelShape(**summary["model"]) if "model" in summary else None
    return inputs_manifest(
        caches,
        data.get("tokenizer"),
        model=model,
        seq_len=summary.get("seq_len"),
        padded_vocab_size=summary.get("padded_vocab_size"),
        layer_loop=summary.get("layer_loop"),
    )


def recorded_caches(data: Mapping[str, Any]) -> dict[str, str]:
    """Component name -> cache root in the executor's record of a run's data config: a `MixtureSpec`'s
    ``components``, or an older levanter data config's (``cache_dir`` per component or shared)."""
    caches = {}
    for name, component in sorted((data.get("components") or {}).items()):
        if isinstance(component, str):
            caches[name] = component
        elif isinstance(component, dict) and component.get("cache_dir"):
            caches[name] = component["cache_dir"]
        elif data.get("cache_dir"):
            caches[name] = fileio.join(data["cache_dir"], name)
    return caches
