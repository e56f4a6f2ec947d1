"""``soda``: inspect what the executor wrote.

    soda info PATH      a step's output directory, or an experiment JSON: status, provenance;
                        a failed step's traceback (exit status 1 if a step FAILED or DEP_FAILED)
    soda dashboard --prefix P [--host 127.0.0.1] [--port 8365]   experiments, DAGs, curves, results in a browser
    soda plan --budget 1e21   compute-optimal model and data for a FLOP budget (scaling laws)
    soda compile soda-135m --tpu v5p-32   compile a run's training step for a TPU slice here (HBM, FLOPs)
    soda generate tts|voice-tts|asr|continue --checkpoint PATH --out DIR ...   speech or text (docs/inference.md)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import INFO_FILE, PROVENANCE_FILE
from soda_jax.dashboard import DEFAULT_PORT
from soda_jax.dashboard.files import load_json
from soda_jax.dashboard.store import STATUS_WAITING, read_status
from soda_jax.execution.main import PREFIX_ENV
from soda_jax.execution.status import STATUS_DEP_FAILED, STATUS_FAILED

FAILED_STATUSES = (STATUS_FAILED, STATUS_DEP_FAILED)


def field(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` if it is an object, else {} (a hand-edited or foreign file)."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def describe_step(path: str) -> list[str]:
    """What ``soda info`` prints for one step; a malformed file is named, never a traceback."""
    info_item, prov_item = load_json(fileio.join(path, INFO_FILE)), load_json(fileio.join(path, PROVENANCE_FILE))
    info, prov = info_item.value or {}, prov_item.value or {}
    status, _, status_error = read_status(path)
    lines = [f"{info.get('name', '?')}  [{'not run' if status == STATUS_WAITING else status}]  {path}"]
    lines += [f"  problem:   {e}" for e in (status_error, info_item.error, prov_item.error) if e]
    if info:
        lines.append(f"  fn:        {info.get('fn')}")
        lines.append(f"  version:   {field(info, 'version').get('config')}")
        for dep in info.get("dependencies", []):
            dep_status = read_status(dep)[0] if status == STATUS_DEP_FAILED else None
            lines.append(f"  input:     {dep}" + (f"  [{dep_status}]" if dep_status else ""))
    if prov:
        git = field(prov, "git")
        devices = field(prov, "devices")
        lines.append(f"  ran:       {prov.get('started_at')} .. {prov.get('ended_at', 'running')}"
                     f" ({prov.get('duration_s', '?')} s) on {prov.get('host')} ({prov.get('runner')})")
        lines.append(f"  code:      {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")
        lines.append(f"  devices:   {devices}")
        packages = field(prov, "packages")
        lines.append("  packages:  " + ", ".join(f"{k} {v}" for k, v in packages.items() if v))
        error = field(prov, "error")
        if error:
            lines.append(f"  error:     {error.get('type')}: {error.get('message')}")
            if isinstance(error.get("traceback"), str) and error["traceback"]:
                lines += ["  traceback:"] + [f"    {line}" for line in error["traceback"].rstrip().splitlines()]
        attempts = prov.get("previous_attempts")
        if isinstance(attempts, list) and attempts:
            ends = ", ".join(f"{a.get('status')} at {a.get('ended_at', '?')}" for a in attempts if isinstance(a, dict))
            lines.append(f"  attempts:  {len(attempts)} earlier ({ends})")
    return lines


def failed(path: str) -> bool:
    return read_status(path)[0] in FAILED_STATUSES


def info(path: str) -> int:
    if path.endswith(".json"):
        item = load_json(path)
        if item.error or item.value is None:
            print(f"cannot read experiment {path}: {item.error or 'no such file'}", file=sys.stderr)
            return 1
        experiment: dict[str, Any] = item.value
        print(f"experiment {path}\n  {experiment.get('description', '')}")
        steps = [step for step in experiment.get("steps") or [] if isinstance(step, dict) and isinstance(step.get("output_path"), str)]
        for step in experiment.get("steps") or []:
            if step not in steps:
                print(f"  problem:   a step entry without an output_path: {str(step)[:200]}")
        for step in steps:
            print("\n".join(describe_step(step["output_path"])))
        return 1 if any(failed(step["output_path"]) for step in steps) else 0
    if not fileio.exists(path):
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
    dash_cmd.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT} (8265 is Ray's dashboard)")
    plan_cmd = commands.add_parser("plan", help="compute-optimal allocation for a FLOP budget")
    plan_cmd.add_argument("rest", nargs=argparse.REMAINDER)
    compile_cmd = commands.add_parser("compile", help="AOT-compile a training step for a TPU slice: fits? FLOPs?")
    compile_cmd.add_argument("rest", nargs=argparse.REMAINDER)
    generate_cmd = commands.add_parser("generate", help="generate speech or text with a checkpoint", add_help=False)
    generate_cmd.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "compile":
        from soda_jax.aot.cli import compile_main

        return compile_main(args.rest)
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
