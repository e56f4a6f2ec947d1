"""Only the prefix is ever read, and a malformed file is an error on its item, never a dead page.

Each traversal below served another prefix's files from the hand-written server this replaced;
each malformed file made it drop the connection."""

from __future__ import annotations

import html
import json
import os
import urllib.parse
from pathlib import Path

import pytest
from helpers_dashboard import SECRET, raw_get, run_small_experiment

from soda_jax import fileio
from soda_jax.dashboard.paths import OutsidePrefix, PrefixPaths
from soda_jax.dashboard.server import BackgroundServer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two prefixes side by side; the dashboard serves ``mine`` and must never show ``other``."""
    root = tmp_path_factory.mktemp("prefixes")
    mine, other = str(root / "mine"), str(root / "other")
    steps = run_small_experiment(mine, str(root / "log"), "my experiment")
    other_steps = run_small_experiment(other, str(root / "log"), SECRET)
    fileio.atomic_write_json(os.path.join(other, other_steps["demo/good"], "summary.json"), {"secret": SECRET})
    (other_key,) = [n[:-5] for n in os.listdir(os.path.join(other, "experiments"))]
    os.symlink(os.path.join(other, other_steps["demo/good"]), os.path.join(mine, "link-to-other-step"))
    os.symlink("/", os.path.join(mine, "link-to-root"))
    os.symlink(
        os.path.join(other, "experiments", f"{other_key}.json"), os.path.join(mine, "experiments", "linked.json")
    )
    with BackgroundServer(mine) as base:
        yield {
            "base": base,
            "mine": mine,
            "other": other,
            "steps": steps,
            "other_steps": other_steps,
            "other_key": other_key,
        }


def traversals(w) -> list[str]:
    other_step = w["other_steps"]["demo/good"]
    absolute = os.path.join(w["other"], other_step)
    escape = f"../other/{other_step}"
    quoted = urllib.parse.quote(escape, safe="")
    double = urllib.parse.quote(quoted, safe="")
    key = w["other_key"]
    return [
        f"/step?path={w['mine']}/{escape}",
        f"/step?path={absolute}",
        f"/step?path={quoted}",
        f"/step?path={double}",
        f"/step?path=%2e%2e%2f%2e%2e%2f{quoted}",
        f"/api/step?path={w['mine']}/{escape}",
        f"/api/step/{escape}",
        f"/api/step/{quoted}",
        f"/step/{escape}",
        f"/step/%2e%2e/other/{other_step}",
        f"/step/..%2fother%2f{other_step}",
        f"/step/{double}",
        f"/api/metrics/{escape}",
        f"/metrics.png?path={absolute}",
        f"/files/{escape}/summary.json",
        f"/files?path={absolute}/summary.json",
        f"/raw/{escape}/summary.json",
        f"/raw/%2e%2e/other/{other_step}/summary.json",
        f"/raw/{double}%252fsummary.json",
        f"/raw/{absolute}/summary.json",
        f"/raw//{absolute}/summary.json",
        "/raw/link-to-root/etc/passwd",
        "/files/link-to-root/etc",
        "/step/link-to-other-step",
        "/api/step/link-to-other-step",
        "/files/link-to-other-step/summary.json",
        "/raw/link-to-other-step/summary.json",
        f"/items/{escape}/summary.json",
        f"/experiment/../../other/experiments/{key}",
        f"/experiment/..%2f..%2fother%2fexperiments%2f{key}",
        f"/experiment/%2e%2e%2f%2e%2e%2fother%2fexperiments%2f{key}",
        f"/api/experiment/..%2fother%2fexperiments%2f{key}",
        "/experiment/linked",
        "/api/experiment/linked",
        f"/compare?run={escape}",
        f"/api/compare?run={absolute}",
        "/step?path=gs://another-bucket/prefix/demo/good",
        "/step?path=file:///etc",
        "/files?path=memory://x",
        "/raw/%00/etc/passwd",
    ]


def test_every_traversal_is_refused(world):
    for target in traversals(world):
        status, body = raw_get(world["base"], target)
        assert status == 404, f"{target} answered {status}"
        assert SECRET.encode() not in body, target
    # ... while the same forms inside the prefix work
    good = world["steps"]["demo/good"]
    assert raw_get(world["base"], f"/step/{good}")[0] == 200
    assert raw_get(world["base"], f"/step/demo/../{good}")[0] == 200
    assert raw_get(world["base"], f"/step?path={world['mine']}/{good}")[0] == 307
    assert raw_get(world["base"], "/")[0] == 200 and SECRET.encode() not in raw_get(world["base"], "/")[1]


def test_gs_prefix_refuses_other_buckets():
    paths = PrefixPaths("gs://bucket-a/soda")
    assert paths.resolve("gs://bucket-a/soda/x/y").url == "gs://bucket-a/soda/x/y"
    assert paths.resolve("x/../y").rel == "y"
    for bad in (
        "gs://bucket-b/soda/x",
        "gs://bucket-a/other/x",
        "gs://bucket-a/soda/../other",
        "s3://bucket-a/soda/x",
        "/soda/x",
        "../x",
        "x/../../y",
    ):
        with pytest.raises(OutsidePrefix):
            paths.resolve(bad)


# ------------------------------------------------------------------------------ malformed files
BAD_CONTENTS = {
    "empty": (b"", "empty"),
    "truncated": (b'{"status": "SUCC', "not JSON"),
    "not JSON": (b"<html>oops</html>", "not JSON"),
    "not UTF-8": (b'{"a": "\xff\xfe"}', "not UTF-8"),
}
STEP_FILES = (".executor_info", ".executor_status", ".provenance.json", ".executor_lease", "summary.json", "stats.json")
CASES = [(f, kind) for f in STEP_FILES for kind in BAD_CONTENTS if (f, kind) != (".executor_lease", "empty")]
"""An empty lease file is how the executor's own reader sees a lease being rewritten: no lease, no error."""


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    prefix = str(root / "prefix")
    steps = run_small_experiment(prefix, str(root / "log"), "damaged experiment")
    (key,) = [n[:-5] for n in os.listdir(os.path.join(prefix, "experiments"))]
    with BackgroundServer(prefix) as base:
        yield {"base": base, "prefix": prefix, "steps": steps, "key": key}


