"""Lease fencing: an attempt paused past its stale timeout and taken over can no longer commit."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

from soda_jax import fileio
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import LEASE_FILE, read_status

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
STALE_AFTER_S = 2.0

SCRIPT = textwrap.dedent(f"""
    import sys
    from executor_steps import PausableConfig, pausable
    from soda_jax.execution import ExecutorStep, executor_main, this_output_path
    step = ExecutorStep("test/pausable", pausable, PausableConfig(this_output_path(), sys.argv[2]))
    executor_main(
        [step], args=["--prefix", sys.argv[1], "--local", "--heartbeat_s", "0.3", "--stale_after_s", "{STALE_AFTER_S}"]
    )
""")


def start(prefix, control) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(prefix), str(control)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(path, process, timeout=120.0) -> None:
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()[0]
        assert time.time() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def test_paused_attempt_cannot_commit_after_takeover(tmp_path):
    prefix, control = tmp_path / "prefix", tmp_path / "control"
    control.mkdir()
    old = start(prefix, control)
    try:
        wait_for(control / f"started-{old.pid}", old)
        old.send_signal(signal.SIGSTOP)  # paused inside the step, holding the lease
        time.sleep(STALE_AFTER_S + 0.5)

        new = start(prefix, control)
        wait_for(control / f"started-{new.pid}", new)
        (control / f"go-{new.pid}").touch()
        out_new = new.communicate(timeout=120)[0]
        assert new.returncode == 0, out_new
        assert "taking over stale lease" in out_new
    finally:
        old.send_signal(signal.SIGCONT)
    (output_path,) = glob.glob(str(prefix / "test" / "pausable-*"))

    (control / f"go-{old.pid}").touch()  # the old attempt wakes up and tries to commit
    out_old = old.communicate(timeout=120)[0]
    assert old.returncode != 0 and "was taken over" in out_old, out_old

    # Nothing of the old attempt landed: the shard, the result, the status, the provenance are the new one's.
    assert fileio.read_json(fileio.join(output_path, "shards", "0.json"))["pid"] == new.pid
    assert fileio.read_json(fileio.join(output_path, "result.json"))["pid"] == new.pid
    assert read_status(output_path).status == "SUCCESS"
    provenance = fileio.read_json(fileio.join(output_path, PROVENANCE_FILE))
    assert provenance["status"] == "SUCCESS" and provenance["pid"] == new.pid
    (previous,) = provenance["previous_attempts"]
    assert previous["pid"] == old.pid and previous["status"] == "TAKEN_OVER" and previous["ended_at"]
    lease = fileio.read_json(fileio.join(output_path, LEASE_FILE))
    assert lease["owner"] is None and lease["fence"] == 2  # two acquisitions; released by the new owner
