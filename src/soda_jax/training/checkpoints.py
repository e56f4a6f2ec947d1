"""Where levanter keeps a run's checkpoints, and clearing out the ones that never committed.

levanter writes a checkpoint's arrays first and its ``metadata.json`` last, as the commit marker,
but not atomically (`soda_jax.training.levanter_compat`). A run killed mid-checkpoint leaves a
directory without a marker, or with an empty or torn one: levanter's discovery skips it (logging
a traceback), but a resumed run would later write the same step into its half-written store.
Neither committed, so both are removed (and logged) before the checkpointer looks; the run resumes
from the last committed checkpoint.
"""

from __future__ import annotations

import json
import logging

from levanter.checkpoint import discover_latest_checkpoint

from soda_jax import fileio
from soda_jax.training.levanter_compat import CHECKPOINT_DIR_PREFIX, COMMIT_MARKER

logger = logging.getLogger(__name__)


def latest_checkpoint(checkpoint_root: str) -> str | None:
    """The latest committed checkpoint directory under ``checkpoint_root`` (None: none, or no root)."""
    return discover_latest_checkpoint(checkpoint_root) if fileio.exists(checkpoint_root) else None


def remove_checkpoint(path: str, why: str) -> None:
    fs, plain = fileio.filesystem(path)
    fs.rm(plain, recursive=True)
    logger.warning("removed checkpoint %s: %s", path, why)


def discard_uncommitted_checkpoints(checkpoint_root: str) -> list[str]:
    """Remove the checkpoints under ``checkpoint_root`` without a readable commit marker; returns them."""
    if not fileio.exists(checkpoint_root):
        return []
    fs, root = fileio.filesystem(checkpoint_root)
    discarded = []
    for entry in sorted(fs.ls(root, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(CHECKPOINT_DIR_PREFIX):
            continue
        path = fileio.join(checkpoint_root, name)
        marker = fileio.join(path, COMMIT_MARKER)
        if not fileio.exists(marker):
            remove_checkpoint(path, f"no {COMMIT_MARKER}: the run stopped while writing it")
            discarded.append(path)
            continue
        try:
            int(json.loads(fileio.read_text(marker))["step"])
        except (ValueError, KeyError, TypeError) as error:
            remove_checkpoint(path, f"its {COMMIT_MARKER} is torn ({error}): the run stopped while committing it")
            discarded.append(path)
    return discarded
