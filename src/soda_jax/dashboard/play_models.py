"""The playground's models: which directories it may load, and one loaded copy of each.

A model is a training output under the prefix (a step of any experiment whose output holds
``summary.json`` and a committed checkpoint or an ``hf/`` export, what `soda_jax.inference.loader`
loads), or an HF directory. HF directories are confined like everything else: anywhere under the
prefix (offered when they sit in ``{prefix}/models/NAME/``), or under a model root the server was
started with (``create_app(..., model_roots=...)``), each root confined by its own `PrefixPaths`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import CHECKPOINTS_DIR, HF_CONFIG_FILE, HF_DIR, SUMMARY_FILE
from soda_jax.dashboard.paths import OutsidePrefix, PrefixPaths
from soda_jax.dashboard.store import PrefixStore
from soda_jax.inference.loader import LoadedModel, load_model

MODELS_DIR = "models"
"""``{prefix}/models/NAME/``: HF directories the playground offers (any other under the prefix can be typed)."""
MAX_CACHED_MODELS = 2
"""Loaded models kept at once (least recently used dropped first): a second checkpoint does not
evict the first, a third does."""


class NotAModel(ValueError):
    """A requested checkpoint the playground will not load (outside the prefix, or no model there)."""


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    value: str
    """What the form submits: the path relative to the prefix, or an absolute path under a model root."""
    url: str
    """The directory, for `load_model`."""
    kind: str
    """``training output`` or ``HF directory``."""


def is_model_dir(url: str) -> str | None:
    """The kind of model at ``url`` (`ModelChoice.kind`), or None when `load_model` would refuse it."""
    if fileio.exists(fileio.join(url, HF_CONFIG_FILE)):
        return "HF directory"
    if fileio.exists(fileio.join(url, SUMMARY_FILE)) and (
        fileio.exists(fileio.join(url, CHECKPOINTS_DIR)) or fileio.exists(fileio.join(url, HF_DIR, HF_CONFIG_FILE))
    ):
        return "training output"
    return None


class ModelDirectories:
    """Where the playground may load models from: the prefix and the extra model roots."""

    def __init__(self, store: PrefixStore, model_roots: Sequence[str] = ()):
        self.store = store
        self.roots = [PrefixPaths(root) for root in model_roots]

    def resolve(self, requested: str) -> ModelChoice:
        """The model directory ``requested`` names; `NotAModel` (naming it) when it is outside every
        allowed place or holds no model."""
        requested = requested.strip()
        if not requested:
            raise NotAModel("choose a checkpoint")
        value, url = None, None
        for paths in [self.store.paths, *self.roots]:
            try:
                resolved = paths.resolve(requested)
            except OutsidePrefix:
                continue
            value, url = (resolved.rel if paths is self.store.paths else resolved.url), resolved.url
            break
        if url is None or value is None:
            allowed = ", ".join([self.store.prefix, *(p.prefix for p in self.roots)])
            raise NotAModel(f"checkpoint {requested!r} is outside the places models are loaded from ({allowed})")
        kind = is_model_dir(url)
        if kind is None:
            raise NotAModel(
                f"checkpoint {requested!r}: neither a training output ({SUMMARY_FILE} with {CHECKPOINTS_DIR}/ or "
                f"{HF_DIR}/) nor an HF directory ({HF_CONFIG_FILE})"
            )
        return ModelChoice(value, url, kind)

    def choices(self) -> list[ModelChoice]:
        """Every model offered: training outputs of the prefix's experiments, ``{prefix}/models/*``,
        and each model root (itself or its subdirectories)."""
        found: dict[str, ModelChoice] = {}
        for key in self.store.experiment_keys():
            for step in self.store.experiment(key, with_steps=False).steps:
                if step.rel and step.rel not in found:
                    self._offer(found, self.store.paths, step.rel)
        for name in subdirectories(self.store.paths.resolve(MODELS_DIR).url):
            self._offer(found, self.store.paths, f"{MODELS_DIR}/{name}")
        for paths in self.roots:
            self._offer(found, paths, "")
            for name in subdirectories(paths.prefix):
                self._offer(found, paths, name)
        return list(found.values())

    def _offer(self, found: dict[str, ModelChoice], paths: PrefixPaths, rel: str) -> None:
        try:
            resolved = paths.resolve(rel)
        except OutsidePrefix:
            return
        kind = is_model_dir(resolved.url)
        value = resolved.rel if paths is self.store.paths else resolved.url
        if kind and value not in found:
            found[value] = ModelChoice(value, resolved.url, kind)


def subdirectories(url: str) -> list[str]:
    """Names of the directories in ``url`` (none when it is missing), hidden ones left out."""
    fs, path = fileio.filesystem(url)
    try:
        entries = fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory"]
    return sorted(n for n in names if not n.startswith("."))


def model_key(url: str) -> tuple[str, str | None]:
    """What identifies a loaded model: the directory and its latest committed checkpoint (a run that
    commits a newer one is loaded afresh)."""
    from soda_jax.training.checkpoints import latest_checkpoint

    return url, latest_checkpoint(fileio.join(url, CHECKPOINTS_DIR))


@dataclasses.dataclass(frozen=True)
class Cached:
    loaded: LoadedModel
    codec: Any
    """The `MimiCodec` that made the model's data (``loaded.mimi_codec()``)."""


class ModelCache:
    """Loaded models by `model_key`, at most ``capacity``. Loads are serialised: a second request for
    a model being loaded waits for that load instead of starting another."""

    def __init__(self, capacity: int = MAX_CACHED_MODELS, load: Callable[[str], LoadedModel] = load_model):
        self.capacity = capacity
        self._load = load
        self._models: collections.OrderedDict[tuple[str, str | None], Cached] = collections.OrderedDict()
        self._loading = threading.Lock()
        self._lock = threading.Lock()
        """Guards ``_models`` and ``loads`` (held briefly, never during a load)."""
        self.loads: collections.Counter[str] = collections.Counter()
        """How many times each directory was loaded (a reload only after eviction or a newer checkpoint)."""

    def get(self, url: str) -> tuple[Cached, bool]:
        """The model at ``url`` and whether this call loaded it (False: it was already loaded)."""
        key = model_key(url)
        with self._loading:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key], False
            loaded = self._load(url)
            cached = Cached(loaded, loaded.mimi_codec())
            with self._lock:
                self._models[key] = cached
                self.loads[url] += 1
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return cached, True

    def loaded(self) -> list[str]:
        """The directories loaded now, least recently used first."""
        with self._lock:
            return [url for url, _ in self._models]

    def load_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.loads)
