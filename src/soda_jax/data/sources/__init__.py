"""Speech corpus readers. Each module provides ``list_shards(root, languages)`` -> shards (each with a
``name``) and ``read_shard(shard, skips)`` -> `Utterance`s, skipping and counting bad input."""

from types import ModuleType

from soda_jax.data.sources import emilia, yodas2
from soda_jax.data.sources.utterance import SkipCounter, Utterance

SOURCES: dict[str, ModuleType] = {yodas2.NAME: yodas2, emilia.NAME: emilia}


def get_source(name: str) -> ModuleType:
    """The reader module for a source name ("yodas2", "emilia")."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown speech source {name!r}; known: {sorted(SOURCES)}") from None


__all__ = ["SOURCES", "SkipCounter", "Utterance", "emilia", "get_source", "yodas2"]
