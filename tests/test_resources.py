"""A step's GPU request reaches Ray, and the torch codec takes the GPU it was given (or says why not).

This machine has no GPU: a local Ray started with ``num_gpus=1`` hands out GPU id 0 (and sets
``CUDA_VISIBLE_DEVICES``) as it would on a GPU node, which is what a task's placement depends on;
the CUDA side is the device choice, tested as logic plus the CPU-only torch that is installed here.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest
import ray

from soda_jax.execution.parallel import parallel_map, run_as_task, shutdown_workers, task_options
from soda_jax.execution.step import Resources

# Ray workers import this module to run `placement`: what the tests need beyond it (torch, the codec,
# the step builders) is imported inside them, so a worker starts in seconds, not half a minute.


def placement(_: object = None) -> dict:
    """What a Ray task was given: its GPU ids, the CUDA devices it may see, one variable of its env."""
    return {
        "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "jax_platforms": os.environ.get("JAX_PLATFORMS"),
    }


# ------------------------------------------------------------------------------ device choice
def test_the_torch_codec_runs_on_cuda_only_when_a_gpu_was_asked_for_and_is_there(caplog):
    from soda_jax.audio.codec import torch_device

    assert torch_device(0, [], cuda_available=True) == "cpu"  # no GPU asked: CPU even where CUDA is
    assert torch_device(1, ["0"], cuda_available=True) == "cuda"
    assert torch_device(0.5, [], cuda_available=True) == "cuda"  # outside Ray (a GPU machine, --local)
    with caplog.at_level(logging.WARNING):
        assert torch_device(1, [], cuda_available=False) == "cpu"  # a local run dropped the request
    assert "none given to this process: the torch codec runs on CPU" in caplog.text
    with pytest.raises(RuntimeError, match=r"given GPU\(s\) \['0'\] but torch .* sees no CUDA device"):
        torch_device(1, ["0"], cuda_available=False)  # never a silent CPU run on a GPU node


def test_the_installed_torch_without_cuda_refuses_a_granted_gpu():
    """What a GPU node with this machine's CPU-only torch would do: fail, naming the build."""
    import torch

    from soda_jax.audio.codec import torch_device

    assert not torch.cuda.is_available()
    with pytest.raises(RuntimeError, match="CPU-only torch build"):
        torch_device(1, ["0"], torch.cuda.is_available())


# ------------------------------------------------------------------------------------- Ray
def start_local_ray(num_gpus: int) -> None:
    """A local Ray like `ensure_ray`'s (workers import what this process imports), with ``num_gpus``.
    An earlier test's cluster (and the executor's memory of it) is forgotten first."""
    shutdown_workers()
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=num_gpus,
        include_dashboard=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


def test_a_local_ray_without_gpus_drops_the_request_and_runs(caplog):
    start_local_ray(num_gpus=0)
    try:
        with caplog.at_level(logging.WARNING):
            options = task_options(Resources(gpu=1), "needs-gpu")
            got = run_as_task(placement, resources=Resources(gpu=1), name="needs-gpu")
        assert "num_gpus" not in options
        assert "this local run has none: it runs on CPU" in caplog.text
        assert got["gpu_ids"] == []
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_with_a_gpu():
    """A local Ray whose one node advertises a GPU (id 0)."""
    start_local_ray(num_gpus=1)
    yield
    ray.shutdown()


def test_a_step_asking_for_a_gpu_gets_one_from_ray(ray_with_a_gpu):
    assert task_options(Resources(cpus=1, gpu=1), "gpu-step")["num_gpus"] == 1
    assert "num_gpus" not in task_options(Resources(cpus=1), "cpu-step")
    got = run_as_task(placement, resources=Resources(gpu=1), name="gpu-step")
    assert got["gpu_ids"] == ["0"] and got["cuda_visible"] == "0"
    assert run_as_task(placement, resources=Resources(), name="cpu-step")["gpu_ids"] == []


def test_shard_tasks_share_a_gpu_and_carry_their_environment(ray_with_a_gpu):
    got = parallel_map(placement, [1, 2], num_gpus=0.5, env={"JAX_PLATFORMS": "cpu"}, desc="shards")
    assert [g["gpu_ids"] for g in got] == [["0"], ["0"]]  # two halves of GPU 0
    assert {g["jax_platforms"] for g in got} == {"cpu"}
    assert [g["gpu_ids"] for g in parallel_map(placement, [1, 2], desc="cpu shards")] == [[], []]


def test_tokenize_with_a_gpu_reaches_the_codec(ray_with_a_gpu, tmp_path):
    """``default_tokenize(resources=Resources(gpu=1))``: each shard task asks Ray for the GPU, gets id 0,
    and the torch codec moves to CUDA, which this CPU-only torch cannot: the step fails saying so."""
    from helpers_audio import write_yodas2_corpus

    from soda_jax.execution import Executor, ExecutorError
    from soda_jax.recipes.defaults import default_tokenize

    write_yodas2_corpus(str(tmp_path / "raw"), num_shards=2)
    step = default_tokenize("gpu", str(tmp_path / "raw"), source="yodas2", resources=Resources(cpus=1, gpu=1))
    assert step.resources.gpu == 0 and step.config.num_gpus_per_shard == 1  # the step itself waits on CPU
    with pytest.raises(ExecutorError, match=r"given GPU\(s\) \[0\] but torch .* sees no CUDA device"):
        Executor(str(tmp_path / "prefix")).run([step])


def test_default_tokenize_takes_cpus_or_resources_and_a_slice_runs_jax():
    from soda_jax.recipes.defaults import default_tokenize

    step = default_tokenize("c", "raw", source="yodas2", cpus=4)
    assert step.config.num_cpus_per_shard == 4 and step.resources == Resources()
    with pytest.raises(ValueError, match="give cpus or resources, not both"):
        default_tokenize("c", "raw", source="yodas2", cpus=4, resources=Resources(cpus=4))
    with pytest.raises(ValueError, match="runs the JAX codec: pass codec_backend='jax'"):
        default_tokenize("c", "raw", source="yodas2", resources=Resources(tpu="v5p-8"))
    tpu = default_tokenize("c", "raw", source="yodas2", codec_backend="jax", resources=Resources(tpu="v5p-8"))
    assert tpu.resources.tpu == "v5p-8"  # the step itself goes to the slice: one process per host
