"""Failures keep their message: Ray's wrapping unwrapped, `soda info` shows the traceback and exits
non-zero, DEP_FAILED steps say what they are; a re-run with nothing to do starts no Ray."""

import logging

import pytest
import ray
from executor_steps import RecordConfig, ShardFailConfig, fail_in_shards, record

from soda_jax import cli, fileio
from soda_jax.execution import Executor, ExecutorError, ExecutorStep, this_output_path, versioned
from soda_jax.execution.executor import INFO_FILE
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import read_status


def failing_chain(log: str):
    a = ExecutorStep("test/a", record, RecordConfig(this_output_path(), log, value=versioned(1), fail=True))
    b = ExecutorStep("test/b", record, RecordConfig(this_output_path(), log, value=versioned(2), inputs=(a,)))
    return a, b


def test_soda_info_shows_traceback_and_exits_nonzero_for_failed_steps(tmp_path, capsys):
    a, b = failing_chain(str(tmp_path / "log"))
    ex = Executor(str(tmp_path), use_ray=False)
    with pytest.raises(ExecutorError):
        ex.run([b])
    capsys.readouterr()
    assert cli.main(["info", ex.output_path(a)]) == 1
    out = capsys.readouterr().out
    assert "test/a  [FAILED]" in out and "traceback:" in out and "Traceback (most recent call last)" in out
    assert "RuntimeError: step asked to fail (value=1)" in out

    # The DEP_FAILED step has its .executor_info: it is named, and its failed input is shown.
    assert read_status(ex.output_path(b)).status == "DEP_FAILED"
    assert fileio.read_json(fileio.join(ex.output_path(b), INFO_FILE))["name"] == "test/b"
    assert cli.main(["info", ex.output_path(b)]) == 1
    out = capsys.readouterr().out
    assert "test/b  [DEP_FAILED]" in out and f"input:     {ex.output_path(a)}  [FAILED]" in out


def test_rerun_with_nothing_to_do_starts_no_ray(tmp_path):
    ray.shutdown()
    step = ExecutorStep("test/ok", record, RecordConfig(this_output_path(), str(tmp_path / "log")))
    Executor(str(tmp_path), use_ray=False).run([step])
    report = Executor(str(tmp_path), use_ray=True).run([step])
    assert set(report.statuses.values()) == {"SUCCESS"}
    assert not ray.is_initialized()


def test_ray_failure_is_unwrapped_in_summary_log_and_provenance(tmp_path, caplog):
    step = ExecutorStep("test/shards", fail_in_shards, ShardFailConfig(this_output_path()))
    ex = Executor(str(tmp_path), use_ray=True)
    with caplog.at_level(logging.ERROR, logger="soda_jax.execution.executor"), pytest.raises(ExecutorError) as err:
        ex.run([step])
    summary = str(err.value)
    # The exception the shard raised, type and whole message; not Ray's wrapper, no colour codes.
    assert (
        f"{ex.output_path(step)}: ValueError: shard 1 is bad\n" in summary and "second line of the message" in summary
    )
    assert "RayTaskError" not in summary and "\x1b[" not in summary and "ray::" not in summary
    log = caplog.text
    assert "Traceback" in log and "fail_on_shard" in log and 'raise ValueError(f"shard {item} is bad' in log
    assert "\x1b[" not in log
    error = fileio.read_json(fileio.join(ex.output_path(step), PROVENANCE_FILE))["error"]
    assert error["type"] == "ValueError" and error["message"].startswith("shard 1 is bad")
    assert "\x1b[" not in error["traceback"] and "fail_on_shard" in error["traceback"]
