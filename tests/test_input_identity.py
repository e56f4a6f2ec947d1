"""A raw input's location is part of a step's version, the executor checks it can be read before a
run, and each step records what it read there: a changed file is reported by the dry run and by the
re-run (in its provenance and the log)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import pytest
from hub_standin import HubStandin, forget_huggingface_hub_state, point_huggingface_hub_at

from soda_jax import fileio
from soda_jax.execution import Executor, ExecutorStep, this_output_path
from soda_jax.execution.executor import ExecutorError
from soda_jax.execution.provenance import INPUTS_FILE
from soda_jax.execution.versioning import compute_identities, fixed_inputs
from soda_jax.recipes.defaults import (
    default_interleave,
    default_synth_demo_corpus,
    default_tokenize,
    default_tokenize_text,
)


@dataclass(frozen=True)
class CountConfig:
    input_path: str
    """The raw files to count."""
    output_path: str
    fail_if_exists: str = ""
    """A file whose presence makes the step fail (an attempt that dies); not versioned."""


def count_files(config: CountConfig) -> None:
    if config.fail_if_exists and os.path.exists(config.fail_if_exists):
        raise RuntimeError("failing on purpose")
    fs, path = fileio.filesystem(config.input_path)
    fileio.atomic_write_json(fileio.join(config.output_path, "count.json"), {"files": len(fs.find(path))})


def count_step(input_path: str, fail_if_exists: str = "") -> ExecutorStep:
    return ExecutorStep("test/count", count_files, CountConfig(input_path, this_output_path(), fail_if_exists))


def write(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_the_same_step_on_two_roots_gets_two_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    roots = [
        "/data/raw/yodas2",
        "gs://other-bucket/raw/yodas2",
        "hf://datasets/espnet/yodas2@" + "a" * 40,
        "hf://datasets/espnet/yodas2@" + "b" * 40,
        "raw/yodas2",
    ]
    audio = [default_tokenize("yodas2", root, source="yodas2") for root in roots]
    text = [default_tokenize_text("nemotron_cc", root, tokenizer="tok") for root in roots]
    caches = [default_interleave("yodas2", step, tokenizer="tok") for step in audio]
    ids = compute_identities([*audio, *text, *caches], "/prefix")
    for steps in (audio, text, caches):
        assert len({ids[id(step)].output_path for step in steps}) == len(roots)
    # a relative root is versioned where it is, absolute; a file:// URL as its path
    assert ids[id(audio[-1])].version["config"]["input_path"] == f"path:{tmp_path}/raw/yodas2"
    same = default_tokenize("yodas2", f"file://{tmp_path}/raw/yodas2/", source="yodas2")
    assert compute_identities([same], "/prefix")[id(same)].output_path == ids[id(audio[-1])].output_path
    # an input that is a step is versioned by the step, as before: no location, no fixed input
    speech = default_synth_demo_corpus()
    demo = default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2")
    version = compute_identities([speech, demo], "/prefix")[id(demo)].version["config"]["input_path"]
    assert version.startswith("input:raw/demo-speech-") and fixed_inputs(demo.config) == {}


def test_a_changed_input_file_is_reported_by_the_dry_run_and_the_rerun(tmp_path, caplog):
    raw, dies = tmp_path / "raw", tmp_path / "dies"
    write(raw / "a.txt", "hello")
    write(raw / "sub/b.txt", "world")
    dies.touch()
    step = count_step(str(raw), str(dies))
    prefix = str(tmp_path / "prefix")
    with pytest.raises(ExecutorError, match="failing on purpose"):
        Executor(prefix, use_ray=False).run([step])
    executor = Executor(prefix, use_ray=False, force_run_failed=True)
    [decision] = executor.dry_run([step])
    assert decision.action == "run" and "input changed" not in decision.reason
    out = executor.output_path(step)
    recorded = fileio.read_json(os.path.join(out, INPUTS_FILE))["input_path"]
    assert recorded["files"] == 2 and set(recorded["listing"]) == {"a.txt", "sub/b.txt"}
    assert (
        fileio.read_json(os.path.join(out, ".provenance.json"))["inputs"]["input_path"]["digest"] == recorded["digest"]
    )

    write(raw / "a.txt", "hello again")
    write(raw / "c.txt", "new")
    os.remove(raw / "sub/b.txt")
    [decision] = executor.dry_run([step])
    assert decision.action == "run"
    assert (
        f"input changed since it was read: {raw}: 1 changed, 1 added, 1 removed (+ c.txt; - sub/b.txt; ~ a.txt:"
        in decision.reason
    )
    assert "size 5 -> 11" in decision.reason

    dies.unlink()
    with caplog.at_level(logging.WARNING, logger="soda_jax.execution.provenance"):
        executor.run([step])
    assert any(
        "changed since the previous attempt read it" in r.getMessage() and "~ a.txt" in r.getMessage()
        for r in caplog.records
    )
    provenance = fileio.read_json(os.path.join(out, ".provenance.json"))
    assert provenance["status"] == "SUCCESS"
    changes = provenance["input_changes"]["input_path"]
    assert (changes["added"], changes["removed"], changes["changed"]) == (1, 1, 1)
    assert provenance["previous_attempts"][0]["inputs"]["input_path"]["files"] == 2  # what the failed attempt read

    write(raw / "c.txt", "newer!")
    [decision] = Executor(prefix, use_ray=False).dry_run([step])
    assert (
        decision.action == "skip"
        and "input changed since it was read" in decision.reason
        and "~ c.txt: " in decision.reason
    )


def test_an_input_that_cannot_be_read_stops_the_run_before_any_step(tmp_path):
    write(tmp_path / "raw/a.txt", "hello")
    present = count_step(str(tmp_path / "raw"))
    missing = ExecutorStep("test/missing", count_files, CountConfig(str(tmp_path / "nowhere"), this_output_path()))
    prefix = tmp_path / "prefix"
    refused = f"1 input\\(s\\) cannot be read; nothing was run:\n  test/missing \\(input_path\\): {tmp_path}/nowhere"
    with pytest.raises(ExecutorError, match=refused):
        Executor(str(prefix), use_ray=False).run([present, missing])
    assert not prefix.exists()
    decisions = {d.step.name: d for d in Executor(str(prefix), use_ray=False).dry_run([present, missing])}
    assert decisions["test/count"].action == "run"
    assert decisions["test/missing"].action == "blocked" and "cannot read its input" in decisions["test/missing"].reason


@pytest.fixture
def hub(monkeypatch):
    with HubStandin(page_size=2) as server:
        point_huggingface_hub_at(monkeypatch, server.url)
        yield server
    forget_huggingface_hub_state()


def test_a_hub_input_is_fingerprinted_by_its_hashes_and_a_moved_branch_reported(hub, tmp_path):
    files = {
        "data/en000/text/00000000.json": json.dumps([{"audio_id": "v"}]).encode(),
        "data/en000/audio/00000000.tar.gz": b"\x1f\x8b" + bytes(64),
    }
    repo = hub.add_repo("standin/corpus", files)
    first = repo.branches["main"]
    step = count_step("hf://datasets/standin/corpus@main/data")
    executor = Executor(str(tmp_path / "prefix"), use_ray=False)
    executor.run([step])
    out = executor.output_path(step)
    assert fileio.read_json(os.path.join(out, "count.json")) == {"files": 2}
    listing = fileio.read_json(os.path.join(out, INPUTS_FILE))["input_path"]["listing"]
    assert set(listing["en000/audio/00000000.tar.gz"]) == {"size", "sha256", "blob_id"}
    assert set(listing["en000/text/00000000.json"]) == {"size", "blob_id"}

    repo.commit({"data/en000/text/00000000.json": b"[]"})  # main moves: same location, other content
    [decision] = Executor(str(tmp_path / "prefix"), use_ray=False).dry_run([step])
    assert decision.action == "skip" and "1 changed (~ en000/text/00000000.json: blob_id" in decision.reason
    pinned = count_step(f"hf://datasets/standin/corpus@{first}/data")
    assert (
        compute_identities([pinned], "/p")[id(pinned)].output_path
        != compute_identities([step], "/p")[id(step)].output_path
    )
