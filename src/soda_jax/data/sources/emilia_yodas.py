"""Emilia-YODAS reader: the ``Emilia-YODAS/`` half of an Emilia checkout, read as `emilia` reads ``Emilia/``.

Layout, shards and skip reasons: `soda_jax.data.sources.emilia`.
"""

from __future__ import annotations

from collections.abc import Sequence

from soda_jax.data.sources.emilia import EMILIA_YODAS_DIR, Shard, list_release_shards, read_shard

NAME = "emilia_yodas"


def list_shards(root: str, languages: Sequence[str] = ()) -> list[Shard]:
    """Every ``Emilia-YODAS/`` tar under ``root`` (only ``languages`` when given), sorted by name."""
    return list_release_shards(root, EMILIA_YODAS_DIR, languages)


__all__ = ["NAME", "Shard", "list_shards", "read_shard"]
