"""The executor on real temp dirs, real Ray, real subprocesses."""

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import ray
from executor_steps import RecordConfig, WhereConfig, race_in_threads, record, runs, where

from soda_jax import fileio
from soda_jax.contracts import EXPERIMENT_KEY
from soda_jax.dashboard.store import PrefixStore
from soda_jax.execution import (
    Executor,
    ExecutorError,
    ExecutorStep,
    LeaseTiming,
    executor_main,
    prefix_path,
    this_output_path,
    versioned,
)
from soda_jax.execution.parallel import fan_out_reason, free_cpus, parallel_map, run_as_task, shutdown_workers
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import read_status
from soda_jax.execution.step import Resources
from soda_jax.execution.timeline import covered_seconds, wall_shares

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def chain(log: str, *, a_value=1, b_value=2, b_unversioned=0, fail_a=False, sleep_s=0.0):
    a = ExecutorStep(
        "test/a",
        record,
        RecordConfig(this_output_path(), log, value=versioned(a_value), fail=fail_a, sleep_s=sleep_s),
    )
    b = ExecutorStep("test/b", record, RecordConfig(this_output_path(), log, value=versioned(b_value), inputs=(a,)))
    c = ExecutorStep(
        "test/c",
        record,
        RecordConfig(this_output_path(), log, value=b_unversioned, inputs=(b / "",)),
    )
    return a, b, c


def local(prefix, **kw) -> Executor:
    return Executor(str(prefix), use_ray=False, **kw)


def test_versioned_change_moves_path_unversioned_does_not(tmp_path):
    log = str(tmp_path / "log")
    ex = local(tmp_path)
    a, b, c = chain(log)
    ex.run([c])
    paths = {s.name: ex.output_path(s) for s in (a, b, c)}
    assert fileio.read_json(fileio.join(paths["test/c"], "out.json"))["upstream"] == [2]

    # unversioned change: same paths, nothing re-runs
    ex2 = local(tmp_path)
    _, _, c2 = chain(log, b_unversioned=99)
    ex2.run([c2])
    assert ex2.output_path(c2) == paths["test/c"]
    assert len(runs(log)) == 3

    # versioned change of a: a, and everything downstream, move
    ex3 = local(tmp_path)
    a3, b3, c3 = chain(log, a_value=5)
    ex3.run([c3])
    assert all(ex3.output_path(s) != paths[s.name] for s in (a3, b3, c3))
    assert len(runs(log)) == 6


def test_prefix_path_resolves_under_the_prefix_and_stays_out_of_the_version(tmp_path):
    log = str(tmp_path / "log")

    def step(cache: str) -> ExecutorStep:
        return ExecutorStep("test/cached", record, RecordConfig(this_output_path(), log, value=prefix_path(cache)))  # type: ignore[arg-type]

    ex, first = local(tmp_path), step("jax-cache")
    ex.run([first])
    path = ex.output_path(first)
    assert fileio.read_json(fileio.join(path, "out.json"))["value"] == fileio.join(str(tmp_path), "jax-cache")
    moved, second = local(tmp_path), step("another-cache")
    moved.run([second])  # a cache elsewhere is the same step: nothing re-runs
    assert moved.output_path(second) == path and len(runs(log)) == 1
    with pytest.raises(TypeError, match="cannot version a PrefixPath"):
        versioned(prefix_path("jax-cache"))


def test_same_version_runs_once(tmp_path):
    log = str(tmp_path / "log")
    step1 = ExecutorStep("test/same", record, RecordConfig(this_output_path(), log, value=versioned(3)))
    step2 = ExecutorStep("test/same", record, RecordConfig(this_output_path(), log, value=versioned(3)))
    both = ExecutorStep("test/both", record, RecordConfig(this_output_path(), log, inputs=(step1, step2)))
    ex = local(tmp_path)
    ex.run([both, step1, step2])
    assert ex.output_path(step1) == ex.output_path(step2)
    assert sorted(runs(log)) == sorted([ex.output_path(step1), ex.output_path(both)])


