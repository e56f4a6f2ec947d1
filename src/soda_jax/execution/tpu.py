"""A step on a TPU slice: one process per host, joined into one ``jax.distributed`` job, through Ray's TPU API.

Any step function can run this way: it runs once on every host, and `current_host` tells it which
host it is (process id, process count). A training step shards one program over all hosts; a step
that splits work, such as tokenization, takes its `host_share` of the items and waits for its peers
(`wait_for_peers`) before process 0 writes what covers them all.

`run_on_tpu_slices` reserves ``slices`` whole slices of a type with ``ray.util.tpu.SlicePlacementGroup``
(one bundle per host, gang-scheduled by the slice-name label the first host's ``TPU-{type}-head``
resource pins), waits for them up to ``Resources.tpu_wait_s`` (an autoscaler brings them up when
the request appears; past the wait the step fails: it never runs on CPU instead), then starts the
step on every host with ``ray.util.tpu.run_on_slice``. Each host's process joins the job as
``slice * hosts_per_slice + worker id`` (the ``ray.io/tpu-worker-id`` label of its node), with the
coordinator on worker 0 of slice 0; across slices it sets the MEGASCALE variables
(``get_tpu_coordinator_env_vars``), and levanter's mesh puts the slices on its ``replica_dcn`` axis.

When a host dies (a preempted slice) the other hosts' tasks are cancelled, the slices released,
and the step starts again, up to ``Resources.preemption_retries`` times; a training step resumes
from its last checkpoint, a tokenization from its finished shards. Each attempt is kept in the step's
provenance (``previous_attempts``).

Emulation (tests, docs/tpu.md): a Ray node started with ``SODA_EMULATED_TPU=1`` in its environment
and TPU labels/resources but no chips runs its host process on ``chips_per_host`` CPU devices with
gloo collectives, and says so in the log and the provenance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from soda_jax.execution import fencing
from soda_jax.execution.failures import describe_failure
from soda_jax.execution.fencing import Fence
from soda_jax.execution.provenance import StepRecorder, mark_died
from soda_jax.execution.step import Resources
from soda_jax.execution.tpu_slices import TpuSlice, tpu_slice

logger = logging.getLogger(__name__)

EMULATED_TPU_ENV = "SODA_EMULATED_TPU"
"""Set to 1 on a Ray node that advertises TPU resources without chips (tests): hosts run on CPU."""
SLICE_NAME_LABEL = "ray.io/tpu-slice-name"
WORKER_ID_LABEL = "ray.io/tpu-worker-id"
COORDINATOR_PORT_RANGE = (20000, 40000)
PEER_FAILURE_GRACE_S = 30.0
"""After one host fails, how long to wait for the others' errors before classifying the failure."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class SliceHost:
    """Which host of a TPU step's job this process is."""

    process_id: int
    """This process's index in the ``jax.distributed`` job (slice x hosts per slice + worker id)."""
    num_processes: int
    """Processes of the job: one per host of every slice."""


_CURRENT_HOST: dict[str, SliceHost | None] = {"value": None}
"""The host this process runs a TPU step on, while `host_main` runs it."""


def current_host() -> SliceHost | None:
    """The host this process is, while it runs a step on a TPU slice; None anywhere else (a local run,
    a CPU task, the driver)."""
    return _CURRENT_HOST["value"]


@contextlib.contextmanager
def running_as(host: SliceHost) -> Iterator[SliceHost]:
    """Make `current_host` return ``host`` inside the block (`host_main` runs each host's step so)."""
    previous = _CURRENT_HOST["value"]
    _CURRENT_HOST["value"] = host
    try:
        yield host
    finally:
        _CURRENT_HOST["value"] = previous


def host_share(items: Sequence[T], host: SliceHost) -> list[T]:
    """The items ``host`` takes: item ``i`` goes to process ``i mod num_processes``. Every host must
    pass the same sequence (e.g. a sorted listing of all shards, done or not), so the shares are
    disjoint and cover it."""
    return [item for i, item in enumerate(items) if i % host.num_processes == host.process_id]


def wait_for_peers(name: str, timeout_s: float) -> None:
    """Block until every process of this step's job reaches the barrier ``name`` (the coordination
    service's barrier, not a device collective: hosts may arrive hours apart). A no-op in one process."""
    import jax

    if jax.process_count() == 1:
        return
    from levanter.utils.jax_utils import barrier_sync

    logger.info("process %d: waiting up to %.0f s for the other hosts (%s)", jax.process_index(), timeout_s, name)
    barrier_sync(timeout=timeout_s)


