"""``soda launch``: an experiment file submitted to a Ray cluster as a job (Ray's job submission API).

    soda launch experiments/soda_600m.py --cluster infra/cluster-v5p.yaml -- --prefix gs://BUCKET/soda
    soda launch experiments/soda_600m.py --cluster infra/cluster-v5p.yaml --env WANDB_ENTITY --dry-run

The job carries the working tree (Ray's ``working_dir``: the repository holding the experiment, less
what its .gitignore names; .git travels, so provenance records the commit) and a runtime environment
with named variables taken from your environment: ``SODA_PREFIX``, every ``SODA_*_ROOT`` (the
corpus roots), ``HF_TOKEN``, ``WANDB_API_KEY``, and each ``--env NAME``. Every process of the job
sees them: the experiment's driver on the head and every step's task on every worker. The
entrypoint is the cluster's venv python (the one infra/make_clusters.py's setup builds in the
synced checkout) running the experiment from the shipped tree, whose ``src`` shadows the synced copy.

The cluster is reached at ``--address`` (its dashboard, e.g. ``http://127.0.0.1:8265``), or through
``ray dashboard CONFIG``, which forwards the head's dashboard port over SSH while this command runs.
By default the command follows the job's log to its end and exits 0 only if the job succeeded;
``--no-wait`` returns once it is submitted. ``--dry-run`` submits nothing and prints where it would
go, the entrypoint, the names (never the values) of the variables it carries and the size of the
working tree it would upload.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DASHBOARD_PORT = 8265
"""Ray's default dashboard port: the head's (infra/make_clusters.py keeps it) and the tunnel's local end."""
NAMED_VARIABLES = ("SODA_PREFIX", "HF_TOKEN", "WANDB_API_KEY")
"""Passed on when set: the output prefix and the credentials a step may need."""
CORPUS_ROOT_VARIABLE = re.compile(r"SODA_[A-Z0-9_]+_ROOT")
"""The corpus roots (``SODA_RAW_ROOT``, ...): every variable of this form that is set is passed on."""
SHIPPED_PYTHONPATH = os.pathsep.join(("src", "."))
"""Relative to the job's working directory (every job process starts there): the shipped
``soda_jax`` and ``experiments`` come before the copies the cluster's venv installed from the synced checkout."""
MERGE_RUNTIME_ENVS = {"RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
"""The driver's ``ray.init`` (`soda_jax.execution.parallel.ensure_ray`) passes on variables the job
also carries (``SODA_PREFIX``, ``PYTHONPATH``); without this Ray refuses the two runtime envs as
conflicting instead of merging them (the driver's values, the same, win)."""
VENV_DIR = ".venv"
"""The Makefile's ``VENV``, inside the checkout the cluster YAML syncs to every host."""
TUNNEL_WAIT_S = 120.0
"""How long `ray dashboard` may take to open its SSH tunnel to the head."""
STATUS_POLL_S = 2.0
AGENT_WAIT_S = 120.0
"""How long to retry a submission the head refuses for want of a job agent (its dashboard answers before
its agent has registered, just after the cluster starts); the head's own advice is to try again later."""
AGENT_UNAVAILABLE = "No available agent to submit job"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class LaunchError(RuntimeError):
    """The experiment cannot be launched as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What `soda launch` submits."""

    entrypoint: str
    """The shell command the job runs on the head, in the working directory."""
    working_dir: str
    """The local directory shipped as the job's working directory."""
    env_vars: dict[str, str] = dataclasses.field(repr=False)
    """Every variable the job's processes get (secret values among them: never printed)."""
    forwarded: tuple[str, ...]
    """Names in ``env_vars`` taken from the user's environment."""
    unset: tuple[str, ...]
    """`NAMED_VARIABLES` not set in the user's environment (so not passed)."""
    submission_id: str
    """The job's name on the cluster (``ray job logs SUBMISSION_ID``)."""
    metadata: dict[str, str]
    """Shown with the job in Ray's dashboard: the experiment and its arguments."""

    def runtime_env(self) -> dict[str, Any]:
        return {"working_dir": self.working_dir, "env_vars": dict(self.env_vars)}


def project_root(experiment: str) -> str:
    """The nearest directory above ``experiment`` that holds a pyproject.toml (the repository)."""
    path = Path(experiment).resolve().parent
    for directory in (path, *path.parents):
        if (directory / "pyproject.toml").is_file():
            return str(directory)
    raise LaunchError(f"{experiment}: no pyproject.toml above it; pass --working-dir")


def cluster_python(cluster_yaml: str) -> str:
    """The venv python on the hosts of the cluster ``cluster_yaml`` describes: in the directory its
    ``file_mounts`` syncs the local checkout (``.``) to."""
    try:
        with open(cluster_yaml) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise LaunchError(f"cannot read the cluster config {cluster_yaml}: {error}") from None
    mounts = config.get("file_mounts") if isinstance(config, dict) else None
    remote = [dst for dst, src in (mounts or {}).items() if os.path.normpath(str(src)) == "."]
    if len(remote) != 1:
        raise LaunchError(
            f"{cluster_yaml}: file_mounts has no single entry syncing the checkout ('.'), so the "
            f"cluster's venv is unknown; pass --python"
        )
    return f"{remote[0].rstrip('/')}/{VENV_DIR}/bin/python"


def job_environment(
    environ: Mapping[str, str], extra: list[str]
) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]:
    """(variables for the job, the names taken from ``environ``, the `NAMED_VARIABLES` not set there).

    A name asked for with ``--env`` must be set; the named and corpus-root variables are passed when set."""
    missing = [name for name in extra if name not in environ]
    if missing:
        raise LaunchError(f"--env {' '.join(missing)}: not set in this environment")
    roots = sorted(name for name in environ if CORPUS_ROOT_VARIABLE.fullmatch(name))
    names = tuple(dict.fromkeys(n for n in (*NAMED_VARIABLES, *roots, *extra) if n in environ))
    fixed = {"PYTHONPATH": SHIPPED_PYTHONPATH, **MERGE_RUNTIME_ENVS}
    clash = sorted(set(names) & set(fixed))
    if clash:
        raise LaunchError(f"--env {' '.join(clash)}: soda launch sets these itself")
    env = {**{name: environ[name] for name in names}, **fixed}
    return env, names, tuple(n for n in NAMED_VARIABLES if n not in environ)


