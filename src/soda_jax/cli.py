"""``soda``: inspect what the executor wrote.

    soda info PATH      a step's output directory, or an experiment JSON: status, provenance;
                        a failed step's traceback (exit status 1 if a step FAILED or DEP_FAILED)
    soda dashboard [--prefix P] [--port 8265]   experiments, steps, provenance, metrics in a browser
    soda plan --budget 1e21   compute-optimal model and data for a FLOP budget (scaling laws)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from soda_jax import io
from soda_jax.execution.executor import INFO_FILE
from soda_jax.execution.main import PREFIX_ENV
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import STATUS_DEP_FAILED, STATUS_FAILED, read_status

FAILED_STATUSES = (STATUS_FAILED, STATUS_DEP_FAILED)


def describe_step(path: str) -> list[str]:
    info = io.read_json_or_none(io.join(path, INFO_FILE)) or {}
    prov = io.read_json_or_none(io.join(path, PROVENANCE_FILE)) or {}
    status = read_status(path)
    lines = [f"{info.get('name', '?')}  [{status.status if status else 'not run'}]  {path}"]
    if info:
        lines.append(f"  fn:        {info['fn']}")
        lines.append(f"  version:   {info['version']['config']}")
        for dep in info.get("dependencies", []):
            dep_status = read_status(dep)
            lines.append(f"  input:     {dep}" + (f"  [{dep_status.status}]" if status and status.status == STATUS_DEP_FAILED and dep_status else ""))
    if prov:
        git = prov.get("git", {})
        devices = prov.get("devices", {})
        lines.append(f"  ran:       {prov.get('started_at')} .. {prov.get('ended_at', 'running')}"
                     f" ({prov.get('duration_s', '?')} s) on {prov.get('host')} ({prov.get('runner')})")
        lines.append(f"  code:      {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")
        lines.append(f"  devices:   {devices}")
        packages = prov.get("packages", {})
        lines.append("  packages:  " + ", ".join(f"{k} {v}" for k, v in packages.items() if v))
        if "error" in prov:
            lines.append(f"  error:     {prov['error']['type']}: {prov['error']['message']}")
            if prov["error"].get("traceback"):
                lines += ["  traceback:"] + [f"    {line}" for line in prov["error"]["traceback"].rstrip().splitlines()]
        if prov.get("previous_attempts"):
            ends = ", ".join(f"{a.get('status')} at {a.get('ended_at', '?')}" for a in prov["previous_attempts"])
            lines.append(f"  attempts:  {len(prov['previous_attempts'])} earlier ({ends})")
    return lines


def failed(path: str) -> bool:
    status = read_status(path)
    return status is not None and status.status in FAILED_STATUSES


def info(path: str) -> int:
    if path.endswith(".json"):
        experiment: dict[str, Any] = io.read_json(path)
        print(f"experiment {path}\n  {experiment.get('description', '')}")
        for step in experiment["steps"]:
            print("\n".join(describe_step(step["output_path"])))
        return 1 if any(failed(step["output_path"]) for step in experiment["steps"]) else 0
    if not io.exists(path):
        print(f"no such step output: {path}", file=sys.stderr)
        return 1
    print("\n".join(describe_step(path)))
    return 1 if failed(path) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soda", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    info_cmd = commands.add_parser("info", help="show a step's status and provenance, or an experiment's")
    info_cmd.add_argument("path", help="a step output directory or an experiment JSON")
    dash_cmd = commands.add_parser("dashboard", help="serve the executor dashboard over HTTP")
    dash_cmd.add_argument("--prefix", default=os.environ.get(PREFIX_ENV), help=f"default ${PREFIX_ENV}")
    dash_cmd.add_argument("--host", default="127.0.0.1")
    dash_cmd.add_argument("--port", type=int, default=8265)
    plan_cmd = commands.add_parser("plan", help="compute-optimal allocation for a FLOP budget")
    plan_cmd.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "info":
        return info(args.path)
    if args.command == "dashboard":
        if not args.prefix:
            parser.error(f"pass --prefix or set ${PREFIX_ENV}")
        from soda_jax.dashboard.server import serve

        serve(args.prefix, args.host, args.port)
        return 0
    if args.command == "plan":
        from soda_jax.scaling.planner import plan_main

        return plan_main(args.rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