class TpuUnavailableError(RuntimeError):
    """The requested TPU slices did not become available within the wait: the step did not run."""


class SliceFailedError(RuntimeError):
    """A host of the slice died on every allowed attempt."""


def _system_failure(error: BaseException) -> bool:
    """A host or worker died (preemption, OOM kill), as opposed to the step's own exception."""
    import ray

    return isinstance(
        error,
        (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ActorDiedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError,
            ray.exceptions.LocalRayletDiedError,
        ),
    )


def host_main(
    fn: Callable[[Any], Any],
    config: Any,
    output_path: str,
    name: str,
    *,
    coordinator: str,
    num_processes: int,
    slice_id: int,
    hosts_per_slice: int,
    chips_per_host: int,
    slice_count: int,
    megascale_coordinator: str,
    attempt: int,
    fence: Fence | None = None,
) -> dict[str, Any]:
    """One host's process: join the job, run ``fn(config)`` (`current_host` says which host); the first
    process records provenance. Returns the host's facts and, under ``"result"``, what ``fn`` returned.

    (Keyword names must not collide with `ray.util.tpu.run_on_slice`'s own: ``slice_count``, not ``num_slices``.)"""
    import ray

    labels = ray.get_runtime_context().get_node_labels()
    worker_id = int(labels.get(WORKER_ID_LABEL, "0"))
    process_id = slice_id * hosts_per_slice + worker_id
    emulated = os.environ.get(EMULATED_TPU_ENV) == "1"
    if slice_count > 1:
        from ray.util.tpu import get_tpu_coordinator_env_vars

        os.environ.update(get_tpu_coordinator_env_vars(megascale_coordinator, slice_count, slice_id))
    if emulated:  # before JAX starts its backend
        os.environ["JAX_PLATFORMS"] = "cpu"
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={chips_per_host}"])
    import jax

    if emulated:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        logger.warning(
            "emulated TPU host (no chips, %s=1): process %d runs on %d CPU devices",
            EMULATED_TPU_ENV,
            process_id,
            chips_per_host,
        )
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    host = {
        "process_id": process_id,
        "slice_id": slice_id,
        "worker_id": worker_id,
        "node": labels.get(SLICE_NAME_LABEL),
        "local_devices": jax.local_device_count(),
        "devices": jax.device_count(),
        "emulated": emulated,
    }
    try:
        # a taken-over attempt commits nothing
        with fencing.holding(() if fence is None else fence), running_as(SliceHost(process_id, num_processes)):
            if process_id == 0:
                extra = {
                    "attempt": attempt,
                    "processes": num_processes,
                    "slices": slice_count,
                    "emulated_tpu": emulated,
                }
                with StepRecorder(output_path, name, extra=extra):
                    host["result"] = fn(config)
            else:
                host["result"] = fn(config)
    finally:
        jax.distributed.shutdown()
    return host


def _coordinator_ip(slice_name: str | None) -> str:
    """IP of worker 0 of ``slice_name`` (the node carrying that label); the only node if unnamed."""
    import ray

    for node in ray.nodes():
        labels = node.get("Labels") or {}
        if (
            node.get("Alive")
            and labels.get(WORKER_ID_LABEL) == "0"
            and (slice_name is None or labels.get(SLICE_NAME_LABEL) == slice_name)
        ):
            return node["NodeManagerAddress"]
    raise RuntimeError(f"no live worker 0 of TPU slice {slice_name!r} among the Ray nodes")


def reserve_slices(tpu: TpuSlice, resources: Resources, name: str):
    """A ready ``SlicePlacementGroup`` (one placement group per slice), or `TpuUnavailableError`."""
    import ray
    from ray.util.tpu import SlicePlacementGroup

    started = time.time()
    wait = resources.tpu_wait_s
    logger.info(
        "step %s: waiting up to %.0f s for %d x %s (%d hosts each)",
        name,
        wait,
        resources.slices,
        tpu.name,
        tpu.num_hosts,
    )
    try:
        handle = SlicePlacementGroup(
            topology=tpu.topology,
            accelerator_version=tpu.chip.version,
            num_slices=resources.slices,
            pg_per_slice=True,
            head_reservation_timeout_s=wait,
            name=f"soda-{name}"[:60],
            resources_per_bundle={
                "CPU": 0,
                "TPU": tpu.chips_per_host,
            },  # TPU hosts advertise no CPUs (infra/); Ray adds 1 unless 0 is given
        )
    except (TimeoutError, RuntimeError) as error:
        raise TpuUnavailableError(
            f"step {name}: no {tpu.name} slice ({tpu.topology}, {tpu.num_hosts} hosts x {tpu.chips_per_host} chips, "
            f"head resource {tpu.head_resource}) became available within {wait:.0f} s; the step was not run "
            f"(never on CPU instead). Cluster resources: {ray.cluster_resources()}. "
            f"({type(error).__name__}: {str(error)[:300]})"
        ) from None
    left = max(1.0, wait - (time.time() - started))
    groups = handle.slice_placement_groups
    ready, _ = ray.wait([g.ready() for g in groups], num_returns=len(groups), timeout=left)
    if len(ready) != len(groups):
        handle.shutdown()
        raise TpuUnavailableError(
            f"step {name}: {tpu.name} slices reserved but their hosts did not all come up within {wait:.0f} s"
        )
    handle.release_head_pgs()
    return handle