def build_job(args: argparse.Namespace, environ: Mapping[str, str]) -> JobSpec:
    if not os.path.isfile(args.experiment):
        raise LaunchError(f"{args.experiment}: no such experiment file")
    working_dir = os.path.abspath(args.working_dir or project_root(args.experiment))
    script = os.path.relpath(os.path.abspath(args.experiment), working_dir)
    if script.startswith(os.pardir):
        raise LaunchError(f"{args.experiment} is outside the working directory {working_dir}")
    if args.python:
        python = args.python
    elif args.cluster:
        python = cluster_python(args.cluster)
    else:
        raise LaunchError("the cluster's python is unknown: pass --cluster CONFIG or --python PATH")
    env, forwarded, unset = job_environment(environ, args.env)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(script).stem).strip("-")
    return JobSpec(
        entrypoint=shlex.join([python, script, *args.experiment_args]),
        working_dir=working_dir,
        env_vars=env,
        forwarded=forwarded,
        unset=unset,
        submission_id=f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}",
        metadata={"experiment": script, "args": shlex.join(args.experiment_args)},
    )


def working_dir_package(working_dir: str) -> tuple[int, int]:
    """(bytes, files) of the zip Ray would upload for ``working_dir``, built with Ray's own packaging
    rules (.gitignore files honoured unless ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``)."""
    from ray._private.ray_constants import RAY_RUNTIME_ENV_IGNORE_GITIGNORE
    from ray._private.runtime_env.packaging import create_package

    include_gitignore = os.environ.get(RAY_RUNTIME_ENV_IGNORE_GITIGNORE, "0") != "1"
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "working_dir.zip"
        create_package(working_dir, target, include_gitignore=include_gitignore, logger=logger)
        with zipfile.ZipFile(target) as package:
            files = sum(1 for info in package.infolist() if not info.is_dir())
        return target.stat().st_size, files


def address_description(args: argparse.Namespace) -> str:
    if args.address:
        return args.address
    return (
        f"http://127.0.0.1:{args.port}, the head's dashboard forwarded over SSH by "
        f"`ray dashboard {args.cluster} --port {args.port}`"
    )


def describe(job: JobSpec, address: str) -> list[str]:
    """What `--dry-run` prints: where, what, which variables (names only) and how much is uploaded."""
    size, files = working_dir_package(job.working_dir)
    fixed = sorted(set(job.env_vars) - set(job.forwarded))
    lines = [
        "soda launch --dry-run: nothing submitted",
        f"  address:      {address}",
        f"  job:          {job.submission_id}",
        f"  entrypoint:   {job.entrypoint}",
        f"  working dir:  {job.working_dir} ({size / 2**20:.1f} MiB zipped, {files} files)",
        f"  environment:  {', '.join(job.forwarded) or '(none)'} from this shell (values not shown); "
        f"{', '.join(fixed)} set by soda launch",
    ]
    if job.unset:
        lines.append(f"  not set here: {', '.join(job.unset)}")
    return lines