def experiment_record(prefix) -> dict:
    (name,) = os.listdir(os.path.join(prefix, "experiments"))
    return json.loads(open(os.path.join(prefix, "experiments", name)).read())


def test_a_step_built_twice_is_one_node_listed_once_and_never_waited_for(tmp_path, caplog):
    """Two calls of one builder (the demo's ``raw/demo-speech``, built for its data and its evaluation):
    one node of the graph, run once by one executor, listed once in the experiment and the report."""
    log = str(tmp_path / "log")

    def speech():
        return ExecutorStep(
            "test/speech", record, RecordConfig(this_output_path(), log, value=versioned(1), sleep_s=0.5)
        )

    data = ExecutorStep(
        "test/data", record, RecordConfig(this_output_path(), log, value=versioned(2), inputs=(speech(),))
    )
    evals = ExecutorStep(
        "test/eval", record, RecordConfig(this_output_path(), log, value=versioned(3), inputs=(speech(),))
    )
    both = ExecutorStep("test/both", record, RecordConfig(this_output_path(), log, inputs=(data, evals)))
    ex = local(tmp_path, poll_s=0.05)
    with caplog.at_level(logging.INFO, logger="soda_jax.execution.executor"):
        report = ex.run([both])
    speech_path = ex.output_path(data.config.inputs[0])
    assert ex.output_path(evals.config.inputs[0]) == speech_path
    assert runs(log).count(speech_path) == 1 and len(runs(log)) == 4
    assert "another executor is running it" not in caplog.text
    assert caplog.text.count("running test/speech ->") == 1
    steps = experiment_record(tmp_path)["steps"]
    assert [s["name"] for s in steps] == ["test/speech", "test/data", "test/eval", "test/both"]
    assert list(report.output_paths) == ["test/speech", "test/data", "test/eval", "test/both"]
    assert set(report.statuses.values()) == {"SUCCESS"} and sorted(report.timings) == sorted(report.output_paths)
    assert [s["name"] for s in steps if s["output_path"] == speech_path] == ["test/speech"]
    # the dry run too plans it once
    decisions = local(tmp_path / "dry").dry_run([both])
    assert [d.step.name for d in decisions] == ["test/speech", "test/data", "test/eval", "test/both"]


