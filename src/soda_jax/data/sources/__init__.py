"""Speech corpus readers: each module (`yodas2`, `emilia`, `emilia_yodas`, `mls`) is a `SpeechSource`."""

from soda_jax.data.sources import emilia, emilia_yodas, mls, yodas2
from soda_jax.data.sources.utterance import SkipCounter, SpeechSource, Utterance

SOURCES: dict[str, SpeechSource] = {
    yodas2.NAME: yodas2,
    emilia.NAME: emilia,
    emilia_yodas.NAME: emilia_yodas,
    mls.NAME: mls,
}
"""The registry of readers by source name (a `TokenizeAudioConfig.source`)."""


def get_source(name: str) -> SpeechSource:
    """The reader for a source name ("yodas2", "emilia", "emilia_yodas", "mls")."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown speech source {name!r}; known: {sorted(SOURCES)}") from None


__all__ = [
    "SOURCES",
    "SkipCounter",
    "SpeechSource",
    "Utterance",
    "emilia",
    "emilia_yodas",
    "get_source",
    "mls",
    "yodas2",
]
