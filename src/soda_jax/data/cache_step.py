"""The sharded token-cache step that ``interleave`` and ``tokenize_text`` both are.

Input shards are processed in parallel (`parallel_map`: Ray tasks when Ray runs), each into its
own sub-caches, and each restartable: a finished shard leaves its stats in
``{out}/shard_stats/{shard}.json``, so a rerun after a crash redoes only unfinished shards. Then
the sub-caches are joined into ``{out}/train`` and ``{out}/validation``, and ``{out}/vocab/`` and
``{out}/stats.json`` are written (docs/data-contracts.md section 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import SHARD_STATS_DIR, SPLITS
from soda_jax.data import caches
from soda_jax.data.cache_stats import SplitStats, write_stats
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.execution.parallel import parallel_map

Job = TypeVar("Job")


def finished_shard(output_path: str, shard_name: str) -> dict | None:
    """The stats a finished shard saved, or None when it has to (re)run."""
    return fileio.read_json_or_none(fileio.join(output_path, SHARD_STATS_DIR, f"{shard_name}.json"))


def finish_shard(output_path: str, shard_name: str, stats: Mapping[str, SplitStats], **counts: Any) -> dict:
    """A shard's result (per-split stats, extra counts, ``shards: 1``), saved as its done marker."""
    result: dict[str, Any] = {split: stats[split].as_dict() for split in SPLITS}
    result.update(counts)
    result["shards"] = 1
    fileio.atomic_write_json(fileio.join(output_path, SHARD_STATS_DIR, f"{shard_name}.json"), result)
    return result


def build_sharded_cache(
    output_path: str,
    process_shard: Callable[[Job], dict],
    jobs: Sequence[Job],
    *,
    sub_caches: Sequence[str],
    vocab: AudioTextVocab,
    layout: Mapping[str, Any],
    desc: str,
    check: Callable[[Sequence[dict]], None] | None = None,
) -> dict:
    """Run ``process_shard`` over ``jobs``, join their ``sub_caches`` per split, save the vocabulary
    and write the merged stats with ``layout``; returns the stats. ``process_shard`` must be a
    top-level function (Ray pickles it). ``check`` sees every shard's stats before anything is
    joined and raises to fail the step (e.g. the skip budget, `soda_jax.data.skip_budget`)."""
    shard_stats = parallel_map(process_shard, jobs, desc=desc)
    if check is not None:
        check(shard_stats)
    for split in SPLITS:
        caches.finalize_sharded_cache(fileio.join(output_path, split), list(sub_caches))
    save_cache_vocab(vocab, output_path)
    return write_stats(output_path, shard_stats, layout)
