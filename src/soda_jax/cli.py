"""``soda``: inspect what the executor wrote.

    soda info PATH      a step's output directory, or an experiment JSON: status, provenance
    soda dashboard [--prefix P] [--port 8265]   experiments, steps, provenance, metrics in a browser
    soda plan --budget 1e21   compute-optimal model and data for a FLOP budget (scaling laws)
    soda generate tts|voice-tts|asr|continue --checkpoint PATH --out DIR ...   speech or text (docs/inference.md)
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
from soda_jax.execution.status import read_status


def describe_step(path: str) -> list[str]:
    info = io.read_json_or_none(io.join(path, INFO_FILE)) or {}
    prov = io.read_json_or_none(io.join(path, PROVENANCE_FILE)) or {}
    status = read_status(path)
    lines = [f"{info.get('name', '?')}  [{status.status if status else 'not run'}]  {path}"]
    if info:
        lines.append(f"  fn:        {info['fn']}")
        lines.append(f"  version:   {info['version']['config']}")
        for dep in info.get("dependencies", []):
            lines.append(f"  input:     {dep}")
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
        if prov.get("previous_attempts"):
            lines.append(f"  attempts:  {len(prov['previous_attempts'])} earlier")
    return lines


def info(path: str) -> int:
    if path.endswith(".json"):
        experiment: dict[str, Any] = io.read_json(path)
        print(f"experiment {path}\n  {experiment.get('description', '')}")
        for step in experiment["steps"]:
            print("\n".join(describe_step(step["output_path"])))
        return 0
    if not io.exists(path):
        print(f"no such step output: {path}", file=sys.stderr)
        return 1
    print("\n".join(describe_step(path)))
    return 0


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
    generate_cmd = commands.add_parser("generate", help="generate speech or text with a checkpoint", add_help=False)
    generate_cmd.add_argument("rest", nargs=argparse.REMAINDER)
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
    if args.command == "generate":
        from soda_jax.inference.cli import generate_main

        return generate_main(args.rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
