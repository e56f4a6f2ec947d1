"""``executor_main``: the command line of every experiment file.

python experiments/hello_executor.py --prefix /tmp/soda --dry_run
python experiments/hello_executor.py --run_only "train.*" --force_run_failed
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import draccus

from soda_jax.contracts import PROVENANCE_FILE
from soda_jax.execution.executor import Executor, RunReport
from soda_jax.execution.status import LeaseTiming
from soda_jax.execution.step import ExecutorStep

logger = logging.getLogger(__name__)

PREFIX_ENV = "SODA_PREFIX"
BOOLEAN_FLAGS = ("--dry_run", "--force_run_failed", "--local")
LIST_FLAGS = ("--run_only",)


@dataclass
class ExecutorMainConfig:
    prefix: str | None = None
    """Where outputs go (local path or fsspec URL); defaults to $SODA_PREFIX."""
    dry_run: bool = False
    """Print what each step would do (run / skip / wait / fail / blocked) and why; run nothing."""
    run_only: list[str] | None = None
    """Regexes: run only the steps whose names match, plus their dependencies."""
    force_run_failed: bool = False
    """Re-run steps that failed in an earlier run (otherwise they stay failed)."""
    max_concurrent: int | None = None
    """Most steps running at once (default: as many as dependencies allow)."""
    local: bool = False
    """Run steps in this process instead of as Ray tasks (for debugging)."""
    ray_address: str | None = None
    """Ray cluster to submit to (default $RAY_ADDRESS, else a local Ray is started)."""
    heartbeat_s: float = LeaseTiming.heartbeat_s
    """Seconds between lease refreshes of a running step."""
    stale_after_s: float = LeaseTiming.stale_after_s
    """Seconds after which a step's silent lease is taken over."""

    def output_prefix(self) -> str:
        """``prefix``, else ``$SODA_PREFIX``; exits with a message when neither is set."""
        prefix = self.prefix or os.environ.get(PREFIX_ENV)
        if not prefix:
            raise SystemExit(f"no output prefix: pass --prefix or set ${PREFIX_ENV}")
        return prefix


def normalize_argv(argv: list[str]) -> list[str]:
    """Accept ``--dry_run`` bare and ``--run_only A B`` as a list, in draccus' syntax."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg in BOOLEAN_FLAGS and (following is None or following.startswith("--")):
            out += [arg, "true"]
        elif arg in LIST_FLAGS:
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                values.append(argv[i + 1])
                i += 1
            joined = values[0] if len(values) == 1 and values[0].startswith("[") else f"[{','.join(values)}]"
            out += [arg, joined]
        else:
            out.append(arg)
        i += 1
    return out


def pop_option(argv: Sequence[str], flag: str) -> tuple[str | None, list[str]]:
    """``flag VALUE`` out of an experiment's command line: (VALUE, or None when the flag is absent; the
    rest, for the executor). A flag without a value exits with a message naming it."""
    args = list(argv)
    if flag not in args:
        return None, args
    i = args.index(flag)
    if i + 1 >= len(args) or args[i + 1].startswith("--"):
        raise SystemExit(f"{flag} needs a value")
    return args[i + 1], args[:i] + args[i + 2 :]


def executor_main(steps: list[ExecutorStep], description: str = "", args: list[str] | None = None) -> RunReport | None:
    """Parse the command line and run (or dry-run) ``steps``; exits non-zero if any step failed."""
    config = draccus.parse(ExecutorMainConfig, args=normalize_argv(sys.argv[1:] if args is None else args))
    return run_experiment(steps, config, description)


def run_experiment(steps: list[ExecutorStep], config: ExecutorMainConfig, description: str = "") -> RunReport | None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    executor = Executor(
        config.output_prefix(),
        use_ray=not config.local,
        ray_address=config.ray_address,
        max_concurrent=config.max_concurrent,
        force_run_failed=config.force_run_failed,
        lease_timing=LeaseTiming(config.heartbeat_s, config.stale_after_s),
    )
    if config.dry_run:
        for decision in executor.dry_run(steps, config.run_only):
            print(
                f"{decision.action:8s} {decision.step.name:40s} {executor.output_path(decision.step)}\n"
                f"{'':8s} {decision.reason}"
            )
        return None
    report = executor.run(steps, config.run_only, description)
    print(f"experiment: {executor.experiment_path(steps)}")
    width = max(len(name) for name in report.output_paths)
    for name, path in report.output_paths.items():
        print(f"  {name:{width}s}  {report.statuses.get(path, 'not run'):10s}  {path}")
    print(f"  (each step's provenance: {{path}}/{PROVENANCE_FILE}, or `soda info PATH`)")
    return report
