"""``soda``: inspect what the executor wrote, plan, compile, generate, launch.

    soda info PATH      a step's output directory, or an experiment JSON: status, provenance;
                        a failed step's traceback (exit status 1 if a step FAILED or DEP_FAILED)
    soda dashboard --prefix P [--host 127.0.0.1] [--port 8365]   experiments, DAGs, curves, results in a browser
    soda plan --budget 1e21 --fits DIR   compute-optimal model and data for a FLOP budget (scaling laws)
    soda compile soda-135m --tpu v5p-32   compile a run's training step for a TPU slice here (HBM, FLOPs)
    soda generate tts|voice-tts|asr|continue --checkpoint PATH --out DIR ...   speech or text (docs/inference.md)
    soda launch EXPERIMENT.py --cluster CONFIG [-- ARGS]   submit an experiment to a Ray cluster

Every command has its own ``--help``; flags may come in any order.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import INFO_FILE, PROVENANCE_FILE
from soda_jax.dashboard import DEFAULT_PORT
from soda_jax.dashboard.files import load_json
from soda_jax.execution.main import PREFIX_ENV
from soda_jax.execution.status import STATUS_DEP_FAILED, STATUS_FAILED, STATUS_WAITING, read_status

FAILED_STATUSES = (STATUS_FAILED, STATUS_DEP_FAILED)


def field(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` if it is an object, else {} (a hand-edited or foreign file)."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def describe_step(path: str) -> list[str]:
    """What ``soda info`` prints for one step; a malformed file is named, never a traceback."""
    info_item, prov_item = load_json(fileio.join(path, INFO_FILE)), load_json(fileio.join(path, PROVENANCE_FILE))
    info, prov = info_item.value or {}, prov_item.value or {}
    status, _, status_error = read_status(path, tolerant=True)
    lines = [f"{info.get('name', '?')}  [{'not run' if status == STATUS_WAITING else status}]  {path}"]
    lines += [f"  problem:   {e}" for e in (status_error, info_item.error, prov_item.error) if e]
    if info:
        lines.append(f"  fn:        {info.get('fn')}")
        lines.append(f"  version:   {field(info, 'version').get('config')}")
        for dep in info.get("dependencies", []):
            dep_status = read_status(dep, tolerant=True).status if status == STATUS_DEP_FAILED else None
            lines.append(f"  input:     {dep}" + (f"  [{dep_status}]" if dep_status else ""))
    if prov:
        git = field(prov, "git")
        devices = field(prov, "devices")
        lines.append(
            f"  ran:       {prov.get('started_at')} .. {prov.get('ended_at', 'running')}"
            f" ({prov.get('duration_s', '?')} s) on {prov.get('host')} ({prov.get('runner')})"
        )
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
    return read_status(path, tolerant=True).status in FAILED_STATUSES


def info(path: str) -> int:
    if path.endswith(".json"):
        item = load_json(path)
        if item.error or item.value is None:
            print(f"cannot read experiment {path}: {item.error or 'no such file'}", file=sys.stderr)
            return 1
        experiment: dict[str, Any] = item.value
        print(f"experiment {path}\n  {experiment.get('description', '')}")
        steps = [
            step
            for step in experiment.get("steps") or []
            if isinstance(step, dict) and isinstance(step.get("output_path"), str)
        ]
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


# ------------------------------------------------------------------------------ command line
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (they hold examples); a flag's default (a number or a word) after its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = action.default
        if (
            text
            and "%(default)" not in text
            and default is not argparse.SUPPRESS
            and isinstance(default, (int, float, str))
            and not isinstance(default, bool)
        ):
            text += " (default: %(default)s)"
        return text


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``soda`` subcommand: its arguments and what runs them (both import their module lazily:
    ``soda info`` must not wait for JAX)."""

    help: str
    """One line for ``soda --help``."""
    arguments: Callable[[argparse.ArgumentParser], None]
    """Adds the subcommand's arguments to its parser."""
    run: Callable[[argparse.Namespace], int]
    """Runs the parsed arguments; returns the exit status."""
    description: Callable[[], str | None] = lambda: None
    """The subcommand's ``--help`` text above its arguments."""


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a step output directory or an experiment JSON")


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix", default=os.environ.get(PREFIX_ENV), help=f"the executor's prefix (default ${PREFIX_ENV})"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (8265 is Ray's dashboard; 0: any free one)"
    )


