"""The TPU cluster, rehearsed on this machine: a local multi-node Ray cluster shaped like infra/cluster-v5p.yaml.

Its nodes advertise what the YAML's node types advertise: a head with no CPUs, a CPU-pool node, and
an emulated two-host v5p-16 slice (`helpers_cluster.emulated_host`) whose hosts advertise their
chips and no CPUs. An experiment arrives the way `soda launch` sends it (Ray's job submission API
against the head's dashboard, the working tree and the named variables in its runtime environment):
its data step and their shard tasks must land on the CPU node, its TPU step on the slice's two
hosts, the named variables must reach every one of those processes, and the outputs the prefix.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import sys
import time
import uuid

import pytest
import ray
import yaml
from helpers_cluster import add_node, emulated_host, local_cluster

from soda_jax.execution.launch import build_job, dashboard_answers, launch_main, parser
from soda_jax.execution.parallel import ensure_ray, parallel_map, run_as_task, shutdown_workers
from soda_jax.execution.step import Resources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V5P = os.path.join(ROOT, "infra", "cluster-v5p.yaml")
SLICE = "v5p-16"
"""Two hosts of 4 chips: the smallest multi-host slice."""
CPU_NODE_CPUS = 2
"""The CPU-pool node's CPUs here (the YAML's 16 would start 16 worker processes on this machine)."""
NAMES = ("SODA_PREFIX", "SODA_RAW_ROOT", "HF_TOKEN", "WANDB_API_KEY", "REHEARSAL_EXTRA")
"""What every process reports: the named variables, the corpus root, and one passed with ``--env``."""
DASHBOARD_WAIT_S = 180.0


def yaml_resources() -> tuple[float, dict[str, float]]:
    """(the head's CPUs, a v5p-16 host's resources) as infra/cluster-v5p.yaml declares them."""
    with open(V5P) as f:
        config = yaml.safe_load(f)
    types = config["available_node_types"]
    (host,) = [t["resources"] for t in types.values() if t["node_config"].get("acceleratorType") == SLICE]
    return types[config["head_node_type"]]["resources"]["CPU"], host


def named_environment(monkeypatch, prefix: str) -> dict[str, str]:
    """Set the named variables in this process only (the cluster's nodes started without them):
    fresh values, so a process can only have them from the job's runtime environment."""
    values = {name: f"{name.lower()}-{uuid.uuid4().hex[:8]}" for name in NAMES}
    values["SODA_PREFIX"] = prefix
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROBE_MODULE = f'''
import os

import ray

NAMES = {NAMES!r}


def probe(tag):
    """Where this ran and the named variables it saw."""
    node = ray.get_runtime_context().get_node_id()
    return {{"tag": tag, "node": node, "env": {{n: os.environ.get(n) for n in NAMES}}}}
'''
"""A module in the shipped working tree: tasks that import it prove the tree arrived."""

EXPERIMENT = '''"""The rehearsal's experiment: a data step on CPUs with shard tasks, then a step on a v5p-16 slice."""
import dataclasses
import sys

from rehearsal_probe import probe

from soda_jax import fileio
from soda_jax.execution import ExecutorStep, executor_main, this_output_path
from soda_jax.execution.parallel import parallel_map
from soda_jax.execution.step import Resources

SHARDS = 3
TPU_WAIT_S = 600


@dataclasses.dataclass(frozen=True)
class DataConfig:
    output_path: str


def data_step(config):
    records = [probe("data-step"), *parallel_map(probe, [f"shard-{i}" for i in range(SHARDS)], desc="shards")]
    fileio.atomic_write_json(fileio.join(config.output_path, "placement.json"), records)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    placement: str
    output_path: str


def train_step(config):
    import jax

    record = probe(f"host-{jax.process_index()}")
    record["data_records"] = len(fileio.read_json(config.placement))
    fileio.atomic_write_json(fileio.join(config.output_path, f"host-{jax.process_index()}.json"), record)


data = ExecutorStep(
    name="rehearsal/data", fn=data_step, config=DataConfig(this_output_path()), resources=Resources(cpus=1)
)
# The default Resources (cpus=1): the step's host processes ask the slice's bundles for TPU chips only,
# since the slice's hosts advertise no CPUs (infra/).
train = ExecutorStep(
    name="rehearsal/train", fn=train_step, config=TrainConfig(data / "placement.json", this_output_path()),
    resources=Resources(tpu="__SLICE__", tpu_wait_s=TPU_WAIT_S),
)

if __name__ == "__main__":
    executor_main([data, train], description="cluster rehearsal", args=sys.argv[1:])
'''.replace("__SLICE__", SLICE)


def write_project(root) -> str:
    """A working tree holding the experiment and the probe module; the experiment's path."""
    root.mkdir()
    (root / "rehearsal_probe.py").write_text(PROBE_MODULE)
    (root / "rehearsal_experiment.py").write_text(EXPERIMENT)
    return str(root / "rehearsal_experiment.py")


def test_steps_land_by_what_they_ask_for_with_the_launch_environment(tmp_path, monkeypatch):
    """Default-suite variant, no job: the project's own task calls (a step as a task, its shard tasks,
    a TPU-host task as ``ray.util.tpu`` starts one) under `soda launch`'s runtime environment."""
    head_cpus, host_resources = yaml_resources()
    with local_cluster(num_cpus=head_cpus, include_dashboard=False) as cluster:
        cpu_node = add_node(cluster, num_cpus=CPU_NODE_CPUS)
        host = emulated_host(cluster, SLICE, "slice-a", 0, num_cpus=host_resources["CPU"])
        expected = named_environment(monkeypatch, str(tmp_path / "prefix"))
        experiment = write_project(tmp_path / "project")
        args = parser().parse_args(
            [
                experiment,
                "--address",
                "unused",
                "--python",
                sys.executable,
                "--working-dir",
                str(tmp_path / "project"),
                "--env",
                "REHEARSAL_EXTRA",
            ]
        )
        args.experiment_args = []
        job = build_job(args, os.environ)
        monkeypatch.syspath_prepend(str(tmp_path / "project"))
        from rehearsal_probe import probe

        ensure_ray(cluster.address, runtime_env=job.runtime_env())  # as the launched driver connects
        try:
            step = run_as_task(probe, "step", resources=Resources(cpus=1))
            shards = parallel_map(probe, ["shard-0", "shard-1", "shard-2"], num_cpus=1)
            tpu_host = ray.get(
                ray.remote(probe).options(num_cpus=0, resources={"TPU": host_resources["TPU"]}).remote("host")
            )
        finally:
            shutdown_workers()  # forget the cluster for the tests after this one
        for record in (step, *shards):
            assert record["node"] == cpu_node.node_id, record["tag"]
        assert tpu_host["node"] == host.node_id
        for record in (step, *shards, tpu_host):
            assert record["env"] == {n: expected[n] for n in NAMES}, record["tag"]


def wait_for_dashboard(address: str) -> None:
    deadline = time.monotonic() + DASHBOARD_WAIT_S
    while not dashboard_answers(address):
        assert time.monotonic() < deadline, (
            f"the head's dashboard at {address} did not answer in {DASHBOARD_WAIT_S:.0f} s"
        )
        time.sleep(2)


def records(pattern: str) -> list[dict]:
    paths = sorted(glob.glob(pattern))
    assert paths, f"no output matches {pattern}"
    return [json.load(open(path)) for path in paths]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_launched_experiment_runs_data_on_the_cpu_pool_and_training_on_the_slice(tmp_path, monkeypatch):
    head_cpus, host_resources = yaml_resources()
    port = free_port()
    # The head's job agent on a free port too: its default (52365) may be another local Ray's. `current`:
    # the job's supervisor finds its cluster as this machine's current one (other Rays may run here).
    head = {
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": port,
        "dashboard_agent_listen_port": free_port(),
    }
    with local_cluster(current=True, num_cpus=head_cpus, **head) as cluster:
        cpu_node = add_node(cluster, num_cpus=CPU_NODE_CPUS)
        hosts = [emulated_host(cluster, SLICE, "slice-a", w, num_cpus=host_resources["CPU"]) for w in range(2)]
        address = f"http://127.0.0.1:{port}"
        wait_for_dashboard(address)
        prefix = str(tmp_path / "prefix")
        expected = {n: v for n, v in named_environment(monkeypatch, prefix).items()}
        experiment = write_project(tmp_path / "project")
        status = launch_main(
            [
                experiment,
                "--address",
                address,
                "--python",
                sys.executable,
                "--working-dir",
                str(tmp_path / "project"),
                "--env",
                "REHEARSAL_EXTRA",
            ]
        )
        assert status == 0, "the job failed: its log is in the captured output"

        data = records(os.path.join(prefix, "rehearsal", "data-*", "placement.json"))[0]
        assert [r["tag"] for r in data] == ["data-step", "shard-0", "shard-1", "shard-2"]
        for record in data:
            assert record["node"] == cpu_node.node_id, f"{record['tag']} ran on {record['node']}"
            assert record["env"] == expected, record["tag"]
        trained = records(os.path.join(prefix, "rehearsal", "train-*", "host-*.json"))
        assert [r["tag"] for r in trained] == ["host-0", "host-1"]
        assert {r["node"] for r in trained} == {host.node_id for host in hosts}
        for record in trained:
            assert record["env"] == expected, record["tag"]
            assert record["data_records"] == len(data)