def _run_attempt(
    fn, config, output_path: str, name: str, tpu: TpuSlice, resources: Resources, attempt: int, fence: Fence | None
) -> list[dict]:
    import ray
    from ray.util.tpu import run_on_slice

    handle = reserve_slices(tpu, resources, name)
    try:
        slice_names = [
            handle.bundle_label_selector[i * tpu.num_hosts].get(SLICE_NAME_LABEL) for i in range(resources.slices)
        ]
        coordinator_ip = _coordinator_ip(slice_names[0] if tpu.num_hosts > 1 else None)
        coordinator = f"{coordinator_ip}:{random.randint(*COORDINATOR_PORT_RANGE)}"
        # max_calls=1: a fresh process per host and attempt (jax.distributed joins once per process)
        remote = ray.remote(max_calls=1, max_retries=0)(host_main)
        refs = []
        for slice_id in range(resources.slices):
            refs += run_on_slice(
                remote,
                fn,
                config,
                output_path,
                name,
                tpu_slice=handle,
                slice_index=slice_id,
                coordinator=coordinator,
                num_processes=tpu.num_hosts * resources.slices,
                slice_id=slice_id,
                hosts_per_slice=tpu.num_hosts,
                chips_per_host=tpu.chips_per_host,
                slice_count=resources.slices,
                megascale_coordinator=coordinator_ip,
                attempt=attempt,
                fence=fence,
            )
        return _gather(refs)
    finally:
        handle.shutdown()


def _gather(refs: list) -> list[dict]:
    """Every host's result; on the first failure, cancel the rest and raise the most telling error:
    a host that died (preemption) over the errors it caused on its peers."""
    import ray

    results: dict = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            results[done[0]] = ray.get(done[0])
        except (ray.exceptions.RayError, Exception) as first:
            errors = [first]
            settled, pending = ray.wait(pending, num_returns=len(pending), timeout=PEER_FAILURE_GRACE_S)
            for ref in settled:
                try:
                    ray.get(ref)
                except Exception as error:  # noqa: BLE001 - classified below
                    errors.append(error)
            for ref in pending:
                ray.cancel(ref, force=True)
            died = [e for e in errors if _system_failure(e)]
            if died and died[0] is not first:
                raise died[0] from first
            raise
    return [results[ref] for ref in refs]


def run_on_tpu_slices(
    fn: Callable[[Any], Any],
    config: Any,
    output_path: str,
    name: str,
    resources: Resources,
    *,
    fence: Fence | None = None,
) -> list[dict]:
    """``fn(config)`` on every host of ``resources.slices`` x ``resources.tpu``, retried after a host dies;
    every host holds the attempt's ``fence`` (`soda_jax.execution.fencing`)."""
    import ray

    if resources.preflight is not None:
        resources = resources.preflight(config, resources)  # may choose another slice
    assert resources.tpu is not None, f"step {name}: run_on_tpu_slices needs resources.tpu"
    tpu = tpu_slice(resources.tpu)
    attempts = resources.preemption_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            hosts = _run_attempt(fn, config, output_path, name, tpu, resources, attempt, fence)
            logger.info(
                "step %s finished on %d hosts of %d x %s (attempt %d)",
                name,
                len(hosts),
                resources.slices,
                tpu.name,
                attempt,
            )
            return hosts
        except ray.exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None  # the step's own failure: no retry
        except TpuUnavailableError:
            raise
        except Exception as error:
            if not _system_failure(error):
                raise
            message = (
                f"attempt {attempt}/{attempts}: a host of the slice died ({type(error).__name__}: {str(error)[:300]})"
            )
            mark_died(output_path, dataclasses.replace(describe_failure(error), message=message), over_failed=True)
            logger.warning("step %s: %s", name, message)
            if attempt == attempts:
                raise SliceFailedError(f"step {name}: {message}; no retries left") from error
    raise AssertionError("unreachable")
