"""``soda dashboard`` serves and prints its URL; ``soda info`` names what is wrong with a malformed
file instead of raising."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest
from executor_steps import RecordConfig, record

from soda_jax.cli import main
from soda_jax.dashboard import DEFAULT_PORT
from soda_jax.execution import Executor, ExecutorError, ExecutorStep, this_output_path, versioned


@pytest.fixture()
def experiment(tmp_path):
    good = ExecutorStep(
        "demo/good", record, RecordConfig(this_output_path(), str(tmp_path / "log"), value=versioned(1))
    )
    bad = ExecutorStep("demo/bad", record, RecordConfig(this_output_path(), str(tmp_path / "log"), fail=True))
    executor = Executor(str(tmp_path / "prefix"), use_ray=False)
    with pytest.raises(ExecutorError):
        executor.run([good, bad], description="cli")
    (name,) = os.listdir(tmp_path / "prefix" / "experiments")
    return {
        "prefix": str(tmp_path / "prefix"),
        "good": executor.output_path(good),
        "bad": executor.output_path(bad),
        "experiment": str(tmp_path / "prefix" / "experiments" / name),
    }


def test_dashboard_command_prints_its_url_and_serves(experiment):
    assert DEFAULT_PORT != 8265  # Ray's dashboard, forwarded by soda launch
    process = subprocess.Popen(
        [sys.executable, "-m", "soda_jax.cli", "dashboard", "--prefix", experiment["prefix"], "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"soda dashboard for {experiment['prefix']} at http://127.0.0.1:"), line
        url = line.split(" at ")[1].strip()
        with urllib.request.urlopen(url + "api/experiments", timeout=60) as r:
            assert json.loads(r.read())[0]["counts"] == {"SUCCESS": 1, "FAILED": 1}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    "filename,content,message",
    [
        (".executor_info", b"", ".executor_info: empty"),
        (".executor_info", b'{"name": "demo/go', ".executor_info: not JSON"),
        (".executor_status", b'{"status": "SUCCESS"}', ".executor_status: no numeric 'time'"),
        (".provenance.json", b"\xff\xfe", ".provenance.json: not UTF-8"),
        (".provenance.json", b'{"git": "not an object", "error": "neither"}', "demo/good"),
    ],
)
def test_info_names_the_malformed_file(experiment, capsys, filename, content, message):
    with open(os.path.join(experiment["good"], filename), "wb") as f:
        f.write(content)
    assert main(["info", experiment["good"]]) == 0
    assert message in capsys.readouterr().out
    assert main(["info", experiment["experiment"]]) == 1  # exit 1: the experiment has a FAILED step (demo/bad)
    out = capsys.readouterr().out
    assert message in out and "step asked to fail" in out  # the other step is still described


def test_info_on_a_malformed_experiment_file(experiment, capsys):
    with open(experiment["experiment"], "wb") as f:
        f.write(b'{"steps": [')
    assert main(["info", experiment["experiment"]]) == 1
    assert "not JSON" in capsys.readouterr().err
