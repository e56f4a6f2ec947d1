"""The executor: runs an experiment's DAG of steps once each, on Ray or in-process.

For every step it decides, in dependency order: skip (already SUCCESS), run, wait (another
executor holds its lease), or not run (a dependency failed -> DEP_FAILED, or it failed before and
``force_run_failed`` is off). Steps run concurrently as far as their dependencies and
``max_concurrent`` allow; each runs as a Ray task honouring its `Resources` (or in this process).

Before anything runs, every raw input of the steps to run (`versioning.fixed_inputs`) must be
readable: a missing path or a hub repository refusing the credential stops the run there, naming
the step and the location. A step reading raw input records what it found (`provenance.record_inputs`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import EXPERIMENT_KEY, EXPERIMENTS_DIR, INFO_FILE
from soda_jax.execution import fencing
from soda_jax.execution.failures import describe_failure, root_cause
from soda_jax.execution.fencing import Fence
from soda_jax.execution.parallel import ensure_ray, on_cluster, pickled, run_as_task, unpickled
from soda_jax.execution.provenance import (
    StepRecorder,
    changed_inputs,
    describe_changes,
    git_state,
    mark_died,
    now_iso,
    record_inputs,
)
from soda_jax.execution.status import (
    STATUS_DEP_FAILED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SUCCESS,
    Heartbeat,
    LeaseLost,
    LeaseTiming,
    StepLease,
    read_status,
    write_status,
)
from soda_jax.execution.step import ExecutorStep
from soda_jax.execution.tpu import run_on_tpu_slices
from soda_jax.execution.versioning import (
    StepIdentity,
    compute_identities,
    config_as_json,
    dependencies,
    fixed_inputs,
    hash_version,
    instantiate,
)

logger = logging.getLogger(__name__)


class ExecutorError(RuntimeError):
    """Some steps failed; the message names each one and the steps that could not run."""


def run_step_here(
    fn: Callable[..., Any],
    config: Any,
    output_path: str,
    name: str,
    fence: Fence | None = None,
    extra: dict[str, Any] | None = None,
    *,
    startup_s: float = 0.0,
    import_s: float = 0.0,
) -> dict[str, float]:
    """Run one step in this process, recording its provenance next to its output; returns where its time
    went (the fields of `StepTiming` but the wall time, which the executor measures).

    With a ``fence`` every commit into the output (provenance included) first checks that the
    lease is still this attempt's, so an attempt that was taken over stops at its next commit.
    ``extra``: further provenance fields (what the step's raw inputs held). ``startup_s``, ``import_s``:
    what `run_step_task` measured before this call (recorded in the provenance's ``timing``).
    """
    timing = {"startup_s": round(startup_s, 3), "import_s": round(import_s, 3)}
    recorder = StepRecorder(output_path, name, extra={**(extra or {}), "timing": timing})
    with fencing.holding(() if fence is None else fence), recorder:
        started = time.time()
        fn(config)
    return {**timing, "work_s": round(time.time() - started, 3)}


def run_step_task(
    call: bytes, output_path: str, name: str, fence: Fence, extra: dict[str, Any] | None, submitted_at: float
) -> dict[str, float]:
    """`run_step_here` in a Ray worker. ``call`` is the pickled ``(fn, config)``, unpickled here so that the
    imports it triggers (the step's module and everything it imports) are timed apart from the worker's
    start-up; ``submitted_at``: when the executor handed the task to Ray."""
    entered = time.time()
    fn, config = unpickled(call)
    startup_s, import_s = max(0.0, entered - submitted_at), time.time() - entered
    return run_step_here(fn, config, output_path, name, fence, extra, startup_s=startup_s, import_s=import_s)


@dataclass(frozen=True)
class StepTiming:
    """Where one step's wall time went, as this run's executor saw it (`RunReport.timings`)."""

    wall_s: float
    """From handing the step over (a Ray task, or a call here) to its end."""
    startup_s: float
    """Before the step's code was unpickled in the worker: waiting for a CPU, a worker's start (0 here)."""
    import_s: float
    """Unpickling the step's function and config in the worker: importing their modules (0 where an earlier
    step in the same worker imported them, and in this process)."""
    work_s: float
    """The step function itself (its provenance's ``duration_s`` less the provenance's own writes)."""
    started_at: float = 0.0
    """When the executor handed the step over (seconds since the epoch): with ``wall_s``, the step's interval
    on the run's timeline (`soda_jax.execution.timeline`)."""

    @property
    def fixed_s(self) -> float:
        """Everything but the work: start-up, imports, and the executor's own bookkeeping around the task."""
        return max(0.0, self.wall_s - self.work_s)

    def describe(self) -> str:
        return (
            f"{self.wall_s:.1f}s (start-up {self.startup_s:.1f}s, imports {self.import_s:.1f}s, "
            f"work {self.work_s:.1f}s)"
        )


def unreadable_input(location: str) -> str | None:
    """Why a fixed input cannot be read now (`fileio.check_readable`), or None when it can."""
    try:
        fileio.check_readable(location)
    except (OSError, ValueError) as e:  # missing, refused, not a repository: the message says which
        return str(e)
    except Exception as e:  # a filesystem's own error (an expired cloud credential): named, not raised
        return f"{location}: {type(e).__name__}: {e}"
    return None


@dataclass
class Decision:
    """What the executor will do (dry run) or did with one step."""

    step: ExecutorStep
    action: str
    """run / skip / wait / fail / blocked"""
    reason: str


@dataclass
class RunReport:
    """Final status of every step of a run."""

    statuses: dict[str, str] = field(default_factory=dict)
    """output path -> status"""
    errors: dict[str, str] = field(default_factory=dict)
    """output path -> error message, for steps that failed in this run or before it"""
    output_paths: dict[str, str] = field(default_factory=dict)
    """step name -> output path, for every step of the experiment"""
    prefix: str = ""
    """The output prefix the experiment ran under."""
    timings: dict[str, StepTiming] = field(default_factory=dict)
    """step name -> where its time went, for the steps this run executed (not those skipped or waited for)"""
    started_at: float = 0.0
    """When the run started, before Ray (seconds since the epoch)."""


def topological_order(roots: list[ExecutorStep]) -> list[ExecutorStep]:
    """All steps reachable from ``roots`` (pseudo-dependencies included), dependencies first."""
    order: list[ExecutorStep] = []
    state: dict[int, str] = {}

    def visit(step: ExecutorStep, chain: tuple[str, ...]) -> None:
        if state.get(id(step)) == "done":
            return
        if state.get(id(step)) == "visiting":
            raise ValueError(f"dependency cycle: {' -> '.join((*chain, step.name))}")
        state[id(step)] = "visiting"
        for dep in dependencies(step):
            visit(dep, (*chain, step.name))
        state[id(step)] = "done"
        order.append(step)

    for root in roots:
        visit(root, ())
    return order


def experiment_script_name(argv0: str) -> str:
    """The experiment record's name stem: the script's file name without its suffix, its odd characters as
    ``_``; ``interactive`` for ``python -c`` (argv[0] ``-c``) and a REPL (argv[0] empty).
    Always a name `EXPERIMENT_KEY` accepts, so the dashboard lists every record the executor writes."""
    stem = os.path.splitext(os.path.basename(argv0))[0] if argv0 not in ("", "-c") else ""
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).lstrip(".+-")
    return stem if EXPERIMENT_KEY.match(stem) else "interactive"


class Executor:
    """Runs steps under ``prefix`` (a local path or any fsspec URL)."""

    def __init__(
        self,
        prefix: str,
        *,
        use_ray: bool = True,
        ray_address: str | None = None,
        max_concurrent: int | None = None,
        force_run_failed: bool = False,
        lease_timing: LeaseTiming = LeaseTiming(),
        poll_s: float | None = None,
    ):
        self.prefix = prefix.rstrip("/")
        self.use_ray = use_ray
        self.ray_address = ray_address
        self.max_concurrent = max_concurrent
        self.force_run_failed = force_run_failed
        self.lease_timing = lease_timing
        self.poll_s = poll_s if poll_s is not None else min(5.0, lease_timing.heartbeat_s / 2)
        self.started_at = time.time()
        self.identities: dict[int, StepIdentity] = {}
        self._canonical: dict[int, ExecutorStep] = {}
        """id of every step of the graph -> the node standing for it (copies of one step share one)."""

    # --------------------------------------------------------------------------------- planning
    def output_path(self, step: ExecutorStep) -> str:
        return self.identities[id(step)].output_path

    def prepare(self, steps: list[ExecutorStep], run_only: list[str] | None = None) -> list[ExecutorStep]:
        """Compute identities; return the steps to run (``run_only`` matches + their dependencies), each
        output path once (`graph`)."""
        import re

        everything = self.graph(steps)
        if run_only:
            patterns = [re.compile(p) for p in run_only]
            wanted = [s for s in everything if any(p.search(s.name) for p in patterns)]
            if not wanted:
                raise ValueError(f"--run_only {run_only} matches none of: {[s.name for s in everything]}")
        else:
            wanted = [self.canonical(s) for s in steps]
        needed: dict[int, ExecutorStep] = {}

        def pull(step: ExecutorStep) -> None:
            if id(step) not in needed:
                needed[id(step)] = step
                for dep in self.dependencies(step, blocking_only=True):
                    pull(dep)

        for step in wanted:
            pull(step)
        return [s for s in everything if id(s) in needed]

    def graph(self, steps: list[ExecutorStep]) -> list[ExecutorStep]:
        """Every step reachable from ``steps``, dependencies first, one node per output path.

        An experiment may build the same step twice (two calls of one ``default_*`` builder: same name,
        same version): the copies are one node, run once, listed once. Steps of one name but different
        versions have different output paths and stay apart; two different functions writing one output
        path are refused.
        """
        everything = topological_order(steps)
        self.identities = compute_identities(everything, self.prefix)
        first: dict[str, ExecutorStep] = {}
        self._canonical = {}
        for step in everything:
            path = self.output_path(step)
            other = first.setdefault(path, step)
            if other is not step:
                if other.fn is not step.fn:
                    raise ValueError(
                        f"steps {other.name!r} and {step.name!r} share output path {path} with different functions"
                    )
                self._warn_if_settings_differ(other, step)
            self._canonical[id(step)] = other
        return list(first.values())

    def canonical(self, step: ExecutorStep) -> ExecutorStep:
        """The one node standing for ``step`` (itself, or the first copy of it in the graph)."""
        return self._canonical.get(id(step), step)

    def dependencies(self, step: ExecutorStep, *, blocking_only: bool = False) -> list[ExecutorStep]:
        """``step``'s dependencies as nodes of the graph (`canonical`), each once."""
        nodes = [self.canonical(dep) for dep in dependencies(step, blocking_only=blocking_only)]
        return list({id(d): d for d in nodes}.values())

    def _warn_if_settings_differ(self, kept: ExecutorStep, copy: ExecutorStep) -> None:
        path = self.output_path(kept)
        kept_config, copy_config = (
            config_as_json(instantiate(s.config, path, self.output_path, self.prefix)) for s in (kept, copy)
        )
        if kept_config != copy_config:
            fields = sorted(k for k in {*kept_config, *copy_config} if kept_config.get(k) != copy_config.get(k))
            logger.warning(
                "step %s is built twice with the same version but different unversioned settings (%s): "
                "running the first",
                kept.name,
                ", ".join(fields),
            )

    def decide(self, step: ExecutorStep) -> Decision:
        """What running ``step`` now would do, judged from its status file and lease."""
        path = self.output_path(step)
        status = read_status(path)
        if status is not None and status.status == STATUS_SUCCESS:
            return Decision(step, "skip", f"already succeeded at {now_iso(status.time)}")
        if status is not None and status.status == STATUS_FAILED and not self._may_rerun(status.time):
            return Decision(step, "fail", "failed in an earlier run; re-run with --force_run_failed")
        holder = StepLease(path, self._owner(), self.lease_timing).holder()
        if holder is not None:
            age = time.time() - holder.heartbeat
            return Decision(step, "wait", f"running elsewhere: lease held by {holder.owner} (heartbeat {age:.0f}s ago)")
        if status is None:
            return Decision(step, "run", "no previous run")
        if status.status == STATUS_RUNNING:
            return Decision(step, "run", "previous run died (stale lease): taking over")
        return Decision(step, "run", f"previous status {status.status}")

    def judge_inputs(self, decision: Decision) -> Decision:
        """A decision amended by the step's raw inputs: blocked when one cannot be read (a step that
        would run), and noting the files that changed since the step last read them."""
        inputs = fixed_inputs(decision.step.config)
        if not inputs or decision.action in ("fail", "blocked"):
            return decision
        if decision.action != "skip":
            problems = [p for p in map(unreadable_input, inputs.values()) if p is not None]
            if problems:
                return Decision(decision.step, "blocked", f"cannot read its input: {'; '.join(problems)}")
        try:
            changes = changed_inputs(self.output_path(decision.step), inputs)
        except Exception as e:  # a dry run reports, it does not fail
            reason = f"{decision.reason}; its input cannot be read now: {e}"
            return Decision(decision.step, decision.action, reason)
        if not changes:
            return decision
        described = "; ".join(f"{inputs[f]}: {describe_changes(c)}" for f, c in changes.items())
        reason = f"{decision.reason}; input changed since it was read: {described}"
        return Decision(decision.step, decision.action, reason)

    def preflight(self, steps: list[ExecutorStep]) -> None:
        """Raise `ExecutorError` naming every raw input of ``steps`` (those not yet succeeded) that
        cannot be read: nothing has run yet when it does."""
        problems = []
        checked: dict[str, str | None] = {}
        for step in steps:
            if self._succeeded(step):
                continue
            for field_path, location in fixed_inputs(step.config).items():
                if location not in checked:
                    checked[location] = unreadable_input(location)
                if checked[location] is not None:
                    problems.append(f"  {step.name} ({field_path}): {checked[location]}")
        if problems:
            lines = "\n".join(problems)
            raise ExecutorError(f"{len(problems)} input(s) cannot be read; nothing was run:\n{lines}")

    def _may_rerun(self, failed_at: float) -> bool:
        # A failure from before this executor started may be retried when forced; one from this
        # run (a racing executor of ours just failed it) is final, so a step runs once per run.
        return self.force_run_failed and failed_at < self.started_at

    def dry_run(self, steps: list[ExecutorStep], run_only: list[str] | None = None) -> list[Decision]:
        to_run = self.prepare(steps, run_only)
        decisions: dict[int, Decision] = {}
        for step in to_run:
            decision = self.judge_inputs(self.decide(step))
            blocking = [d for d in self.dependencies(step, blocking_only=True) if decisions[id(d)].action != "skip"]
            if decision.action == "run" and blocking:
                failed = [d.name for d in blocking if decisions[id(d)].action in ("fail", "blocked")]
                if failed:
                    decision = Decision(step, "blocked", f"dependencies will not succeed: {', '.join(failed)}")
                else:
                    decision = Decision(step, "wait", f"after {', '.join(d.name for d in blocking)}")
            decisions[id(step)] = decision
        return [decisions[id(s)] for s in to_run]

    # ---------------------------------------------------------------------------------- running
    def run(self, steps: list[ExecutorStep], run_only: list[str] | None = None, description: str = "") -> RunReport:
        started_at = time.time()
        to_run = self.prepare(steps, run_only)
        self.preflight(to_run)
        everything = self.write_experiment(steps, description)
        # Decide before starting Ray (seconds): a re-run whose steps all succeeded before starts none.
        if self.use_ray and any(not self._succeeded(step) for step in to_run):
            ensure_ray(self.ray_address)
        slots = threading.Semaphore(self.max_concurrent or len(to_run) or 1)
        report = RunReport(
            output_paths={step.name: self.output_path(step) for step in everything},
            prefix=self.prefix,
            started_at=started_at,
        )
        futures: dict[int, Future[str]] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(to_run)), thread_name_prefix="step") as pool:
            for step in to_run:
                deps = [futures[id(d)] for d in self.dependencies(step, blocking_only=True)]
                futures[id(step)] = pool.submit(self._run_step, step, deps, slots, report)
            for step in to_run:
                futures[id(step)].result()
        failed = {p: e for p, e in report.errors.items() if report.statuses[p] == STATUS_FAILED}
        if failed:
            blocked = [p for p, s in report.statuses.items() if s == STATUS_DEP_FAILED]
            lines = [f"  {p}: {e}" for p, e in failed.items()]
            raise ExecutorError(
                f"{len(failed)} step(s) failed:\n"
                + "\n".join(lines)
                + (f"\nnot run because a dependency failed: {', '.join(blocked)}" if blocked else "")
            )
        return report

    def _succeeded(self, step: ExecutorStep) -> bool:
        status = read_status(self.output_path(step))
        return status is not None and status.status == STATUS_SUCCESS

    def _owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def _run_step(
        self, step: ExecutorStep, deps: list[Future[str]], slots: threading.Semaphore, report: RunReport
    ) -> str:
        path = self.output_path(step)
        status = self._run_step_status(step, deps, slots, report)
        report.statuses[path] = status
        return status

    def _run_step_status(
        self, step: ExecutorStep, deps: list[Future[str]], slots: threading.Semaphore, report: RunReport
    ) -> str:
        path = self.output_path(step)
        previous = read_status(path)
        if previous is not None and previous.status == STATUS_SUCCESS:
            logger.info("skip %s: already succeeded (%s)", step.name, path)
            return STATUS_SUCCESS
        if any(d.result() != STATUS_SUCCESS for d in deps):
            if StepLease(path, self._owner(), self.lease_timing).holder() is None:  # nobody else runs it
                write_status(path, STATUS_DEP_FAILED)
                self._write_info(step)
            logger.error("not running %s: a dependency failed", step.name)
            return STATUS_DEP_FAILED

        lease = StepLease(path, self._owner(), self.lease_timing)
        while True:
            status = read_status(path)
            if status is not None and status.status == STATUS_SUCCESS:
                return STATUS_SUCCESS
            if status is not None and status.status == STATUS_FAILED and not self._may_rerun(status.time):
                report.errors[path] = "failed in an earlier run (see .provenance.json); use --force_run_failed"
                return STATUS_FAILED
            if lease.try_acquire():
                status = read_status(path)  # someone may have finished it just before we got the lease
                if status is not None and status.status == STATUS_SUCCESS:
                    lease.release()
                    return STATUS_SUCCESS
                if status is not None and status.status == STATUS_FAILED and not self._may_rerun(status.time):
                    lease.release()
                    report.errors[path] = "failed in a concurrent run of this step"
                    return STATUS_FAILED
                break
            logger.info("waiting for %s: another executor is running it", step.name)
            time.sleep(self.poll_s)

        fence = Fence.of(lease)
        try:
            with fencing.holding(fence), Heartbeat(lease), slots:
                write_status(path, STATUS_RUNNING)
                self._write_info(step)
                result = self._execute(step, path, report, fence)
                write_status(path, result)  # refused (LeaseLost) if the step was taken over meanwhile
            return result
        except LeaseLost as e:
            report.errors[path] = str(e)
            logger.error("%s: %s", step.name, e)
            return STATUS_FAILED
        finally:
            lease.release()

    def _execute(self, step: ExecutorStep, path: str, report: RunReport, fence: Fence) -> str:
        config = instantiate(step.config, path, self.output_path, self.prefix)
        logger.info("running %s -> %s", step.name, path)
        started = time.time()
        timing: dict[str, float] | None = None
        try:
            inputs = fixed_inputs(step.config)
            extra = record_inputs(path, inputs) if inputs else None
            if self.use_ray and step.resources.tpu is not None and on_cluster():
                run_on_tpu_slices(step.fn, config, path, step.name, step.resources, fence=fence)
            elif self.use_ray:
                call = pickled((step.fn, config))
                submitted = time.time()
                timing = run_as_task(
                    run_step_task, call, path, step.name, fence, extra, submitted, resources=step.resources
                )
            else:
                if step.resources.tpu is not None:
                    logger.warning(
                        "step %s asks for %s: --local run, training it on this machine's CPU",
                        step.name,
                        step.resources.tpu,
                    )
                timing = run_step_here(step.fn, config, path, step.name, fence, extra)
        except Exception as e:  # the step's own failure: recorded, reported, never fatal to the others
            if isinstance(root_cause(e), LeaseLost):
                raise root_cause(e) from None
            failure = describe_failure(e)
            report.errors[path] = failure.summary()
            mark_died(path, failure)
            logger.error(
                "step %s failed after %.1fs: %s\n%s",
                step.name,
                time.time() - started,
                failure.summary(),
                failure.traceback,
            )
            return STATUS_FAILED
        wall = time.time() - started
        if timing is None:  # on a TPU slice: one process per host, timed by each host's own provenance
            logger.info("step %s succeeded in %.1fs", step.name, wall)
        else:
            report.timings[step.name] = StepTiming(wall_s=round(wall, 3), started_at=started, **timing)
            logger.info("step %s succeeded in %s", step.name, report.timings[step.name].describe())
        return STATUS_SUCCESS

    # ------------------------------------------------------------------------------- metadata
    def step_info(self, step: ExecutorStep) -> dict[str, Any]:
        path = self.output_path(step)
        return {
            "name": step.name,
            "fn": f"{step.fn.__module__}.{getattr(step.fn, '__qualname__', repr(step.fn))}",
            "description": step.description,
            "output_path": path,
            "version": self.identities[id(step)].version,
            "dependencies": [self.output_path(d) for d in self.dependencies(step)],
            "config": config_as_json(instantiate(step.config, path, self.output_path, self.prefix)),
            "resources": config_as_json(step.resources),
        }

    def _write_info(self, step: ExecutorStep) -> None:
        fileio.atomic_write_json(fileio.join(self.output_path(step), INFO_FILE), self.step_info(step))

    def experiment_path(self, steps: list[ExecutorStep]) -> str:
        script = experiment_script_name(sys.argv[0] if sys.argv else "")
        digest = hash_version({"steps": sorted({self.output_path(s) for s in steps})})
        return fileio.join(self.prefix, EXPERIMENTS_DIR, f"{script}-{digest}.json")

    def write_experiment(self, steps: list[ExecutorStep], description: str) -> list[ExecutorStep]:
        """Record the whole experiment (every step once, with its dependencies) for the dashboard; returns
        its steps (`graph`)."""
        everything = self.graph(steps)
        path = self.experiment_path(steps)
        fileio.atomic_write_json(
            path,
            {
                "description": description,
                "script": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None,
                "argv": sys.argv,
                "prefix": self.prefix,
                "created_at": now_iso(),
                "git": git_state(),
                "steps": [self.step_info(s) for s in everything],
            },
        )
        return everything