def pages(d) -> dict[str, str]:
    good = d["steps"]["demo/good"]
    out = {}
    for name, target in (
        ("index", "/"),
        ("experiment", f"/experiment/{d['key']}"),
        ("step", f"/step/{good}"),
        ("api", f"/api/experiment/{d['key']}"),
        ("step api", f"/api/step/{good}"),
    ):
        status, body = raw_get(d["base"], target)
        assert status == 200, f"{name} page answered {status}: {body[:300]!r}"
        out[name] = html.unescape(body.decode())
    return out


@pytest.mark.parametrize("filename,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_malformed_file_is_an_error_on_its_item(damaged, filename, kind):
    content, message = BAD_CONTENTS[kind]
    path = os.path.join(damaged["prefix"], damaged["steps"]["demo/good"], filename)
    original = Path(path).read_bytes() if os.path.exists(path) else None
    Path(path).write_bytes(content)
    try:
        shown = pages(damaged)
    finally:
        if original is None:
            os.unlink(path)
        else:
            Path(path).write_bytes(original)
    expected = f"{filename}: {message}"
    assert expected in shown["step"], f"step page does not say {expected!r}"
    assert (
        "demo/bad" in shown["experiment"]
        and "step asked to fail" in raw_get(damaged["base"], f"/step/{damaged['steps']['demo/bad']}")[1].decode()
    )
    if filename.startswith("."):  # executor metadata: also on the step's row of the experiment page
        assert expected in shown["experiment"], f"experiment page does not say {expected!r}"


def test_status_without_time_and_experiment_file_damage(damaged):
    good = os.path.join(damaged["prefix"], damaged["steps"]["demo/good"])
    status_path = Path(good, ".executor_status")
    original = status_path.read_bytes()
    status_path.write_text(json.dumps({"status": "SUCCESS"}))
    try:
        shown = pages(damaged)
        assert ".executor_status: no numeric 'time'" in shown["step"] and "status-SUCCESS" in shown["step"]
    finally:
        status_path.write_bytes(original)
    experiment = Path(damaged["prefix"], "experiments", f"{damaged['key']}.json")
    original = experiment.read_bytes()
    try:
        for content, message in [
            (b"", "empty"),
            (original[: len(original) // 2], "not JSON"),
            (b"\xff\xff", "not UTF-8"),
            (b"[]", "expected a JSON dict"),
        ]:
            experiment.write_bytes(content)
            status, body = raw_get(damaged["base"], "/")
            assert status == 200 and message in body.decode(), message
            status, body = raw_get(damaged["base"], f"/experiment/{damaged['key']}")
            assert status == 200 and message in body.decode(), message
    finally:
        experiment.write_bytes(original)


def test_metrics_with_unreadable_lines_still_plot(damaged):
    good = damaged["steps"]["demo/good"]
    rows = [json.dumps({"step": i, "loss": 3.0 - i * 0.1}).encode() for i in range(10)]
    rows[4] = b'{"step": 4, "loss": "\xff"}'
    rows.append(b'{"step": 10, "lo')  # a write cut short by a kill
    path = os.path.join(damaged["prefix"], good, "metrics.jsonl")
    with open(path, "wb") as f:
        f.write(b"\n".join(rows))
    try:
        status, body = raw_get(damaged["base"], f"/api/metrics/{good}")
        curves = json.loads(body)
        assert status == 200 and curves["skipped"] == 2 and curves["step"] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
        assert curves["errors"] == ["metrics.jsonl line 5: not UTF-8 (byte 21)", curves["errors"][1]]
        assert curves["errors"][1].startswith("metrics.jsonl line 11: not JSON")
        assert raw_get(damaged["base"], f"/step/{good}")[0] == 200
    finally:
        os.unlink(path)


def test_unexpected_exception_is_a_500_with_a_message(damaged):
    good = damaged["steps"]["demo/good"]
    # a directory where metrics.jsonl should be: reading it fails in a way nothing expects
    os.makedirs(os.path.join(damaged["prefix"], good, "metrics.jsonl"))
    # and one where an experiment file should be: an error on that experiment only
    os.makedirs(os.path.join(damaged["prefix"], "experiments", "broken.json"))
    try:
        status, body = raw_get(damaged["base"], f"/api/metrics/{good}")
        assert status == 500 and b"IsADirectoryError" in body
        status, body = raw_get(damaged["base"], "/")
        assert status == 200 and b"broken.json: not a regular file" in body and b"damaged experiment" in body
    finally:
        os.rmdir(os.path.join(damaged["prefix"], good, "metrics.jsonl"))
        os.rmdir(os.path.join(damaged["prefix"], "experiments", "broken.json"))


def test_tar_shard_members_play_and_only_real_members_are_served(damaged):
    import io as pyio
    import tarfile

    import numpy as np
    import soundfile

    good = damaged["steps"]["demo/good"]
    wav = pyio.BytesIO()
    soundfile.write(wav, np.zeros(1600, np.float32), 16_000, format="WAV")
    path = os.path.join(damaged["prefix"], good, "shard-000.tar")
    with tarfile.open(path, "w") as tar:
        for name, data in (("utt-0.wav", wav.getvalue()), ("utt-0.json", b'{"text": "hi"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, pyio.BytesIO(data))
    try:
        status, body = raw_get(damaged["base"], f"/files/{good}/shard-000.tar")
        assert status == 200 and body.count(b"<audio") == 1 and b"utt-0.json" in body
        status, body = raw_get(damaged["base"], f"/raw/{good}/shard-000.tar?member=utt-0.wav")
        assert status == 200 and body == wav.getvalue()
        for member in ("../../etc/passwd", "/etc/passwd", "utt-1.wav"):
            target = f"/raw/{good}/shard-000.tar?member={urllib.parse.quote(member, safe='')}"
            assert raw_get(damaged["base"], target)[0] == 404, member
    finally:
        os.unlink(path)
