"""The dashboard over real HTTP, on a prefix written by a real executor run."""

import json
import threading
import urllib.parse
import urllib.request

import pytest
from executor_steps import RecordConfig, record

from soda_jax import fileio
from soda_jax.dashboard.server import make_server
from soda_jax.execution import Executor, ExecutorError, ExecutorStep, this_output_path, versioned


@pytest.fixture()
def served(tmp_path):
    log = str(tmp_path / "log")
    good = ExecutorStep("demo/good", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    bad = ExecutorStep("demo/bad", record, RecordConfig(this_output_path(), log, value=versioned(2), fail=True))
    after = ExecutorStep("demo/after", record, RecordConfig(this_output_path(), log, inputs=(good, bad)))
    ex = Executor(str(tmp_path), use_ray=False)
    with pytest.raises(ExecutorError):
        ex.run([after], description="dashboard test")
    rows = [{"step": i, "loss": 5.0 - 0.1 * i, "learning_rate": 1e-3} for i in range(20)]
    fileio.atomic_write_text(fileio.join(ex.output_path(good), "metrics.jsonl"), "\n".join(json.dumps(r) for r in rows) + "\n{broken")
    server = make_server(str(tmp_path), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ex, (good, bad, after)
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_pages_show_experiments_steps_and_metrics(served):
    base, ex, (good, bad, after) = served
    status, _, body = get(base + "/")
    assert status == 200 and b"dashboard test" in body and b"FAILED" in body

    experiments = json.loads(get(base + "/api/experiments")[2])
    (experiment,) = experiments
    status, _, body = get(f"{base}/experiment/{experiment['key']}")
    text = body.decode()
    assert status == 200
    for step, word in ((good, "SUCCESS"), (bad, "FAILED"), (after, "DEP_FAILED")):
        assert step.name in text and word in text

    query = urllib.parse.urlencode({"path": ex.output_path(bad)})
    status, _, body = get(f"{base}/step?{query}")
    assert status == 200 and b"step asked to fail" in body and b"Traceback" in body

    query = urllib.parse.urlencode({"path": ex.output_path(good)})
    step = json.loads(get(f"{base}/api/step?{query}")[2])
    assert step["status"] == "SUCCESS" and len(step["metrics"]) == 20  # the torn last line is skipped
    status, content_type, png = get(f"{base}/metrics.png?{query}")
    assert status == 200 and content_type == "image/png" and png.startswith(b"\x89PNG")


def test_paths_outside_the_prefix_are_refused(served):
    base, _, _ = served
    query = urllib.parse.urlencode({"path": "/etc"})
    assert get(f"{base}/step?{query}")[0] == 404
    assert get(f"{base}/nope")[0] == 404
