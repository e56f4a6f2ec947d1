"""The executor against GCS semantics: gcsfs talking to an emulator on loopback."""

import pytest
from executor_steps import RecordConfig, race_in_threads, record, runs
from gcs_emulator import GcsEmulator

from soda_jax import fileio
from soda_jax.execution import Executor, ExecutorStep, LeaseTiming, this_output_path, versioned
from soda_jax.execution.status import GcsLeaseStore, StepLease, lease_store, read_status

BUCKET = "soda-test"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with GcsEmulator(BUCKET) as emulator:
        mp.setenv("STORAGE_EMULATOR_HOST", emulator.host)
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
        yield emulator
    mp.undo()


def test_gcs_lease_is_exclusive(gcs):
    path = f"gs://{BUCKET}/lease-test/step-1"
    assert isinstance(lease_store(fileio.join(path, ".executor_lease")), GcsLeaseStore)
    timing = LeaseTiming(heartbeat_s=1, stale_after_s=60)
    first, second = StepLease(path, "host-a", timing), StepLease(path, "host-b", timing)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert second.holder().owner == "host-a"
    assert first.refresh()
    first.release()
    assert second.try_acquire()

    # a stale generation loses the compare-and-swap
    store = second.store
    generation, lease = store.read()
    assert store.write(lease, generation)
    assert not store.write(lease, generation)


def test_experiment_on_gcs_prefix(gcs, tmp_path):
    log = str(tmp_path / "log")
    prefix = f"gs://{BUCKET}/experiments-test"
    a = ExecutorStep("test/a", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    b = ExecutorStep("test/b", record, RecordConfig(this_output_path(), log, value=versioned(2), inputs=(a,)))
    race_in_threads(4, lambda: Executor(prefix, use_ray=False, lease_timing=LeaseTiming(0.5, 30), poll_s=0.2).run([b]))
    ex = Executor(prefix, use_ray=False)
    ex.prepare([b])
    assert len(runs(log)) == 2  # each step exactly once across the four racing executors
    assert read_status(ex.output_path(b)).status == "SUCCESS"
    assert fileio.read_json(fileio.join(ex.output_path(b), "out.json"))["upstream"] == [1]
    assert fileio.read_json(fileio.join(ex.output_path(a), ".provenance.json"))["status"] == "SUCCESS"
    assert ex.output_path(b).startswith(f"gs://{BUCKET}/experiments-test/test/b-")
