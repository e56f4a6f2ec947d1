"""Multi-host TPU dispatch, for real, on CPU: a local multi-node Ray cluster emulating a 2-host v5p-16 slice.

Each emulated host (`helpers_cluster.emulated_host`) is a Ray node that Ray's TPU API takes for a
host of a TPU VM slice: the step's two processes (one per host, through ``ray.util.tpu``) join one
``jax.distributed`` job over gloo, with 4 CPU devices each, and train the same model as one process
with 8 devices.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import threading
import time

import pytest
from helpers_cluster import emulated_host, local_cluster
from helpers_training import tiny_config, write_test_cache

from soda_jax.execution.executor import Executor
from soda_jax.execution.parallel import ensure_ray
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.step import Resources
from soda_jax.execution.tpu import TpuUnavailableError, run_on_tpu_slices
from soda_jax.recipes.defaults import default_train
from soda_jax.training import CheckpointPolicy
from soda_jax.training.train import train

SLICE = "v5p-16"
"""8 chips (2x2x2): two hosts of 4 chips."""
STEPS = 6


@pytest.fixture(scope="module")
def tpu_cluster():
    # no dashboard: ten fewer processes competing for the cores
    with local_cluster(num_cpus=2, include_dashboard=False) as cluster:
        hosts = [emulated_host(cluster, SLICE, "slice-a", w) for w in range(2)]  # one after the other
        ensure_ray(cluster.address)
        yield cluster, hosts


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
        name,
        config.data,
        config.model,
        config.recipe,
        tpu=SLICE,
        preflight=False,
        checkpoints=CheckpointPolicy(every_steps=2, every_minutes=None),  # a killed host resumes from one
        gradient_checkpointing=False,
        steps_per_eval=config.steps_per_eval,
        max_eval_batches=config.max_eval_batches,
        export_hf=False,
    )
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
    for resources in (
        Resources(tpu="v5p-32", tpu_wait_s=5),
        Resources(tpu="v5p-16", tpu_wait_s=5, preflight=move_to_v5p_32),
    ):
        started = time.time()
        with pytest.raises(
            TpuUnavailableError, match=r"no v5p-32 slice .* within 5 s; the step was not run \(never on CPU"
        ):
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
    hosts[1] = emulated_host(cluster, SLICE, "slice-a", 1)  # ... and the autoscaler replaces it
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
