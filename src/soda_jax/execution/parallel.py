"""Ray, used in one place: starting it, running a step as a task, mapping over shards.

Without a cluster address (``--ray_address`` or ``RAY_ADDRESS``) a local Ray is started, so the
same experiment runs on a laptop, in CI and on a TPU pod. On a cluster, a step that asks for a TPU
slice runs on every host of it (`soda_jax.execution.tpu`), or fails after waiting for it; only a
local run trains such a step on CPU, and says so.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

from soda_jax.execution.step import Resources

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

GIB = 1024**3
FORWARDED_ENV = ("STORAGE_EMULATOR_HOST", "SODA_PREFIX", "HF_HUB_OFFLINE", "XLA_FLAGS", "JAX_PLATFORMS")
"""Environment the driver passes on to Ray workers (storage endpoints, offline mode, devices)."""


_ON_CLUSTER = {"value": False}
"""Whether `ensure_ray` connected to a cluster (an address) rather than starting a local Ray."""


def on_cluster() -> bool:
    """True when this driver runs against a Ray cluster: TPU requests are then never dropped."""
    return _ON_CLUSTER["value"]


def ensure_ray(address: str | None = None, runtime_env: dict[str, Any] | None = None) -> None:
    """Connect to the cluster at ``address`` (or RAY_ADDRESS), else start a local Ray once.

    ``runtime_env``: a Ray runtime environment to add to the driver's module path and forwarded
    variables (its ``env_vars`` merged, its other keys as given), e.g. a `soda launch` job's."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    _ON_CLUSTER["value"] = bool(address) and address != "local"
    # Workers must import what the driver imports (test modules, experiment files): give them
    # the driver's module search path.
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
    env |= {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    extra = dict(runtime_env or {})
    runtime = {**extra, "env_vars": {**env, **extra.pop("env_vars", {})}}
    if address:
        ray.init(address=address, runtime_env=runtime, log_to_driver=True)
    else:
        # "local": start our own. A bare ray.init() would join the last cluster started on this host
        # (/tmp/ray/ray_current_cluster): another experiment's, or a dead one it then waits for.
        ray.init(
            address="local",
            include_dashboard=False,
            runtime_env=runtime,
            log_to_driver=True,
            configure_logging=False,
        )
    logger.info("ray: %s", ray.cluster_resources())


def gpu_request(gpus: float, name: str) -> float:
    """The GPUs to ask Ray for: ``gpus``, except on a local run whose Ray has none (then 0, saying so:
    such a task would wait forever). On a cluster the request stands (an autoscaler may add GPU nodes)."""
    import ray

    if gpus <= 0 or on_cluster():
        return max(gpus, 0)
    available = ray.cluster_resources().get("GPU", 0)
    if available <= 0:
        logger.warning("%s asks for %s GPU(s); this local run has none: it runs on CPU", name, gpus)
        return 0
    return gpus


def granted_gpu_ids() -> list[Any]:
    """The GPU ids Ray gave the task running here ([] outside a Ray task or without GPUs)."""
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


def task_options(resources: Resources, name: str) -> dict[str, Any]:
    """Ray task options for a step's `Resources` on the cluster we are connected to."""
    import ray

    options: dict[str, Any] = {"num_cpus": resources.cpus, "name": name, "max_retries": 0}
    gpus = gpu_request(resources.gpu, f"step {name}")
    if gpus:
        options["num_gpus"] = gpus
    if resources.memory_gb is not None:
        options["memory"] = int(resources.memory_gb * GIB)
    if resources.tpu is not None:
        logger.warning(
            "step %s asks for %d x %s: this is a local run (no cluster address), so it runs on this machine's CPU",
            name,
            resources.slices,
            resources.tpu,
        )
    available = ray.cluster_resources().get("CPU", 1)
    if resources.cpus > available:
        logger.warning(
            "step %s asks for %s CPUs; the cluster has %s: using %s", name, resources.cpus, available, available
        )
        options["num_cpus"] = available
    return options


def run_as_task(fn: Callable[..., R], *args: Any, resources: Resources, name: str | None = None) -> R:
    """``fn(*args)`` as a Ray task with the step's resources; blocks and returns its result.

    A failure inside the task is re-raised as its original exception type where Ray can.
    """
    import ray

    if resources.tpu is not None and on_cluster():
        raise ValueError("a TPU step runs through run_on_tpu_slices (soda_jax.execution.tpu), not as one task")
    remote = ray.remote(fn).options(**task_options(resources, name or str(getattr(fn, "__name__", "task"))))
    try:
        return ray.get(remote.remote(*args))
    except ray.exceptions.RayTaskError as e:
        raise e.as_instanceof_cause() from None


def pickled(obj: Any) -> bytes:
    """``obj`` pickled as Ray pickles a task's arguments (cloudpickle: functions of importable modules by
    reference, local ones by value); `unpickled` reads it back, importing what it refers to."""
    from ray import cloudpickle

    return cloudpickle.dumps(obj)


def unpickled(data: bytes) -> Any:
    from ray import cloudpickle

    return cloudpickle.loads(data)


def _call_fenced(fences: tuple, fn: Callable[[T], R], item: T) -> R:
    from soda_jax.execution import fencing

    with fencing.holding(fences):
        return fn(item)


MIN_FAN_OUT = 2
"""Tasks that must fit in a local Ray's free CPUs for a map to fan out (`fan_out_reason`): each task
starts a worker that imports its function's module (jax, levanter, torch, transformers: seconds),
which one task's worth of parallelism beside the caller does not repay."""


def free_cpus() -> float:
    """CPUs free on the local Ray now, never counting the ones the calling task holds.

    ``ray.available_resources()`` is a view the raylet syncs to the GCS every few hundred
    milliseconds: read just after a task starts, it can still count that task's own CPUs as free, so
    a step alone on 2 CPUs would see 2 free and fan out beside itself. The caller's reservation is
    certain, so the free CPUs are at most the total less it."""
    import ray

    free = ray.available_resources().get("CPU", 0.0)
    context = ray.get_runtime_context()
    held = context.get_assigned_resources().get("CPU", 0.0) if context.worker.mode == ray.WORKER_MODE else 0.0
    return min(free, ray.cluster_resources().get("CPU", 0.0) - held)


def fan_out_reason(items: int, num_cpus: float, gpus: float, env: dict[str, str] | None) -> str | None:
    """Why a map of ``items`` goes to Ray tasks, or None when the calling process runs it (`parallel_map`).
    ``gpus``: each task's GPU request as `gpu_request` made it.

    The caller (a step's task, or the driver) has its modules imported and its CPU reserved: it runs
    the items itself unless a task can get what the caller lacks: more machines (a cluster, whose
    autoscaler may add nodes), a GPU, an environment that must hold before imports (``env``), or at
    least `MIN_FAN_OUT` tasks' worth of CPUs that are free now on a local Ray.
    """
    if items < 2:
        return None
    if on_cluster():
        return "a cluster"
    if gpus > 0:
        return "a GPU per task"
    if env and any(os.environ.get(k) != v for k, v in env.items()):
        return f"a worker started with {sorted(env)}"
    free = free_cpus()
    fit = int(free // num_cpus) if num_cpus > 0 else items
    if fit >= MIN_FAN_OUT:
        return f"{free:g} free CPUs"
    return None


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    num_cpus: float = 1,
    num_gpus: float = 0,
    env: dict[str, str] | None = None,
    desc: str = "tasks",
) -> list[R]:
    """``[fn(x) for x in items]``, as Ray tasks when Ray is running and they pay (`fan_out_reason`), else in
    this process.

    Each task reserves ``num_cpus`` and ``num_gpus`` (`gpu_request`: dropped on a local Ray without
    GPUs) and runs in a worker with ``env`` added to its environment (e.g. ``JAX_PLATFORMS``: such
    workers are started for these tasks, so the variables hold before anything imports JAX).
    Results keep the order of ``items``; a progress bar counts finished items. ``fn`` must be a
    top-level function (Ray pickles it).
    """
    items = list(items)
    try:
        import ray

        gpus = gpu_request(num_gpus, desc) if ray.is_initialized() and len(items) > 1 else 0
        reason = fan_out_reason(len(items), num_cpus, gpus, env) if ray.is_initialized() else None
    except ImportError:
        reason = None
    if reason is None:
        if len(items) > 1:
            logger.info("%s: %d items in this process", desc, len(items))
        return [fn(item) for item in tqdm(items, desc=desc, unit="item")]
    logger.info("%s: %d Ray tasks (%s)", desc, len(items), reason)
    from soda_jax.execution import fencing

    # The tasks commit into the step's output: they carry the step's fence (see fencing.py).
    options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": 0}
    if gpus:
        options["num_gpus"] = gpus
    if env:
        options["runtime_env"] = {"env_vars": dict(env)}
    remote = ray.remote(_call_fenced).options(**options)
    fences = fencing.held()
    refs = [remote.remote(fences, fn, item) for item in items]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="item") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                results[index[done[0]]] = ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                for ref in pending:
                    ray.cancel(ref)
                raise e.as_instanceof_cause() from None
            bar.update(1)
    return results


def shutdown_workers() -> None:
    """Stop the Ray workers this process started (flushing their logs), if any, and forget the cluster:
    the next `ensure_ray` decides afresh whether it runs against one."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _ON_CLUSTER["value"] = False
