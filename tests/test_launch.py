"""`soda launch` without a cluster: what a dry run shows (names, never secret values), the job it
builds, and clear failures (an unset --env name, a cluster that is not up, no dashboard to submit to)."""

from __future__ import annotations

import os
import shlex
import socket
import sys

import pytest

from soda_jax.execution.launch import (
    MERGE_RUNTIME_ENVS,
    SHIPPED_PYTHONPATH,
    LaunchError,
    build_job,
    dashboard_tunnel,
    launch_main,
    parser,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V5P = os.path.join(ROOT, "infra", "cluster-v5p.yaml")
EXPERIMENT = os.path.join(ROOT, "experiments", "soda_600m.py")
SECRETS = {"HF_TOKEN": "hf_secret_4c1d", "WANDB_API_KEY": "wandb_secret_77e0", "MY_TOKEN": "mine_secret_9b2"}


@pytest.fixture
def environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SODA_") or n in SECRETS]:
        monkeypatch.delenv(name)
    for name, value in {
        **SECRETS,
        "SODA_PREFIX": "gs://bucket/soda",
        "SODA_RAW_ROOT": "gs://bucket/raw",
        "SODA_NEMOTRON_ROOT": "hf://datasets/x",
    }.items():
        monkeypatch.setenv(name, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dry_run_shows_where_and_what_but_no_secret(environment, capsys):
    # flags in any order, the experiment's own after `--`
    status = launch_main(
        ["--dry-run", "--env", "MY_TOKEN", EXPERIMENT, "--cluster", V5P, "--", "--prefix", "gs://b/x", "--dry_run"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "nothing submitted" in out
    assert f"`ray dashboard {V5P} --port 8265`" in out
    assert "/home/ray/soda-jax/.venv/bin/python experiments/soda_600m.py --prefix gs://b/x --dry_run" in out
    for name in (
        "SODA_PREFIX",
        "HF_TOKEN",
        "WANDB_API_KEY",
        "SODA_RAW_ROOT",
        "SODA_NEMOTRON_ROOT",
        "MY_TOKEN",
        "PYTHONPATH",
    ):
        assert name in out
    for value in SECRETS.values():
        assert value not in out
    assert f"working dir:  {ROOT} (" in out and "MiB zipped" in out


def test_the_job_carries_named_variables_and_runs_the_shipped_tree(environment):
    args = parser().parse_args([EXPERIMENT, "--cluster", V5P, "--env", "MY_TOKEN"])
    args.experiment_args = ["--prefix", "gs://b/x"]
    job = build_job(args, os.environ)
    assert shlex.split(job.entrypoint) == [
        "/home/ray/soda-jax/.venv/bin/python",
        "experiments/soda_600m.py",
        "--prefix",
        "gs://b/x",
    ]
    assert job.working_dir == ROOT
    env = job.runtime_env()["env_vars"]
    assert env == {
        **SECRETS,
        "SODA_PREFIX": "gs://bucket/soda",
        "SODA_RAW_ROOT": "gs://bucket/raw",
        "SODA_NEMOTRON_ROOT": "hf://datasets/x",
        "PYTHONPATH": SHIPPED_PYTHONPATH,
        **MERGE_RUNTIME_ENVS,
    }
    assert job.runtime_env()["working_dir"] == ROOT
    assert "secret" not in repr(job)


def test_an_unset_env_name_is_an_error_naming_it(environment, capsys):
    assert launch_main([EXPERIMENT, "--cluster", V5P, "--env", "NOT_SET_ANYWHERE", "--dry-run"]) == 1
    assert "--env NOT_SET_ANYWHERE: not set in this environment" in capsys.readouterr().err


def test_without_a_cluster_or_an_address_it_says_what_to_give(capsys):
    with pytest.raises(SystemExit) as exit_info:
        launch_main([EXPERIMENT, "--dry-run"])
    assert exit_info.value.code == 2
    assert "give --cluster CONFIG" in capsys.readouterr().err


def test_a_cluster_that_is_not_up_fails_with_rays_reason():
    """`ray dashboard` cannot reach a cluster from this machine: the tunnel reports it and stops."""
    with pytest.raises(LaunchError, match=r"is the cluster up \(`ray up .*cluster-v5p.yaml`\)\?") as error:
        with dashboard_tunnel(V5P, free_port(), wait_s=120):
            pytest.fail("no tunnel can open here")
    assert "ray dashboard" in str(error.value)


def test_no_dashboard_at_the_address_fails_clearly(environment, capsys):
    address = f"http://127.0.0.1:{free_port()}"
    assert launch_main([EXPERIMENT, "--address", address, "--python", sys.executable, "--no-wait"]) == 1
    assert f"submitting to {address} failed" in capsys.readouterr().err