def dashboard_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def ray_command() -> str:
    """The ``ray`` command of the environment soda runs in (the one `ray up` was run with, normally)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    return beside if os.path.exists(beside) else "ray"


@contextlib.contextmanager
def dashboard_tunnel(cluster_yaml: str, port: int, wait_s: float = TUNNEL_WAIT_S) -> Iterator[str]:
    """``ray dashboard CLUSTER_YAML --port PORT`` running (an SSH tunnel to the head's dashboard);
    yields the local address once the dashboard answers, stops the tunnel on exit."""
    address = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        command = [ray_command(), "dashboard", cluster_yaml, "--port", str(port)]
        try:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise LaunchError(f"cannot run {shlex.join(command)}: {error}") from None
        try:
            deadline = time.monotonic() + wait_s
            while not dashboard_answers(address):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    said = log.read().decode(errors="replace").strip().splitlines()[-15:]
                    state = (
                        f"exited with status {process.returncode}"
                        if process.poll() is not None
                        else f"gave no answer within {wait_s:.0f} s"
                    )
                    raise LaunchError(
                        f"`{shlex.join(command)}` {state}; is the cluster up (`ray up {cluster_yaml}`)?\n"
                        + "\n".join(f"  {line}" for line in said)
                    )
                time.sleep(1)
            yield address
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def follow(client: Any, submission_id: str) -> Any:
    """Print the job's log as it is written; its final status."""

    async def tail() -> None:
        async for lines in client.tail_job_logs(submission_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    status = client.get_job_status(submission_id)
    while not status.is_terminal():
        time.sleep(STATUS_POLL_S)
        status = client.get_job_status(submission_id)
    return status


def submit(job: JobSpec, address: str, wait: bool) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client = JobSubmissionClient(address)
            client.submit_job(
                entrypoint=job.entrypoint,
                runtime_env=job.runtime_env(),
                submission_id=job.submission_id,
                metadata=job.metadata,
            )
            break
        except (ConnectionError, RuntimeError, ValueError) as error:
            if AGENT_UNAVAILABLE in str(error) and time.monotonic() < deadline:
                logger.info("%s has no job agent yet; retrying", address)
                time.sleep(STATUS_POLL_S)
                continue
            raise LaunchError(f"submitting to {address} failed: {error}") from None
    print(
        f"soda launch: submitted {job.submission_id} to {address}\n"
        f"  log:  ray job logs --address {address} --follow {job.submission_id}\n"
        f"  stop: ray job stop --address {address} {job.submission_id}",
        flush=True,
    )
    if not wait:
        return EXIT_OK
    try:
        status = follow(client, job.submission_id)
    except KeyboardInterrupt:
        print(f"\nsoda launch: stopped following; {job.submission_id} goes on running on the cluster", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"soda launch: {job.submission_id} {status.value}")
    return EXIT_OK if status == JobStatus.SUCCEEDED else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soda launch",
        usage="soda launch EXPERIMENT.py (--cluster CONFIG | --address URL) [--env NAME ...] [--python PATH] "
        "[--working-dir DIR] [--port N] [--no-wait] [--dry-run] [-- ARGS]",
        description="Submit an experiment file to a Ray cluster as a job, with the working tree and named "
        "variables from this environment (SODA_PREFIX, SODA_*_ROOT, HF_TOKEN, WANDB_API_KEY, --env NAME).",
        epilog="Arguments after `--` go to the experiment, e.g. -- --prefix gs://BUCKET/soda --dry_run",
    )
    p.add_argument("experiment", help="the experiment file, e.g. experiments/soda_600m.py")
    p.add_argument("--cluster", metavar="CONFIG", help="the cluster's `ray up` YAML (infra/cluster-*.yaml)")
    p.add_argument(
        "--address",
        metavar="URL",
        help="the cluster's dashboard, e.g. http://127.0.0.1:8265 (default: a tunnel opened by `ray dashboard CONFIG`)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this variable from this environment too (repeatable)",
    )
    p.add_argument(
        "--python",
        metavar="PATH",
        help="the python that runs the experiment on the head (default: the venv the cluster YAML's setup builds)",
    )
    p.add_argument(
        "--working-dir",
        metavar="DIR",
        help="the directory shipped as the job's working directory (default: the repository holding the experiment)",
    )
    p.add_argument("--port", type=int, metavar="N", default=DASHBOARD_PORT, help="local port of the dashboard tunnel")
    p.add_argument("--no-wait", action="store_true", help="return once submitted instead of following the log")
    p.add_argument("--dry-run", action="store_true", help="print what would run where; submit nothing")
    return p


def launch_main(argv: list[str]) -> int:
    """``soda launch EXPERIMENT.py --cluster CONFIG [--env NAME ...] [--dry-run] [-- ARGS]``; the exit status."""
    ours, experiment_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    p = parser()
    args = p.parse_args(ours)
    args.experiment_args = experiment_args
    if not args.cluster and not args.address:
        p.error("give --cluster CONFIG (the tunnel is opened for you) or --address URL")
    try:
        job = build_job(args, os.environ)
        if args.dry_run:
            print("\n".join(describe(job, address_description(args))))
            return EXIT_OK
        if args.address:
            return submit(job, args.address, wait=not args.no_wait)
        with dashboard_tunnel(args.cluster, args.port) as address:
            return submit(job, address, wait=not args.no_wait)
    except LaunchError as error:
        print(f"soda launch: {error}", file=sys.stderr)
        return EXIT_FAILED
