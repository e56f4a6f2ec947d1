"""SODA's data, as steps: raw corpora -> Mimi codes -> interleaved caches, plus web text.

    python experiments/soda_data.py --prefix gs://BUCKET/soda --dry_run --list_shards
    python experiments/soda_data.py --prefix gs://BUCKET/soda \\
        --yodas2_root hf://datasets/espnet/yodas2@COMMIT --emilia_root gs://BUCKET/raw/emilia ...

Where each corpus lives is its own setting (`SodaDataRoots`): a flag, else an environment variable,
else a folder under ``$SODA_RAW_ROOT``. Each may be a local directory, ``gs://``, ``s3://`` or
``hf://datasets/{repo}@{revision}`` (read from the hub, or copied into the prefix first with
``--copy_from_hub``). The layouts are the published ones (docs/soda-data.md)::

    yodas2_root       YODAS2 (espnet/yodas2): data/{subset}/{audio,text,duration}/ (every en* subset is read)
    emilia_root       a checkout of amphion/Emilia-Dataset: Emilia/{LANG}/*.tar and Emilia-YODAS/{LANG}/*.tar,
                      read by two components (emilia, emilia_yodas), each its own subtree, English only
    nemotron_cc_root  Nemotron-CC: quality=*/kind=*/kind2=*/*.jsonl.zstd (hq_actual is read)
    mls_root          MLS English: {split}/transcripts.txt + {split}/audio/..., or its parquet release

The text tokenizer (Llama-3's) and Mimi's weights are settings too: a local directory, or a hub
repository at a pinned commit, which a `default_download` step copies into the prefix (gated ones
need ``$HF_TOKEN`` on every worker; the executor checks every input can be read before it runs).
English only, full Mimi (first 8 codebooks): SODA's released vocabulary (144,644 ids).

``--list_shards`` prints, per corpus, the shards its reader finds at its root (and stops there
unless executor flags follow: ``--dry_run`` shows what each step would do).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig
from soda_jax.contracts import HF_CONFIG_FILE, HF_TOKENIZER_FILE
from soda_jax.data.sources import get_source
from soda_jax.data.text_sources import list_text_files
from soda_jax.execution import ExecutorStep, Resources, executor_main
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.recipes.data_mixes import EMILIA, EMILIA_YODAS, MLS, NEMOTRON_CC, YODAS2, mixture_config
from soda_jax.recipes.defaults import (
    default_download,
    default_interleave,
    default_tokenize,
    default_tokenize_text,
)

SODA_RAW_ROOT_ENV = "SODA_RAW_ROOT"
"""Environment variable naming the directory (or bucket URL) under which a corpus without its own
setting is looked for."""
DEFAULT_RAW_ROOT = "raw"
"""Where the raw corpora are looked for when ``$SODA_RAW_ROOT`` is unset (relative: under the cwd)."""
LLAMA3_TOKENIZER = "meta-llama/Meta-Llama-3-8B"
"""SODA's text tokenizer's hub repository (gated: Meta's license must be accepted)."""
LLAMA3_COMMIT = "8cde5ca8380496c9a6cc7ef3a8b46a0372a1d920"
"""The commit of `LLAMA3_TOKENIZER` that is read (its tokenizer files are those of every later commit)."""
MIMI_REPO = "kyutai/mimi"
MIMI_COMMIT = "89091b3e466eb6a9d11e537bf26b144f194978f7"
"""The commit of Kyutai's Mimi repository whose weights are read."""
MIMI = CodecConfig(pretrained=MIMI_REPO)
"""Kyutai's released Mimi, first 8 codebooks, by hub id (loaded by transformers at its latest commit)."""
TOKENIZER_FILES = (HF_CONFIG_FILE, HF_TOKENIZER_FILE, "tokenizer_config.json", "special_tokens_map.json")
"""What of a tokenizer repository is copied (transformers' AutoTokenizer reads these)."""
MIMI_FILES = (HF_CONFIG_FILE, "model.safetensors", "preprocessor_config.json")
"""What of Mimi's repository is copied (transformers' MimiModel reads these)."""
LANGUAGES = ("en",)
"""SODA's speech is English."""
SPEECH_SOURCES = {YODAS2: "yodas2", EMILIA_YODAS: "emilia_yodas", EMILIA: "emilia", MLS: "mls"}
"""Mix component -> the reader of its published layout (`soda_jax.data.sources`)."""
COMPONENT_ROOTS = {
    YODAS2: "yodas2_root",
    EMILIA_YODAS: "emilia_root",
    EMILIA: "emilia_root",
    MLS: "mls_root",
    NEMOTRON_CC: "nemotron_cc_root",
}
"""Mix component -> the `SodaDataRoots` setting holding its corpus (the Emilia halves share one checkout)."""
ENGLISH_FILES = {
    "yodas2_root": ("data/en*",),
    "emilia_root": ("Emilia/EN", "Emilia-YODAS/EN"),
    "nemotron_cc_root": ("*quality=high/kind=actual/kind2=actual",),
    "mls_root": ("data/train-*", "train"),
}
"""What ``--copy_from_hub`` copies of each corpus repository: the English subsets, Nemotron-CC's
hq_actual, MLS's train split (parquet release or OpenSLR layout)."""
TOKENIZE_CPUS = 4
"""CPUs per tokenization shard task (Mimi encoding on CPU hosts)."""
TOKENIZE_ON_CPU, TOKENIZE_ON_GPU = "cpu", "gpu"
"""`SodaDataRoots.tokenize_on` values besides a TPU slice type."""
TPU_HOST_BATCH_SECONDS = 4 * 32 * 30.0
"""Padded audio per encoder batch on a TPU host: 4 chips x 32 utterances of 30 s (docs/tpu.md)."""


def _setting(variable: str, default: Callable[[], str]) -> Any:
    """A field whose default is ``$variable``, else ``default()``, read when the settings are made."""
    return field(default_factory=lambda: os.environ.get(variable) or default())


def _raw(folder: str) -> Callable[[], str]:
    return lambda: fileio.join(os.environ.get(SODA_RAW_ROOT_ENV) or DEFAULT_RAW_ROOT, folder)


@dataclass(frozen=True)
class SodaDataRoots:
    """Where SODA's corpora and assets live. Each setting: its flag, else its environment variable
    (``$SODA_YODAS2_ROOT`` ...), else the default shown; any fsspec URL or ``hf://...@{revision}``."""

    yodas2_root: str = _setting("SODA_YODAS2_ROOT", _raw("yodas2"))
    """YODAS2 as published (espnet/yodas2): the dataset root, holding ``data/{subset}/``."""
    emilia_root: str = _setting("SODA_EMILIA_ROOT", _raw("emilia"))
    """A checkout of amphion/Emilia-Dataset, holding ``Emilia/`` and ``Emilia-YODAS/`` (two components)."""
    nemotron_cc_root: str = _setting("SODA_NEMOTRON_CC_ROOT", _raw("nemotron_cc"))
    """Nemotron-CC as published (``quality=*/kind=*/kind2=*/*.jsonl.zstd``, or its parquet release)."""
    mls_root: str = _setting("SODA_MLS_ROOT", _raw("mls"))
    """MLS English as published (OpenSLR ``{split}/transcripts.txt`` + ``{split}/audio``, or parquet)."""
    tokenizer: str = _setting("SODA_TOKENIZER", lambda: f"hf://{LLAMA3_TOKENIZER}@{LLAMA3_COMMIT}")
    """The text tokenizer: a local directory, or ``hf://{repo}@{commit}`` (copied into the prefix)."""
    mimi: str = _setting("SODA_MIMI", lambda: f"hf://{MIMI_REPO}@{MIMI_COMMIT}")
    """Mimi's weights: a local directory, or ``hf://{repo}@{commit}`` (copied into the prefix)."""
    tokenize_on: str = _setting("SODA_TOKENIZE_ON", lambda: TOKENIZE_ON_CPU)
    """Where Mimi encodes: ``cpu`` (torch, `TOKENIZE_CPUS` per shard task on the CPU pool), ``gpu`` (torch,
    one GPU per shard task), or a TPU slice type such as ``v5p-128`` (the JAX Mimi, one process per host,
    each encoding its share of the shards over its chips; docs/tpu.md). A TPU slice is versioned (JAX codec)."""
    copy_from_hub: bool = field(default_factory=lambda: os.environ.get("SODA_COPY_FROM_HUB", "") not in ("", "0"))
    """Copy ``hf://`` corpora into the prefix first (`default_download`, English parts only) and read
    the copy; else the readers stream them from the hub. ``$SODA_COPY_FROM_HUB=1``."""


class SodaSteps:
    """The steps of SODA's data for one `SodaDataRoots`, each made once (the two Emilia components
    share their checkout's download, every component the tokenizer's)."""

    def __init__(self, roots: SodaDataRoots):
        self.roots = roots
        self._downloads: dict[tuple[str, tuple[str, ...]], ExecutorStep] = {}

    def hub_copy(self, location: str, include: Sequence[str]) -> ExecutorStep:
        """The `default_download` step copying ``include`` of the hub repository at ``location``."""
        hub = fileio.hub_location(location)
        assert hub is not None
        key = (location, tuple(include))
        if key not in self._downloads:
            self._downloads[key] = default_download(f"hub/{hub.repo_id}", location, include=include)
        return self._downloads[key]

    def asset(self, location: str, files: Sequence[str]) -> Any:
        """A tokenizer or codec directory: a hub repository's files copied into the prefix, else the location."""
        return self.hub_copy(location, files) if fileio.hub_location(location) else location

    def corpus(self, component: str) -> Any:
        """Where a component's tokenization reads: its root, or (``copy_from_hub``) the copy of its hub repository."""
        setting = COMPONENT_ROOTS[component]
        root = getattr(self.roots, setting)
        if self.roots.copy_from_hub and fileio.hub_location(root):
            return self.hub_copy(root, ENGLISH_FILES[setting])
        return root

    def speech_cache(self, component: str) -> ExecutorStep:
        """``tokenized/{component}-interleaved``: the component's Mimi codes, interleaved with its transcripts."""
        codec = CodecConfig(pretrained=self.asset(self.roots.mimi, MIMI_FILES))  # a step: its output directory
        codes = default_tokenize(
            component,
            self.corpus(component),
            source=SPEECH_SOURCES[component],
            languages=LANGUAGES,
            codec=codec,
            **self.tokenize_placement(),
        )
        return default_interleave(component, codes, tokenizer=self.asset(self.roots.tokenizer, TOKENIZER_FILES))

    def tokenize_placement(self) -> dict[str, Any]:
        """`default_tokenize`'s placement arguments for ``roots.tokenize_on``."""
        where = self.roots.tokenize_on
        if where == TOKENIZE_ON_CPU:
            return {"cpus": TOKENIZE_CPUS}
        if where == TOKENIZE_ON_GPU:
            return {"resources": Resources(cpus=TOKENIZE_CPUS, gpu=1)}
        return {
            "resources": Resources(tpu=tpu_slice(where).name),
            "codec_backend": "jax",
            "batch_seconds": TPU_HOST_BATCH_SECONDS,
        }

    def text_cache(self) -> ExecutorStep:
        """``tokenized/nemotron_cc-text``: Nemotron-CC's hq_actual, tokenized."""
        return default_tokenize_text(
            NEMOTRON_CC, self.corpus(NEMOTRON_CC), tokenizer=self.asset(self.roots.tokenizer, TOKENIZER_FILES)
        )

    def caches(self, components: Sequence[str]) -> dict[str, ExecutorStep]:
        """Component name -> the step writing its token cache."""
        return {name: self.text_cache() if name == NEMOTRON_CC else self.speech_cache(name) for name in components}


FINAL_COMPONENTS = (YODAS2, EMILIA_YODAS, EMILIA, NEMOTRON_CC)
"""The components of SODA's final mix."""


def soda_final_caches(roots: SodaDataRoots | None = None) -> dict[str, ExecutorStep]:
    """Component name -> the step writing its token cache, for every component of ``soda_final``."""
    return SodaSteps(roots or SodaDataRoots()).caches(FINAL_COMPONENTS)


def soda_data_caches(roots: SodaDataRoots | None = None) -> dict[str, ExecutorStep]:
    """`soda_final_caches` and MLS-En's (the fourth corpus of SODA's data-source study)."""
    return SodaSteps(roots or SodaDataRoots()).caches((*FINAL_COMPONENTS, MLS))


def soda_final_data(roots: SodaDataRoots | None = None):
    """SODA's final mix (YODAS2 0.516, Emilia-YODAS 0.288, Emilia 0.146, text 0.05) over its caches."""
    return mixture_config("soda_final", soda_final_caches(roots))


def corpus_shards(roots: SodaDataRoots, component: str) -> list[str]:
    """The shard names a component's reader lists at its root (raises when the root cannot be read)."""
    root = getattr(roots, COMPONENT_ROOTS[component])
    fileio.check_readable(root)
    if component == NEMOTRON_CC:
        return [f.shard_name for f in list_text_files(root)]
    return [shard.name for shard in get_source(SPEECH_SOURCES[component]).list_shards(root, LANGUAGES)]


def print_shards(roots: SodaDataRoots, components: Sequence[str] = tuple(COMPONENT_ROOTS)) -> bool:
    """Print every component's shards (or why its root cannot be read); True when all could be listed."""
    listed = True
    for component in components:
        root = getattr(roots, COMPONENT_ROOTS[component])
        try:
            names = corpus_shards(roots, component)
        except (OSError, ValueError) as e:
            print(f"{component}: cannot list {root}: {e}")
            listed = False
            continue
        print(f"{component}: {len(names)} shards at {root}")
        print("".join(f"  {name}\n" for name in names), end="")
    return listed


def parse_roots(argv: Sequence[str]) -> tuple[SodaDataRoots, bool, list[str]]:
    """(settings, --list_shards, the executor's own flags) from a command line."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for setting in dataclasses.fields(SodaDataRoots):
        if setting.type in (bool, "bool"):
            parser.add_argument(f"--{setting.name}", action="store_true", default=None)
        else:
            parser.add_argument(f"--{setting.name}", default=None)
    parser.add_argument("--list_shards", action="store_true")
    known, rest = parser.parse_known_args(list(argv))
    given = {name: value for name, value in vars(known).items() if value is not None and name != "list_shards"}
    return SodaDataRoots(**given), known.list_shards, rest


def main(argv: Sequence[str]) -> None:
    roots, list_shards, executor_args = parse_roots(argv)
    if list_shards:
        listed = print_shards(roots)
        if not executor_args:
            raise SystemExit(0 if listed else 1)
    steps = list(soda_data_caches(roots).values())
    executor_main(steps, description="SODA's data: Mimi codes and token caches of its four corpora", args=executor_args)
