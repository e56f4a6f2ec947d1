"""Multi-host TPU dispatch, for real, on CPU: a local multi-node Ray cluster emulating a 2-host v5p-16 slice.

Each emulated host is a Ray node advertising what Ray's TPU API looks for on a TPU VM (``TPU: 4``,
the ``TPU-v5p-16-head`` resource on worker 0, the ``ray.io/tpu-slice-name`` / ``tpu-worker-id`` /
``tpu-pod-type`` / ``tpu-topology`` labels, ``TPU_NAME``) and ``SODA_EMULATED_TPU=1``: the step's two
processes (one per host, through ``ray.util.tpu``) join one ``jax.distributed`` job over gloo, with
4 CPU devices each, and train the same model as one process with 8 devices.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import threading
import time

import pytest

ray = pytest.importorskip("ray")
from helpers_training import tiny_config, write_test_cache  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from experiments.defaults import default_train  # noqa: E402
from soda_jax.execution.executor import Executor  # noqa: E402
from soda_jax.execution.parallel import ensure_ray  # noqa: E402
from soda_jax.execution.provenance import PROVENANCE_FILE  # noqa: E402
from soda_jax.execution.step import Resources  # noqa: E402
from soda_jax.execution.tpu import EMULATED_TPU_ENV, TpuUnavailableError, run_on_tpu_slices  # noqa: E402
from soda_jax.training.train import train  # noqa: E402

SLICE = "v5p-16"
"""8 chips (2x2x2): two hosts of 4 chips."""
STEPS = 6


def emulated_host(cluster: Cluster, slice_name: str, worker_id: int):
    """Add a Ray node that looks like host ``worker_id`` of a v5p-16 TPU slice to Ray's TPU API."""
    labels = {
        "ray.io/tpu-slice-name": slice_name, "ray.io/tpu-worker-id": str(worker_id),
        "ray.io/tpu-pod-type": SLICE, "ray.io/tpu-topology": "2x2x2", "ray.io/accelerator-type": "TPU-V5P",
    }  # fmt: skip
    resources = {"TPU": 4, **({f"TPU-{SLICE}-head": 1} if worker_id == 0 else {})}
    saved = {k: os.environ.get(k) for k in ("TPU_NAME", EMULATED_TPU_ENV)}
    os.environ.update({"TPU_NAME": slice_name, EMULATED_TPU_ENV: "1"})  # the node's processes inherit them
    try:
        return add_node(cluster, num_cpus=1, resources=resources, labels=labels)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


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


@pytest.fixture(scope="module")
def tpu_cluster():
    ray.shutdown()
    # The test cluster must not become other drivers' "auto" cluster on a shared machine: Ray's
    # Cluster writes its address there; put back what was there before.
    path = address_file()
    saved = open(path).read() if os.path.exists(path) else None
    saved_env = {key: os.environ.get(key) for key in SLOW_MACHINE_RAY_CONFIG}
    os.environ.update(SLOW_MACHINE_RAY_CONFIG)  # every node's processes inherit them
    # no dashboard: ten fewer processes competing for the cores
    cluster = start_node(Cluster, initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "wait": False})
    cluster._wait_for_node(cluster.head_node, timeout=NODE_START_TIMEOUT_S)
    if saved is None:
        os.remove(path) if os.path.exists(path) else None
    else:
        with open(path, "w") as f:
            f.write(saved)
    hosts = [emulated_host(cluster, "slice-a", w) for w in range(2)]  # one after the other
    ensure_ray(cluster.address)
    yield cluster, hosts
    ray.shutdown()
    cluster.shutdown()
    for key, value in saved_env.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("tpu-cache")
    write_test_cache(str(root / "cache"), str(root / "tokenizer"))
    return str(root / "cache")


