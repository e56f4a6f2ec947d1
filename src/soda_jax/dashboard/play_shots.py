"""In-context examples for N-shot ASR on the playground: a LibriSpeech-layout split under the prefix.

A shot set is a split directory (``.../librispeech/dev-clean``, as the evaluation's N-shot examples
come: `soda_jax.eval.asr`); the splits of every step output's ``librispeech/`` are offered and any
other split directory under the prefix can be typed. Shots are drawn as the evaluation draws them
(`soda_jax.inference.prompts.choose_shots` over the first `SHOT_POOL` utterances, seeded by the
request's seed) and their transcripts normalised as SODA's script does.
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.dashboard.paths import OutsidePrefix
from soda_jax.dashboard.play_models import subdirectories
from soda_jax.dashboard.store import PrefixStore
from soda_jax.eval.asr import AsrTask
from soda_jax.eval.normalize import soda_normalize
from soda_jax.eval.readers import BadInput, read_librispeech
from soda_jax.inference.prompts import choose_shots

LIBRISPEECH_DIR = "librispeech"
"""Where a step output keeps a LibriSpeech-layout task set (`soda_jax.eval.miniset`)."""
SHOT_POOL = AsrTask.shot_pool
"""Shots are drawn from the first this many utterances of the split (the evaluation's pool)."""
MAX_SHOTS = 8
"""Most in-context examples one playground request may ask for."""


class BadShotSet(ValueError):
    """A shot set that cannot give the shots asked for (the message names it)."""


def shot_sets(store: PrefixStore) -> list[str]:
    """Split directories (relative to the prefix) of every step output's ``librispeech/``."""
    found: list[str] = []
    for key in store.experiment_keys():
        for step in store.experiment(key, with_steps=False).steps:
            if not step.rel:
                continue
            root = f"{step.rel}/{LIBRISPEECH_DIR}"
            for split in subdirectories(store.paths.resolve(root).url):
                if f"{root}/{split}" not in found:
                    found.append(f"{root}/{split}")
    return found


def resolve_shot_set(store: PrefixStore, requested: str) -> str:
    """The split directory ``requested`` names, inside the prefix (`BadShotSet` otherwise)."""
    try:
        resolved = store.paths.resolve(requested.strip())
    except OutsidePrefix:
        raise BadShotSet(f"shot set {requested!r} is outside the prefix {store.prefix}") from None
    if not resolved.rel or not fileio.exists(resolved.url):
        raise BadShotSet(f"shot set {requested!r}: no such directory under {store.prefix}")
    return resolved.url


def draw_shots(split_dir: str, num_shots: int, seed: int) -> list[tuple[str, str]]:
    """``num_shots`` (audio file, normalised transcript) pairs of the split at ``split_dir``."""
    root, _, split = split_dir.rstrip("/").rpartition("/")
    pool: list[tuple[str, str]] = []
    try:
        for utterance in read_librispeech(root, split):
            if len(pool) >= SHOT_POOL:
                break
            if isinstance(utterance, BadInput):
                continue
            path = utterance.audio.path
            if path and fileio.exists(path):
                pool.append((path, soda_normalize(utterance.text)))
    except FileNotFoundError as error:
        raise BadShotSet(f"shot set {split_dir}: {error}") from None
    if len(pool) < num_shots:
        raise BadShotSet(f"shot set {split_dir}: {len(pool)} usable utterances, {num_shots} shots asked")
    return [pool[i] for i in choose_shots(len(pool), num_shots, item_index=0, seed=seed)]
