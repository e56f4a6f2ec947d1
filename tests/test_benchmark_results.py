"""Every benchmark result carries its provenance: one writer (benchmarks/result_files.py) stamps the commit,
the machine and the load, and writes atomically; no benchmark script writes its results any other way."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
WRITER = "result_files.py"
WRITE_FUNCTIONS = {"atomic_write_json", "atomic_write_text", "atomic_write_bytes", "atomic_write_file"}
"""`soda_jax.fileio`'s writers: a benchmark reaches them only through `result_files.write_results`."""

sys.path.insert(0, str(BENCHMARKS))
import result_files  # noqa: E402


def saved(directory: Path, name: str) -> dict:
    return json.loads((directory / f"{name}.json").read_text())


def test_write_results_stamps_commit_machine_and_load(tmp_path):
    load = result_files.Load()
    path = result_files.write_results("bench_example", {"ratio": 2.5, "runs": {"ours": 1.0}}, load, tmp_path)
    assert path == str(tmp_path / "bench_example.json")
    record = saved(tmp_path, "bench_example")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert record["git"]["commit"] == head.stdout.strip()
    assert isinstance(record["git"]["dirty"], bool)
    assert record["machine"]["cpu_count"] == os.cpu_count()
    assert {"host", "platform", "processor"} <= record["machine"].keys()
    assert load.after is not None, "the writer finishes a load that was not finished"
    assert record["load"] == load.record()
    assert record["load"]["load_before"] >= 0 and record["load"]["load_after"] >= 0
    assert record["load"]["comparable"] == (load.before <= result_files.COMPARABLE_LOAD)
    assert record["ratio"] == 2.5 and record["runs"] == {"ours": 1.0}, "the report itself is written unchanged"


def test_write_results_keeps_a_finished_load_and_reads_back_the_report(tmp_path):
    load = result_files.Load(before=0.5).finish()
    after = load.after
    result_files.write_results("bench_example", {"cases": [1, 2]}, load, tmp_path)
    assert saved(tmp_path, "bench_example")["load"]["load_after"] == after
    assert saved(tmp_path, "bench_example")["load"]["comparable"] is True
    assert result_files.previous_report("bench_example", tmp_path) == {"cases": [1, 2]}, "stamps stripped"
    assert result_files.previous_report("bench_missing", tmp_path) is None


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    result_files.write_results("bench_example", {"ratio": 1.0}, result_files.Load(), tmp_path)
    before = (tmp_path / "bench_example.json").read_bytes()
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="[Cc]ircular"):
        result_files.write_results("bench_example", circular, result_files.Load(), tmp_path)
    assert (tmp_path / "bench_example.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench_example.json"], "no staging file left behind"
    with pytest.raises(ValueError, match="[Cc]ircular"):
        result_files.write_results("bench_new", circular, result_files.Load(), tmp_path)
    assert not (tmp_path / "bench_new.json").exists()


def test_write_results_refuses_a_report_that_shadows_a_stamp_or_a_bad_name(tmp_path):
    with pytest.raises(ValueError, match="machine"):
        result_files.write_results("bench_example", {"machine": "x86_64"}, result_files.Load(), tmp_path)
    with pytest.raises(ValueError, match="name"):
        result_files.write_results("../bench_example", {}, result_files.Load(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_default_directory_is_benchmarks_results():
    assert Path(result_files.results_path("bench_codec")) == BENCHMARKS / "results" / "bench_codec.json"


def call_name(call: ast.Call) -> str:
    """The called expression as written: ``json.dump``, ``fileio.atomic_write_json``, ``os.path.join``."""
    return ast.unparse(call.func)


def writes_in_text_mode(call: ast.Call) -> bool:
    """``open(path, "w"...)`` (or "a", "x"): a file written by hand."""
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax")


def own_writes(path: Path) -> list[str]:
    """Where ``path`` writes a result itself, builds its own results path, or defines its own `machine`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            name = call_name(node)
            target = ast.unparse(node.args[0]) if node.args else ""
            if name == "json.dump":
                found.append(f"{where} json.dump")
            elif name.split(".")[-1] in WRITE_FUNCTIONS and "result" in target.lower():
                found.append(f"{where} {name}({target})")
            elif name == "open" and writes_in_text_mode(node) and "result" in target.lower():
                found.append(f"{where} open({target}, 'w')")
            elif name.endswith("path.join") and any(
                isinstance(a, ast.Constant) and a.value == "results" for a in node.args
            ):
                found.append(f"{where} its own path into results/")
        elif isinstance(node, ast.FunctionDef) and node.name == "machine":
            found.append(f"{where} its own machine()")
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "RESULTS" for t in node.targets):
            found.append(f"{where} its own RESULTS path")
    return found


def calls_writer(path: Path) -> bool:
    return any(
        isinstance(node, ast.Call) and call_name(node).split(".")[-1] == "write_results"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def benchmark_scripts() -> list[Path]:
    return sorted(BENCHMARKS.glob("bench_*.py")) + [BENCHMARKS / "compile_final_runs.py"]


def test_benchmarks_write_results_only_through_the_writer():
    scripts = [p for p in sorted(BENCHMARKS.glob("*.py")) if p.name != WRITER]
    assert len(benchmark_scripts()) >= 10, "the benchmark scripts moved: update this test"
    found = [w for p in scripts for w in own_writes(p)]
    assert not found, "write results through result_files.write_results:\n" + "\n".join(found)
    silent = [p.name for p in benchmark_scripts() if not calls_writer(p)]
    assert not silent, f"benchmarks that never call result_files.write_results: {silent}"
