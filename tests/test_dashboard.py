"""The dashboard over real HTTP (uvicorn), on a prefix written by a real executor run: a tiny
training step, an eval-like step with results, items and WAVs, a failed step and a dep-failed one."""

from __future__ import annotations

import html
import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers_dashboard import WaitConfig, shared_prefix, wait_for_release

from soda_jax import fileio
from soda_jax.dashboard.server import BackgroundServer
from soda_jax.execution import Executor, ExecutorStep, this_output_path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_prefix(tmp_path_factory)


@pytest.fixture(scope="module")
def base(built):
    with BackgroundServer(built.prefix, poll_s=0.5) as url:
        yield url


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def get_json(url: str):
    status, _, body = get(url)
    assert status == 200, body[:500]
    return json.loads(body)


def experiment_key(base: str, description: str = "dashboard test experiment") -> str:
    (row,) = [e for e in get_json(base + "/api/experiments") if e["description"] == description]
    return row["key"]


def test_experiments_list_counts_and_wall_time(base):
    (row,) = get_json(base + "/api/experiments")
    assert row["counts"] == {"SUCCESS": 4, "FAILED": 1, "DEP_FAILED": 1}
    assert row["wall_seconds"] > 0
    status, content_type, body = get(base + "/")
    assert status == 200 and content_type.startswith("text/html")
    assert row["key"].encode() in body and b"dashboard test experiment" in body


def test_experiment_page_draws_the_dag_coloured_by_status(base, built):
    key = experiment_key(base)
    status, _, body = get(f"{base}/experiment/{key}")
    page = html.unescape(body.decode())  # graphviz writes '-' in ids and classes as &#45;
    assert status == 200 and "<svg" in page
    expected = {
        "checkpoints/tiny": "SUCCESS",
        "eval/tiny": "SUCCESS",
        "demo/good": "SUCCESS",
        "demo/bad": "FAILED",
        "demo/after": "DEP_FAILED",
        "analysis/isoflop": "SUCCESS",
    }
    steps = {s["name"]: s for s in get_json(f"{base}/api/experiment/{key}")["steps"]}
    for name, want in expected.items():
        assert steps[name]["status"] == want
        i = list(steps).index(name)
        assert f'id="step-{i}"' in page and f"status-{want}" in page
        assert f'href="/step/{built.rel(name)}"' in page  # each node links to its step
    record = fileio.read_json(os.path.join(built.prefix, "experiments", f"{key}.json"))
    assert " ".join(record["argv"]) in page  # the command line that launched the experiment
    if record["git"]["commit"]:
        assert record["git"]["commit"] in page


def test_failed_step_shows_traceback_and_provenance(base, built):
    status, _, body = get(f"{base}/step/{built.rel('demo/bad')}")
    page = body.decode()
    assert status == 200
    assert "Traceback (most recent call last)" in page and "step asked to fail (value=2)" in page
    assert "RuntimeError" in page and "in-process" in page
    # the absolute form the executor records redirects to the canonical page
    status, _, body = get(f"{base}/step?path={built.paths['demo/bad']}")
    assert status == 200 and b"step asked to fail" in body


def test_training_step_curves_config_and_files(base, built):
    rel = built.rel("checkpoints/tiny")
    curves = get_json(f"{base}/api/metrics/{rel}")
    assert curves["rows"] == curves["kept"] == 8 and curves["skipped"] == 0
    assert curves["step"] == list(range(8))
    for metric in ("loss", "lr", "grad_norm", "tokens_per_second"):
        assert len(curves["series"][metric]) == 8 and all(v is not None for v in curves["series"][metric][1:])
    assert any(v is not None for v in curves["series"]["validation_loss"])
    status, _, body = get(f"{base}/step/{rel}")
    page = body.decode()
    assert status == 200 and 'id="chart-loss"' in page and "final_train_loss" in page
    assert "checkpoints/" in page and "metrics.jsonl" in page  # output file browser
    files = get(f"{base}/files/{rel}/metrics.jsonl")[2].decode()
    assert "grad_norm" in files and "first 8 rows" in files


def test_eval_step_results_items_and_audio(base, built):
    rel = built.rel("eval/tiny")
    status, _, body = get(f"{base}/step/{rel}")
    page = body.decode()
    assert status == 200
    assert "speech/accuracy" in page and "heldout/nll" in page
    assert f'href="/step/{built.rel("checkpoints/tiny")}"' in page  # input linked to its producer
    assert 'class="versioned"' in page  # num_items is versioned
    assert f"/items/{rel}/items/speech.jsonl" in page
    items = get(f"{base}/items/{rel}/items/speech.jsonl")[2].decode()
    assert items.count("<audio") == 3 and f'src="/raw/{rel}/audio/item-0.wav"' in items
    status, content_type, wav = get(f"{base}/raw/{rel}/audio/item-0.wav")
    assert status == 200 and "wav" in content_type and wav[:4] == b"RIFF"
    parquet = get(f"{base}/files/{rel}/items.parquet")[2].decode()
    assert "first 3 of 3 rows" in parquet and "say number 2" in parquet
    audio_page = get(f"{base}/files/{rel}/audio/item-1.wav")[2].decode()
    assert "<audio" in audio_page


