"""Evaluation runs on one host, by design: `default_eval` takes one-host slices only, and `run_eval` in
a multi-process JAX job (the hosts of a larger slice) refuses before it reads a model or writes a file.

The multi-host case runs for real: two processes joined by ``jax.distributed`` on this machine (as
the hosts of an emulated slice are), each calling `run_eval` on an output whose task is finished,
the path that writes results.json without loading a model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from soda_jax.eval.nll import ValidationNllTask
from soda_jax.eval.results import RESULTS_FILE, TASKS_DIR
from soda_jax.eval.step import EvalConfig, run_eval
from soda_jax.recipes.defaults import default_eval

HOST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax

    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
    from soda_jax.eval.nll import ValidationNllTask
    from soda_jax.eval.step import EvalConfig, MultiHostEvalError, run_eval

    try:
        run_eval(EvalConfig(model_path=sys.argv[3], output_path=sys.argv[4], tasks=(ValidationNllTask(),)))
    except MultiHostEvalError as error:
        print(json.dumps({"refused": str(error)}))
        sys.exit(3)
    finally:
        jax.distributed.shutdown()
    """
)
"""One host's process: join a 2-process job, then evaluate."""
HOST_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finished_evaluation(out) -> None:
    """An evaluation output whose one task has its summary: only results.json is left to write."""
    (out / TASKS_DIR).mkdir(parents=True)
    (out / TASKS_DIR / "validation_nll.json").write_text(json.dumps({"metrics": {"loss": 1.5}}))


def test_default_eval_takes_one_host_slices_only():
    step = default_eval("m", "/runs/m", [ValidationNllTask()], tpu="v5p-8")
    assert step.resources.tpu == "v5p-8"
    with pytest.raises(ValueError, match=r"v5p-16 has 2 hosts; an evaluation runs on one host .* such as v5p-8"):
        default_eval("m", "/runs/m", [ValidationNllTask()], tpu="v5p-16")


def test_one_process_writes_the_results(tmp_path):
    """The control: the same finished output in one process gets its results.json."""
    finished_evaluation(tmp_path / "eval")
    results = run_eval(
        EvalConfig(
            model_path=str(tmp_path / "no-model"), output_path=str(tmp_path / "eval"), tasks=(ValidationNllTask(),)
        )
    )
    assert results["metrics"] == {"validation_nll/loss": 1.5}
    assert (tmp_path / "eval" / RESULTS_FILE).exists()


@pytest.mark.timeout(2 * HOST_TIMEOUT_S)
def test_the_hosts_of_a_multi_process_job_refuse_and_write_nothing(tmp_path):
    finished_evaluation(tmp_path / "eval")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    coordinator = f"127.0.0.1:{free_port()}"
    hosts = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOST_SCRIPT,
                coordinator,
                str(i),
                str(tmp_path / "no-model"),
                str(tmp_path / "eval"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        for i in range(2)
    ]
    outputs = [host.communicate(timeout=HOST_TIMEOUT_S) for host in hosts]
    for i, (host, (stdout, stderr)) in enumerate(zip(hosts, outputs)):
        assert host.returncode == 3, f"process {i}: exit {host.returncode}\n{stderr[-3000:]}"
        message = json.loads(stdout.strip().splitlines()[-1])["refused"]
        assert f"this is process {i} of 2" in message and "default_eval(tpu='v5p-8')" in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no results.json, nothing else