def _dashboard(args: argparse.Namespace) -> int:
    if not args.prefix:
        print(f"soda dashboard: error: pass --prefix or set ${PREFIX_ENV}", file=sys.stderr)
        return 2
    from soda_jax.dashboard.server import serve

    serve(args.prefix, args.host, args.port)
    return 0


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    from soda_jax.scaling.planner import add_plan_arguments

    add_plan_arguments(parser)


def _plan(args: argparse.Namespace) -> int:
    from soda_jax.scaling.planner import run_plan

    return run_plan(args)


def _compile_arguments(parser: argparse.ArgumentParser) -> None:
    from soda_jax.aot.cli import add_arguments

    add_arguments(parser)


def _compile(args: argparse.Namespace) -> int:
    from soda_jax.aot.cli import run

    return run(args)


def _compile_description() -> str | None:
    from soda_jax.aot import cli

    return cli.__doc__


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    from soda_jax.inference.cli import add_arguments

    add_arguments(parser)


def _generate(args: argparse.Namespace) -> int:
    from soda_jax.inference.cli import run

    return run(args)


def _launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "argv", nargs=argparse.REMAINDER, help="EXPERIMENT.py --cluster CONFIG [...] [-- ARGS] (soda launch --help)"
    )


def _launch(args: argparse.Namespace) -> int:
    return launch(args.argv)


def launch(argv: list[str]) -> int:
    """``soda launch ARGV``: everything after ``launch`` (``--`` and what follows included) goes to
    `soda_jax.execution.launch.launch_main` as it is."""
    from soda_jax.execution.launch import launch_main

    return launch_main(list(argv))


COMMANDS: dict[str, Command] = {
    "info": Command(
        "show a step's status and provenance, or an experiment's", _info_arguments, lambda args: info(args.path)
    ),
    "dashboard": Command("serve the executor dashboard over HTTP", _dashboard_arguments, _dashboard),
    "plan": Command("compute-optimal allocation for a FLOP budget", _plan_arguments, _plan),
    "compile": Command(
        "AOT-compile a training step for a TPU slice: fits? FLOPs?", _compile_arguments, _compile, _compile_description
    ),
    "generate": Command("generate speech or text with a checkpoint", _generate_arguments, _generate),
    "launch": Command("submit an experiment file to a Ray cluster as a job", _launch_arguments, _launch),
}
"""``soda``'s subcommands, in ``soda --help``'s order."""
PASS_THROUGH = ("launch",)
"""Subcommands whose arguments go unparsed to their own command line (its ``--help`` is its own)."""


def build_parser(commands: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """``soda``'s parser; ``commands``: the subcommands whose arguments to build (default all; the
    others are listed in ``soda --help`` but take no arguments)."""
    parser = argparse.ArgumentParser(
        prog="soda", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        built = commands is None or name in commands
        sub = subparsers.add_parser(
            name,
            help=command.help,
            description=(command.description() if built else None) or command.help,
            formatter_class=HelpFormatter,
            add_help=name not in PASS_THROUGH,
            allow_abbrev=False,
        )
        if built:
            command.arguments(sub)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed ``soda`` command line (only the chosen subcommand's module is imported); exits
    with argparse's message (status 2) on an argument error, or after printing ``--help``."""
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    return build_parser((chosen,) if chosen else ()).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["launch"]:  # as given: its flags and ``-- ARGS`` are launch_main's to parse
        return launch(argv[1:])
    args = parse(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
