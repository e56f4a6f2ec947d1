"""The dashboard over a ``gs://`` prefix (gcsfs against the GCS emulator on loopback): the same
pages as on disk, and nothing of another prefix or bucket."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from gcs_emulator import GcsEmulator
from helpers_dashboard import SECRET, raw_get, run_small_experiment

from soda_jax import fileio
from soda_jax.dashboard.server import BackgroundServer

BUCKET = "soda-dash"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with GcsEmulator(BUCKET) as emulator:
        mp.setenv("STORAGE_EMULATOR_HOST", emulator.host)
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
        log = str(tmp_path_factory.mktemp("gcs-log") / "log")
        prefix, other = f"gs://{BUCKET}/mine", f"gs://{BUCKET}/other"
        steps = run_small_experiment(prefix, log, "experiment on gcs")
        other_steps = run_small_experiment(other, log, SECRET)
        rows = "".join(json.dumps({"step": i, "loss": 4.0 - i / 10, "tokens": 64 * (i + 1)}) + "\n" for i in range(12))
        fileio.atomic_write_text(fileio.join(prefix, steps["demo/good"], "metrics.jsonl"), rows + '{"step": 12, "lo')
        with BackgroundServer(prefix) as base:
            yield {"base": base, "steps": steps, "other_steps": other_steps}
    mp.undo()


def test_pages_over_gcs(served):
    base, good, bad = served["base"], served["steps"]["demo/good"], served["steps"]["demo/bad"]
    status, body = raw_get(base, "/api/experiments")
    (experiment,) = json.loads(body)
    assert status == 200 and experiment["counts"] == {"SUCCESS": 1, "FAILED": 1, "DEP_FAILED": 1}
    assert raw_get(base, f"/experiment/{experiment['key']}")[0] == 200
    status, body = raw_get(base, f"/step/{bad}")
    assert status == 200 and b"Traceback (most recent call last)" in body
    curves = json.loads(raw_get(base, f"/api/metrics/{good}")[1])
    assert curves["rows"] == 13 and curves["kept"] == 12 and curves["skipped"] == 1
    status, body = raw_get(base, f"/files/{good}")
    assert status == 200 and b"metrics.jsonl" in body and b"out.json" in body
    status, body = raw_get(base, f"/raw/{good}/out.json")
    assert status == 200 and json.loads(body)["value"] == 1


def test_other_prefixes_and_buckets_are_refused_over_gcs(served):
    base, other = served["base"], served["other_steps"]["demo/good"]
    for target in (
        f"/step/../other/{other}",
        f"/step?path=gs://{BUCKET}/other/{other}",
        f"/step?path={urllib.parse.quote(f'gs://{BUCKET}/mine/../other/{other}')}",
        f"/step?path=gs://another-bucket/mine/{served['steps']['demo/good']}",
        f"/raw/%2e%2e/other/{other}/out.json",
        f"/files?path=gs://{BUCKET}/other",
    ):
        status, body = raw_get(base, target)
        assert status == 404, target
        assert SECRET.encode() not in body