def test_scaling_analysis_page_carries_the_fits_for_its_plots(base, built):
    rel = built.rel("analysis/isoflop")
    status, _, body = get(f"{base}/step/{rel}")
    page = body.decode()
    assert status == 200 and 'id="isoflop"' in page and 'id="compute-optimal"' in page
    embedded = page.split('<script type="application/json" id="scaling-data">')[1].split("</script>")[0]
    fits = json.loads(embedded)
    on_disk = fileio.read_json(os.path.join(built.paths["analysis/isoflop"], "scaling_fits.json"))
    assert fits == on_disk and len(fits["compute_optimal"]["budgets"]) == 3
    assert "isoflop_curves.png" in page  # the analysis's own plots are in the file browser


def test_compare_overlays_runs_in_steps_tokens_and_flops(base, built):
    rel = built.rel("checkpoints/tiny")
    (run,) = get_json(f"{base}/api/compare?run={rel}")
    assert run["name"] == "checkpoints/tiny" and len(run["series"]["loss"]) == 8
    summary = fileio.read_json(os.path.join(built.paths["checkpoints/tiny"], "summary.json"))
    assert run["tokens"][-1] == summary["tokens"]
    assert run["flops"][-1] == pytest.approx(summary["train_flops"])
    assert get(f"{base}/compare?run={rel}")[0] == 200


def test_running_step_shows_lease_holder_and_goes_live(tmp_path):
    release = tmp_path / "release"
    step = ExecutorStep("live/wait", wait_for_release, WaitConfig(this_output_path(), str(release)))
    executor = Executor(str(tmp_path / "prefix"), use_ray=False)
    thread = threading.Thread(target=executor.run, args=([step],), kwargs={"description": "live"}, daemon=True)
    thread.start()
    with BackgroundServer(str(tmp_path / "prefix")) as base:
        deadline = time.time() + 60
        while True:
            experiments = get_json(base + "/api/experiments")
            steps = get_json(f"{base}/api/experiment/{experiments[0]['key']}")["steps"] if experiments else []
            if steps and steps[0]["status"] == "RUNNING" and steps[0]["lease_owner"]:
                break
            assert time.time() < deadline, "the step never showed as running"
            time.sleep(0.2)
        key = experiments[0]["key"]
        page = get(f"{base}/experiment/{key}")[2].decode()
        assert steps[0]["lease_owner"] in page and "ago" in page
        assert steps[0]["heartbeat_age_s"] < 60
        release.write_text("go")
        thread.join(timeout=60)
        assert get_json(f"{base}/api/experiment/{key}")["steps"][0]["status"] == "SUCCESS"


def test_static_assets_are_served_locally(base):
    status, content_type, body = get(base + "/static/plotly.min.js")
    assert status == 200 and "javascript" in content_type and len(body) > 1_000_000
    status, _, body = get(base + "/static/dashboard.js")
    assert status == 200 and b"Plotly.react" in body
    status, _, body = get(base + "/static/dashboard.css")
    assert status == 200


def test_long_metrics_log_is_downsampled_keeping_first_last_and_every_evaluation(tmp_path):
    from soda_jax.dashboard.metrics import read_curves

    rows = [
        {"step": i, "loss": 10 - i / 1000} | ({"validation_loss": 9.0} if i % 250 == 0 else {}) for i in range(10_000)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = read_curves(str(tmp_path), max_points=200)
    assert curves.rows == 10_000 and curves.skipped == 0
    assert curves.steps[0] == 0 and curves.steps[-1] == 9_999 and curves.steps == sorted(set(curves.steps))
    assert 200 <= len(curves.steps) <= 240  # the spread plus the evaluations that fell between
    evaluated = [s for s, v in zip(curves.steps, curves.series["validation_loss"]) if v is not None]
    assert evaluated == list(range(0, 10_000, 250))
    gaps = [b - a for a, b in zip(curves.steps, curves.steps[1:])]
    assert max(gaps) <= 2 * 10_000 // 200


def test_a_rerun_step_lists_its_earlier_attempts(tmp_path):
    from executor_steps import RecordConfig, record

    from soda_jax.execution import ExecutorError, versioned

    bad = ExecutorStep(
        "demo/bad", record, RecordConfig(this_output_path(), str(tmp_path / "log"), value=versioned(7), fail=True)
    )
    for force in (False, True):
        with pytest.raises(ExecutorError):
            Executor(str(tmp_path / "prefix"), use_ray=False, force_run_failed=force).run([bad])
    (step_dir,) = os.listdir(tmp_path / "prefix" / "demo")
    with BackgroundServer(str(tmp_path / "prefix")) as base:
        page = get(f"{base}/step/demo/{step_dir}")[2].decode()
    assert "Earlier attempts (1)" in page
    assert page.count("step asked to fail (value=7)") >= 2 and page.count("Traceback (most recent call last)") == 2
