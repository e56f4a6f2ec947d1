"""The executor on real temp dirs, real Ray, real subprocesses."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from executor_steps import RecordConfig, WhereConfig, race_in_threads, record, runs, where

from soda_jax import fileio
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
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import read_status

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def chain(log: str, *, a_value=1, b_value=2, b_unversioned=0, fail_a=False, sleep_s=0.0):
    a = ExecutorStep(
        "test/a", record,
        RecordConfig(this_output_path(), log, value=versioned(a_value), fail=fail_a, sleep_s=sleep_s),
    )
    b = ExecutorStep("test/b", record, RecordConfig(this_output_path(), log, value=versioned(b_value), inputs=(a,)))
    c = ExecutorStep(
        "test/c", record, RecordConfig(this_output_path(), log, value=b_unversioned, inputs=(b / "",)),
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
        return a, ExecutorStep("test/consumer", record, RecordConfig(this_output_path(), log, inputs=versioned((a / "",))))

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
    step = ExecutorStep("test/pinned", record, RecordConfig(this_output_path(), str(tmp_path / "log")),
                        override_output_path="pinned/here")
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
    executor_main([step], args=["--prefix", sys.argv[1], "--local", "--heartbeat_s", "0.5", "--stale_after_s", sys.argv[4]])
""")


def start_race_process(prefix, log, sleep_s, stale_after_s) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": TESTS_DIR}
    return subprocess.Popen(
        [sys.executable, "-c", RACE_SCRIPT, str(prefix), log, str(sleep_s), str(stale_after_s)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    ex.run([step])
    where_json = fileio.read_json(fileio.join(ex.output_path(step), "where.json"))
    assert where_json["ray_worker"] is True and where_json["pid"] != os.getpid()
    assert fileio.read_json(fileio.join(ex.output_path(step), PROVENANCE_FILE))["runner"] == "ray worker"


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
    watcher = ExecutorStep("test/watch", record, RecordConfig(this_output_path(), log, value=versioned(0),
                                                                inputs=((b / "").nonblocking(),)))
    ex = local(tmp_path)
    ex.prepare([watcher])
    assert ex.prepare([watcher]) == [watcher]  # a and b are not pulled in
    first_hash = ex.identities[id(watcher)].hash
    version = ex.identities[id(watcher)].version["config"]
    assert version["inputs[0]"].startswith(f"input:test/b-{ex.identities[id(b)].hash}")
    _, b_other, _ = chain(log, b_value=7)
    watcher_other = ExecutorStep("test/watch", record, RecordConfig(this_output_path(), log, value=versioned(0),
                                                                      inputs=((b_other / "").nonblocking(),)))
    ex.prepare([watcher_other])
    assert ex.identities[id(watcher_other)].hash != first_hash


def test_prefix_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SODA_PREFIX", str(tmp_path / "from-env"))
    step = ExecutorStep("test/env", record, RecordConfig(this_output_path(), str(tmp_path / "log")))
    executor_main([step], args=["--local"])
    assert len(os.listdir(tmp_path / "from-env" / "test")) == 1
    assert re.search(r"test/env\s+SUCCESS", capsys.readouterr().out)
