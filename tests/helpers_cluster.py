"""Local multi-node Ray clusters for tests: a head, CPU nodes, and emulated TPU hosts.

An emulated TPU host is a Ray node advertising what Ray's TPU API looks for on a TPU VM (``TPU``
chips, the ``TPU-{type}-head`` resource on worker 0, the ``ray.io/tpu-slice-name`` / ``tpu-worker-id``
/ ``tpu-pod-type`` / ``tpu-topology`` labels, ``TPU_NAME``) and ``SODA_EMULATED_TPU=1``, so a step's
host process runs on CPU devices (`soda_jax.execution.tpu`). Every node is a separate set of Ray
processes on this machine, started with Ray's timeouts raised for a machine other jobs keep busy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import ray
from ray.cluster_utils import Cluster

from soda_jax.execution.tpu import EMULATED_TPU_ENV
from soda_jax.execution.tpu_slices import tpu_slice

NODE_START_TIMEOUT_S = 300
"""How long a node may take to register with the GCS once it has started (`Cluster.add_node` waits 30 s)."""
NODE_START_ATTEMPTS = 4
"""Ray's ``Node`` gives a starting node a fixed 30 s (``raylet_start_wait_time_s`` in ray/_private/node.py,
not configurable) to be seen by the GCS; on 2 cores that other jobs keep busy that was missed."""
SLOW_MACHINE_RAY_CONFIG = {
    "RAY_worker_register_timeout_seconds": "300",  # a worker process importing JAX on a busy machine
    "RAY_gcs_rpc_server_reconnect_timeout_s": "300",  # a raylet waiting for a busy GCS
    "RAY_gcs_server_request_timeout_seconds": "120",  # the Python side's GCS calls
    "RAY_health_check_failure_threshold": "10",  # 10 x 3 s: a busy raylet is not declared dead
    # Ray runs tasks at niceness 15 (``worker_niceness``): next to other jobs' processes the hosts'
    # training processes got ~1% of a core (10 s of CPU in 19 min); at 0 they get their share.
    "RAY_worker_niceness": "0",
}
"""Ray's own timeouts (read from ``RAY_<name>`` by every Ray process at start), raised for a machine
that other jobs keep busy; a killed node is still noticed within ~30 s."""


def _stop_half_started_node(error: BaseException) -> None:
    """Stop the processes of the node whose start raised ``error`` (the ``Node`` raising it is
    only reachable through the traceback), so that a retry does not leave a second node behind."""
    from ray._private.node import Node

    tb = error.__traceback__
    while tb is not None:
        node = tb.tb_frame.f_locals.get("self")
        if isinstance(node, Node):
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
            return
        tb = tb.tb_next


def start_node(start, *args, **kwargs):
    """``start(*args, **kwargs)`` (a node of a `Cluster`, or a `Cluster` with its head), retried after
    Ray's 30 s start-up limit with the half-started node's processes stopped first."""
    for attempt in range(1, NODE_START_ATTEMPTS + 1):
        try:
            return start(*args, **kwargs)
        except Exception as error:
            if "timed out during startup" not in str(error) or attempt == NODE_START_ATTEMPTS:
                raise
            _stop_half_started_node(error)
            time.sleep(5 * attempt)


def add_node(cluster: Cluster, **node_args):
    """A new node of ``cluster``, once the GCS has it (up to `NODE_START_TIMEOUT_S`)."""
    node = start_node(cluster.add_node, wait=False, **node_args)
    cluster._wait_for_node(node, timeout=NODE_START_TIMEOUT_S)
    return node


def address_file() -> str:
    """Where Ray records "the current cluster" for ``ray.init("auto")`` on this machine."""
    from ray._private.utils import get_ray_address_file

    return get_ray_address_file(None)


def _put_back(path: str, saved: str | None) -> None:
    if saved is None:
        os.remove(path) if os.path.exists(path) else None
    else:
        with open(path, "w") as f:
            f.write(saved)


@contextlib.contextmanager
def local_cluster(*, current: bool = False, **head_node_args) -> Iterator[Cluster]:
    """A started head (``head_node_args`` as for `ray.init`'s node) to add nodes to; shut down on exit.

    Ray's `Cluster` records its address as this machine's "current" cluster, the one ``ray.init("auto")``
    joins; on this shared machine what was recorded before is put back at once, unless ``current``: then
    on exit. A job needs that (its supervisor finds its own cluster's address there, or, with none
    recorded, takes any Ray running here). The nodes' processes get `SLOW_MACHINE_RAY_CONFIG`."""
    ray.shutdown()
    path = address_file()
    saved = open(path).read() if os.path.exists(path) else None
    saved_env = {key: os.environ.get(key) for key in SLOW_MACHINE_RAY_CONFIG}
    os.environ.update(SLOW_MACHINE_RAY_CONFIG)  # every node's processes inherit them
    try:
        cluster = start_node(Cluster, initialize_head=True, head_node_args={**head_node_args, "wait": False})
        try:
            cluster._wait_for_node(cluster.head_node, timeout=NODE_START_TIMEOUT_S)
            if not current:
                _put_back(path, saved)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()
            if current:
                _put_back(path, saved)
    finally:
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def emulated_host(cluster: Cluster, slice_type: str, slice_name: str, worker_id: int, *, num_cpus: float = 1):
    """Add a Ray node that looks like host ``worker_id`` of a ``slice_type`` TPU slice to Ray's TPU API."""
    tpu = tpu_slice(slice_type)
    labels = {
        "ray.io/tpu-slice-name": slice_name,
        "ray.io/tpu-worker-id": str(worker_id),
        "ray.io/tpu-pod-type": tpu.name,
        "ray.io/tpu-topology": tpu.topology,
        "ray.io/accelerator-type": f"TPU-{tpu.chip.version.upper()}",
    }
    resources = {"TPU": tpu.chips_per_host, **({tpu.head_resource: 1} if worker_id == 0 else {})}
    saved = {k: os.environ.get(k) for k in ("TPU_NAME", EMULATED_TPU_ENV)}
    os.environ.update({"TPU_NAME": slice_name, EMULATED_TPU_ENV: "1"})  # the node's processes inherit them
    try:
        return add_node(cluster, num_cpus=num_cpus, resources=resources, labels=labels)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
