"""Step functions for the executor tests (importable by Ray workers and subprocesses)."""

import os
import time
from dataclasses import dataclass

from soda_jax import fileio


@dataclass(frozen=True)
class RecordConfig:
    output_path: str
    """Where the step writes out.json."""
    log_path: str
    """A shared file each run appends one line to, so tests can count runs."""
    value: int = 0
    """Written to out.json (versioned or not, as the test decides)."""
    inputs: tuple = ()
    """Paths of upstream outputs (dependencies)."""
    sleep_s: float = 0.0
    """How long the step takes."""
    fail: bool = False
    """Raise instead of succeeding."""


def record(config: RecordConfig) -> None:
    """Append 'name pid' to the log, optionally sleep or fail, then write out.json."""
    with open(config.log_path, "a") as f:
        f.write(f"{config.output_path} {os.getpid()}\n")
    time.sleep(config.sleep_s)
    if config.fail:
        raise RuntimeError(f"step asked to fail (value={config.value})")
    upstream = [fileio.read_json(fileio.join(p, "out.json"))["value"] for p in config.inputs]
    fileio.atomic_write_json(
        fileio.join(config.output_path, "out.json"), {"value": config.value, "upstream": upstream, "pid": os.getpid()}
    )


def runs(log_path: str) -> list[str]:
    """Output paths of every run recorded in the log."""
    if not os.path.exists(log_path):
        return []
    with open(log_path) as f:
        return [line.split()[0] for line in f if line.strip()]


@dataclass(frozen=True)
class WhereConfig:
    output_path: str
    """Where where.json goes."""


def where(config: WhereConfig) -> None:
    """Record the process that ran the step and whether it was a Ray worker."""
    import ray

    worker = ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    fileio.atomic_write_json(fileio.join(config.output_path, "where.json"), {"pid": os.getpid(), "ray_worker": worker})


def race_in_threads(count: int, run) -> None:
    """Call ``run()`` from ``count`` threads at once; re-raise the first error any of them hit."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=count) as pool:
        for future in [pool.submit(run) for _ in range(count)]:
            future.result()


@dataclass(frozen=True)
class PausableConfig:
    output_path: str
    """Where result.json goes."""
    control_dir: str
    """The step writes ``started-{pid}`` here, then waits for the test to create ``go-{pid}``."""


def pausable(config: PausableConfig) -> None:
    """Announce the attempt, wait for the test's go-ahead, write a shard file, then result.json."""
    pid = os.getpid()
    with open(os.path.join(config.control_dir, f"started-{pid}"), "w"):
        pass
    while not os.path.exists(os.path.join(config.control_dir, f"go-{pid}")):
        time.sleep(0.05)
    fileio.atomic_write_json(fileio.join(config.output_path, "shards", "0.json"), {"pid": pid})
    fileio.atomic_write_json(fileio.join(config.output_path, "result.json"), {"pid": pid})


@dataclass(frozen=True)
class ShardFailConfig:
    output_path: str
    """Unused: the step fails before writing."""


def fail_on_shard(item: int) -> int:
    if item == 1:
        raise ValueError(f"shard {item} is bad\nsecond line of the message")
    return item


def fail_in_shards(config: ShardFailConfig) -> None:
    """Map over shards with `parallel_map` (Ray tasks inside the step's task); shard 1 raises."""
    from soda_jax.execution.parallel import parallel_map

    parallel_map(fail_on_shard, [0, 1])