def losses(path: str) -> list[float]:
    with open(os.path.join(path, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f]


def train_step(cache: str, name: str, steps: int = STEPS, **resources):
    config = tiny_config(cache, "unused", steps=steps, export_hf=False)
    step = default_train(
        name, config.data, config.model, config.recipe, tpu=SLICE, preflight=False, checkpoints=config.checkpoints,
        gradient_checkpointing=False, steps_per_eval=config.steps_per_eval, max_eval_batches=config.max_eval_batches,
        export_hf=False,
    )  # fmt: skip
    import dataclasses

    return dataclasses.replace(step, resources=dataclasses.replace(step.resources, **resources))


@pytest.mark.slow  # 139 s measured on 2 busy cores (573 s with Ray's default worker niceness 15)
@pytest.mark.timeout(1800)
def test_two_host_slice_trains_like_one_process(tpu_cluster, cache, tmp_path):
    """Two processes (one per emulated host) x 4 devices give the same per-step losses as 1 x 8."""
    reference = tmp_path / "reference"
    train(tiny_config(cache, str(reference), steps=STEPS, export_hf=False))

    step = train_step(cache, "multihost", tpu_wait_s=120)
    report = Executor(str(tmp_path / "prefix"), ray_address=tpu_cluster[0].address).run([step])
    path = report.output_paths[step.name]
    assert report.statuses[path] == "SUCCESS", report.errors
    assert losses(path) == pytest.approx(losses(str(reference)), rel=1e-5, abs=1e-6)
    second_host = losses(os.path.join(path, "logs", "process-1"))
    assert second_host == pytest.approx(losses(path), rel=1e-6)
    provenance = json.load(open(os.path.join(path, PROVENANCE_FILE)))
    assert provenance["processes"] == 2 and provenance["emulated_tpu"] is True
    assert provenance["devices"]["device_count"] == 8


def move_to_v5p_32(config, resources: Resources) -> Resources:
    """A pre-flight that chooses another slice (as `SmallestFittingSlice` does when the step does not fit)."""
    return dataclasses.replace(resources, tpu="v5p-32", preflight=None)


def test_tpu_request_without_the_slice_times_out(tpu_cluster, tmp_path):
    """A v5p-32 (4 hosts) on a cluster that has only a v5p-16: waits, then fails clearly; nothing runs.
    The slice a pre-flight chooses is the one requested: a v5p-16 step moved to a v5p-32 waits for that."""
    for resources in (Resources(tpu="v5p-32", tpu_wait_s=5), Resources(tpu="v5p-16", tpu_wait_s=5, preflight=move_to_v5p_32)):
        started = time.time()
        with pytest.raises(TpuUnavailableError, match=r"no v5p-32 slice .* within 5 s; the step was not run \(never on CPU"):
            run_on_tpu_slices(train, None, str(tmp_path / "never"), "never", resources)
        assert time.time() - started >= 5
        assert not (tmp_path / "never").exists()


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two attempts of a two-host step on 2 busy cores
def test_killed_host_retries_and_resumes(tpu_cluster, cache, tmp_path):
    """A host dies after the first checkpoint: the step is retried on the replaced slice and resumes."""
    cluster, hosts = tpu_cluster
    step = train_step(cache, "preempted", steps=12, tpu_wait_s=300, preemption_retries=2)
    path = str(tmp_path / "prefix")
    executor = Executor(path, ray_address=cluster.address)
    executor.prepare([step])
    out = executor.output_path(step)

    # The step runs in a thread: Ray starts a node only from the main thread (it installs signal
    # handlers), and the replacement host is started here while the step waits for its slice.
    result: dict = {}

    def run_step():
        try:
            result["report"] = executor.run([step])
        except Exception as error:  # noqa: BLE001 - reported below
            result["error"] = error

    runner = threading.Thread(target=run_step, daemon=True)
    runner.start()
    while not glob.glob(os.path.join(out, "checkpoints", "step-*", "metadata.json")):
        assert runner.is_alive(), "the step ended before its first checkpoint"
        time.sleep(0.5)
    cluster.remove_node(hosts[1], allow_graceful=False)  # the host is preempted ...
    time.sleep(5)
    hosts[1] = emulated_host(cluster, "slice-a", 1)  # ... and the autoscaler replaces it
    runner.join(timeout=2400)
    assert "report" in result, result.get("error", "the step did not finish")
    report = result["report"]
    assert report.statuses[out] == "SUCCESS", report.errors
    provenance = json.load(open(os.path.join(out, PROVENANCE_FILE)))
    assert provenance["attempt"] >= 2
    failed = provenance["previous_attempts"][-1]
    assert failed["status"] == "FAILED" and "a host of the slice died" in failed["error"]["message"]
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == list(range(12))  # resumed: every step once, none repeated