def test_one_name_with_two_versions_is_two_steps(tmp_path):
    log = str(tmp_path / "log")
    v1 = ExecutorStep("test/same-name", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    v2 = ExecutorStep("test/same-name", record, RecordConfig(this_output_path(), log, value=versioned(2)))
    both = ExecutorStep("test/both", record, RecordConfig(this_output_path(), log, inputs=(v1, v2)))
    ex = local(tmp_path)
    ex.run([both])
    assert ex.output_path(v1) != ex.output_path(v2)
    assert sorted(runs(log)) == sorted([ex.output_path(v1), ex.output_path(v2), ex.output_path(both)])
    assert fileio.read_json(fileio.join(ex.output_path(both), "out.json"))["upstream"] == [1, 2]
    steps = experiment_record(tmp_path)["steps"]
    assert [s["output_path"] for s in steps if s["name"] == "test/same-name"] == [
        ex.output_path(v1),
        ex.output_path(v2),
    ]
    both_info = fileio.read_json(fileio.join(ex.output_path(both), ".executor_info"))
    assert both_info["dependencies"] == [ex.output_path(v1), ex.output_path(v2)]


def test_two_functions_on_one_output_path_are_refused(tmp_path):
    log = str(tmp_path / "log")
    first = ExecutorStep("test/clash", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    other = ExecutorStep("test/clash", where, RecordConfig(this_output_path(), log, value=versioned(1)))
    with pytest.raises(
        ValueError, match=r"steps 'test/clash' and 'test/clash' share output path .* with different functions"
    ):
        local(tmp_path).run([first, other])
    assert runs(log) == []


def test_copies_differing_only_in_unversioned_settings_run_the_first_and_say_so(tmp_path, caplog):
    log = str(tmp_path / "log")
    first = ExecutorStep("test/copy", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    second = ExecutorStep("test/copy", record, RecordConfig(this_output_path(), log, value=versioned(1), sleep_s=0.1))
    ex = local(tmp_path)
    with caplog.at_level(logging.WARNING, logger="soda_jax.execution.executor"):
        ex.run([first, second])
    assert runs(log) == [ex.output_path(first)]
    assert "test/copy is built twice with the same version but different unversioned settings (sleep_s)" in caplog.text


def test_run_only_pulls_in_dependencies(tmp_path):
    log = str(tmp_path / "log")
    a, b, c = chain(log)
    ex = local(tmp_path)
    ex.run([c], run_only=["test/b$"])
    assert runs(log) == [ex.output_path(a), ex.output_path(b)]
    assert read_status(ex.output_path(c)) is None


def test_inputs_inside_a_versioned_value_are_dependencies_and_versions(tmp_path):
    """A versioned data config that names upstream outputs (a mixture of caches) depends on them."""
    log = str(tmp_path / "log")

    def consumer(a_value):
        a, _, _ = chain(log, a_value=a_value)
        return a, ExecutorStep(
            "test/consumer", record, RecordConfig(this_output_path(), log, inputs=versioned((a / "",)))
        )

    a, consumer_1 = consumer(1)
    ex = local(tmp_path)
    ex.run([consumer_1])
    assert runs(log) == [ex.output_path(a), ex.output_path(consumer_1)]
    assert fileio.read_json(fileio.join(ex.output_path(consumer_1), "out.json"))["upstream"] == [1]

    _, consumer_5 = consumer(5)
    ex5 = local(tmp_path)
    ex5.prepare([consumer_5])
    assert ex5.output_path(consumer_5) != ex.output_path(consumer_1)


def test_override_output_path(tmp_path):
    step = ExecutorStep(
        "test/pinned",
        record,
        RecordConfig(this_output_path(), str(tmp_path / "log")),
        override_output_path="pinned/here",
    )
    ex = local(tmp_path)
    ex.run([step])
    assert ex.output_path(step) == f"{tmp_path}/pinned/here"
    assert os.path.exists(tmp_path / "pinned/here/out.json")


def test_failure_blocks_dependents_and_force_rerun(tmp_path):
    log = str(tmp_path / "log")
    a, b, c = chain(log, fail_a=True)
    ex = local(tmp_path)
    with pytest.raises(ExecutorError) as err:
        ex.run([c])
    message = str(err.value)
    assert ex.output_path(a) in message and "step asked to fail" in message
    assert ex.output_path(b) in message and ex.output_path(c) in message  # named as not run
    assert read_status(ex.output_path(a)).status == "FAILED"
    assert read_status(ex.output_path(b)).status == "DEP_FAILED"
    assert runs(log) == [ex.output_path(a)]
    prov = fileio.read_json(fileio.join(ex.output_path(a), PROVENANCE_FILE))
    assert prov["status"] == "FAILED" and "RuntimeError" in prov["error"]["traceback"]

    # without --force_run_failed a failed step stays failed and is not re-run
    with pytest.raises(ExecutorError, match="force_run_failed"):
        local(tmp_path).run([c])
    assert len(runs(log)) == 1

    # the fixed step is the same version (fail is not versioned); forcing re-runs only what failed
    a2, b2, c2 = chain(log, fail_a=False)
    ok = local(tmp_path, force_run_failed=True)
    ok.run([c2])
    assert runs(log)[1:] == [ok.output_path(a2), ok.output_path(b2), ok.output_path(c2)]
    prov = fileio.read_json(fileio.join(ok.output_path(a2), PROVENANCE_FILE))
    assert prov["status"] == "SUCCESS" and prov["previous_attempts"][0]["status"] == "FAILED"


def test_dry_run_reports_decisions(tmp_path, capsys):
    log = str(tmp_path / "log")
    a, b, c = chain(log)
    local(tmp_path).run([b])
    executor_main([c], args=["--prefix", str(tmp_path), "--dry_run", "--local"])
    out = capsys.readouterr().out
    assert "skip     test/a" in out and "skip     test/b" in out and "run      test/c" in out
    assert "already succeeded" in out and "no previous run" in out
    assert len(runs(log)) == 2  # the dry run ran nothing


def test_ten_threads_race_one_step(tmp_path):
    log = str(tmp_path / "log")
    step = ExecutorStep("test/race", record, RecordConfig(this_output_path(), log, sleep_s=1.0))
    timing = LeaseTiming(heartbeat_s=0.5, stale_after_s=5)
    race_in_threads(10, lambda: local(tmp_path, lease_timing=timing, poll_s=0.1).run([step]))
    assert len(runs(log)) == 1


RACE_SCRIPT = textwrap.dedent("""
    import sys
    from executor_steps import RecordConfig, record
    from soda_jax.execution import ExecutorStep, executor_main, this_output_path
    step = ExecutorStep("test/race", record, RecordConfig(this_output_path(), sys.argv[2], sleep_s=float(sys.argv[3])))
    executor_main(
        [step], args=["--prefix", sys.argv[1], "--local", "--heartbeat_s", "0.5", "--stale_after_s", sys.argv[4]]
    )
""")


def start_race_process(prefix, log, sleep_s, stale_after_s) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": TESTS_DIR}
    return subprocess.Popen(
        [sys.executable, "-c", RACE_SCRIPT, str(prefix), log, str(sleep_s), str(stale_after_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_three_processes_race_one_step(tmp_path):
    log = str(tmp_path / "log")
    procs = [start_race_process(tmp_path, log, 2.0, 30) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert all(re.search(r"test/race\s+SUCCESS", out) for out in outputs), outputs
    assert len(runs(log)) == 1


def test_killed_step_leaves_stale_lease_that_is_taken_over(tmp_path):
    log = str(tmp_path / "log")
    victim = start_race_process(tmp_path, log, 60.0, 3)
    deadline = time.time() + 60
    while not runs(log) and time.time() < deadline:
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (output_path,) = runs(log)
    assert read_status(output_path).status == "RUNNING"

    # a fresh lease is respected: the second executor waits rather than running the step twice...
    survivor = start_race_process(tmp_path, log, 0.0, 3)
    out = survivor.communicate(timeout=120)[0]
    assert survivor.returncode == 0, out
    # ...and once the dead lease goes stale (3 s) it takes the step over and finishes it
    assert runs(log) == [output_path, output_path]
    assert read_status(output_path).status == "SUCCESS"
    assert "taking over stale lease" in out


def test_steps_run_as_ray_tasks(tmp_path):
    step = ExecutorStep("test/where", where, WhereConfig(this_output_path()))
    ex = Executor(str(tmp_path), use_ray=True)
    report = ex.run([step])
    where_json = fileio.read_json(fileio.join(ex.output_path(step), "where.json"))
    assert where_json["ray_worker"] is True and where_json["pid"] != os.getpid()
    provenance = fileio.read_json(fileio.join(ex.output_path(step), PROVENANCE_FILE))
    assert provenance["runner"] == "ray worker"
    # where the step's time went: the worker's start-up and its import of the step's module, apart from the work
    timing = report.timings["test/where"]
    assert provenance["timing"] == {"startup_s": timing.startup_s, "import_s": timing.import_s}
    assert timing.startup_s > 0 and timing.import_s >= 0 and timing.work_s > 0
    assert timing.wall_s >= timing.startup_s + timing.import_s + timing.work_s
    assert timing.fixed_s == pytest.approx(timing.wall_s - timing.work_s)


def test_step_timing_separates_the_work_from_the_rest(tmp_path):
    step = ExecutorStep("test/slow", record, RecordConfig(this_output_path(), str(tmp_path / "log"), sleep_s=0.4))
    timing = local(tmp_path).run([step]).timings["test/slow"]
    assert 0.4 <= timing.work_s <= timing.wall_s and timing.import_s < 0.4
    assert local(tmp_path).run([step]).timings == {}  # a step skipped as done is not timed


def test_covered_seconds_is_the_union_of_intervals():
    assert covered_seconds([]) == 0.0
    assert covered_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)
    assert covered_seconds([(4, 9), (0, 1), (2, 3)]) == pytest.approx(7.0)


def test_wall_shares_split_the_run_on_its_timeline(tmp_path):
    # three 0.3 s steps: two "data" steps side by side, then "train" after both
    log = str(tmp_path / "log")
    a = ExecutorStep("test/data-a", record, RecordConfig(this_output_path(), log, value=1, sleep_s=0.3))
    b = ExecutorStep("test/data-b", record, RecordConfig(this_output_path(), log, value=2, sleep_s=0.3))
    t = ExecutorStep("test/train", record, RecordConfig(this_output_path(), log, value=3, sleep_s=0.3, inputs=(a, b)))
    report = local(tmp_path).run([t])
    time.sleep(0.2)  # the caller's own time after the run: outside any step
    shares = wall_shares(report, training=[t.name])
    assert 0.3 <= shares.training_s == pytest.approx(report.timings[t.name].wall_s)
    # the data steps overlapped: their shared time counts once, less than the sum of their walls
    data_walls = report.timings[a.name].wall_s + report.timings[b.name].wall_s
    assert 0.3 <= shares.other_steps_s < data_walls
    assert shares.outside_steps_s >= 0.2
    assert shares.wall_s == pytest.approx(shares.training_s + shares.other_steps_s + shares.outside_steps_s)
    assert "training" in shares.describe() and "%" in shares.describe()


def pid_of(_: object) -> int:
    return os.getpid()


@dataclasses.dataclass(frozen=True)
class MapConfig:
    output_path: str


def map_in_step(config: MapConfig) -> None:
    """Map over three items from inside a step's task; record the step's pid and the items' pids."""
    pids = parallel_map(pid_of, [0, 1, 2], desc="items")
    fileio.atomic_write_json(fileio.join(config.output_path, "pids.json"), {"step": os.getpid(), "items": pids})


@pytest.fixture
def two_cpu_ray():
    """A local Ray of two CPUs, as `ensure_ray` starts on a 2-core machine (workers import what we import)."""
    shutdown_workers()
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    shutdown_workers()


def test_a_map_runs_in_the_step_s_worker_unless_two_tasks_fit_in_the_free_cpus(tmp_path, two_cpu_ray, caplog):
    """Inside a step's task (1 of 2 CPUs taken) a map runs in that worker: its imports are paid, and fresh
    workers (seconds of imports each) would buy at most one task of parallelism. From the driver (2 free)
    it fans out to Ray tasks."""
    with caplog.at_level(logging.INFO, logger="soda_jax.execution.parallel"):
        driver_pids = parallel_map(pid_of, [0, 1, 2], desc="from the driver")
    assert os.getpid() not in driver_pids
    assert "from the driver: 3 Ray tasks (2 free CPUs)" in caplog.text
    step = ExecutorStep("test/map", map_in_step, MapConfig(this_output_path()))
    ex = Executor(str(tmp_path), use_ray=True)
    ex.run([step])
    pids = fileio.read_json(fileio.join(ex.output_path(step), "pids.json"))
    assert pids["items"] == [pids["step"]] * 3
    # Read at a task's start, Ray's resource view may still count the task's own CPU as free.
    assert run_as_task(free_cpus, resources=Resources(cpus=1)) <= 1
    assert fan_out_reason(3, 1, 0, {"SODA_BENCH_ONLY": "x"}) == "a worker started with ['SODA_BENCH_ONLY']"
    assert fan_out_reason(3, 2, 0, None) is None  # one 2-CPU task fits: run here
    assert fan_out_reason(1, 1, 0, None) is None


def test_provenance_files_are_complete(tmp_path):
    log = str(tmp_path / "log")
    a, b, c = chain(log)
    ex = local(tmp_path)
    ex.run([c], description="provenance test")
    for step in (a, b, c):
        path = ex.output_path(step)
        info = fileio.read_json(fileio.join(path, ".executor_info"))
        assert info["name"] == step.name and info["output_path"] == path
        assert info["fn"].endswith("executor_steps.record")
        assert info["config"]["output_path"] == path
        assert info["version"]["name"] == step.name
        prov = fileio.read_json(fileio.join(path, PROVENANCE_FILE))
        for key in ("git", "packages", "host", "devices", "started_at", "ended_at", "duration_s", "status"):
            assert key in prov, key
        assert prov["status"] == "SUCCESS" and prov["packages"]["jax"] and prov["git"]["commit"]
    b_info = fileio.read_json(fileio.join(ex.output_path(b), ".executor_info"))
    assert b_info["dependencies"] == [ex.output_path(a)]
    assert b_info["version"]["config"]["value"] == 2
    experiments = os.listdir(tmp_path / "experiments")
    assert len(experiments) == 1
    experiment = json.loads((tmp_path / "experiments" / experiments[0]).read_text())
    assert experiment["description"] == "provenance test"
    assert [s["name"] for s in experiment["steps"]] == ["test/a", "test/b", "test/c"]


@pytest.mark.parametrize(
    "argv0, name",
    [("experiments/demo.py", "demo"), ("-c", "interactive"), ("", "interactive"), ("/x/my run!.py", "my_run_")],
)
def test_every_experiment_record_is_one_the_dashboard_lists(tmp_path, monkeypatch, argv0, name):
    """``python -c`` gives argv[0] ``-c``: its record was once ``-c-<digest>.json``, which the dashboard
    (`EXPERIMENT_KEY`) refuses to list."""
    monkeypatch.setattr(sys, "argv", [argv0])
    ex = local(tmp_path)
    ex.run([chain(str(tmp_path / "log"))[0]])
    (key,) = [f.removesuffix(".json") for f in os.listdir(tmp_path / "experiments")]
    assert key.startswith(f"{name}-") and EXPERIMENT_KEY.match(key)
    assert PrefixStore(str(tmp_path)).experiment_keys() == [key]


def test_memory_prefix(tmp_path):
    log = str(tmp_path / "log")
    a, b, c = chain(log)
    ex = local("memory://soda-test")
    ex.run([c])
    assert ex.output_path(c).startswith("memory://soda-test/test/c-")
    assert fileio.read_json(fileio.join(ex.output_path(c), "out.json"))["upstream"] == [2]


def test_soda_info_reads_provenance(tmp_path):
    a, b, c = chain(str(tmp_path / "log"))
    ex = local(tmp_path)
    ex.run([c])
    out = subprocess.run(
        [sys.executable, "-m", "soda_jax.cli", "info", ex.output_path(b)], capture_output=True, text=True, check=True
    ).stdout
    assert "test/b  [SUCCESS]" in out and ex.output_path(a) in out and "jax 0.10.2" in out


def test_nonblocking_input_is_versioned_but_not_run(tmp_path):
    log = str(tmp_path / "log")
    a, b, _ = chain(log)
    watcher = ExecutorStep(
        "test/watch",
        record,
        RecordConfig(this_output_path(), log, value=versioned(0), inputs=((b / "").nonblocking(),)),
    )
    ex = local(tmp_path)
    ex.prepare([watcher])
    assert ex.prepare([watcher]) == [watcher]  # a and b are not pulled in
    first_hash = ex.identities[id(watcher)].hash
    version = ex.identities[id(watcher)].version["config"]
    assert version["inputs[0]"].startswith(f"input:test/b-{ex.identities[id(b)].hash}")
    _, b_other, _ = chain(log, b_value=7)
    watcher_other = ExecutorStep(
        "test/watch",
        record,
        RecordConfig(this_output_path(), log, value=versioned(0), inputs=((b_other / "").nonblocking(),)),
    )
    ex.prepare([watcher_other])
    assert ex.identities[id(watcher_other)].hash != first_hash


def test_prefix_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SODA_PREFIX", str(tmp_path / "from-env"))
    step = ExecutorStep("test/env", record, RecordConfig(this_output_path(), str(tmp_path / "log")))
    executor_main([step], args=["--local"])
    assert len(os.listdir(tmp_path / "from-env" / "test")) == 1
    assert re.search(r"test/env\s+SUCCESS", capsys.readouterr().out)
