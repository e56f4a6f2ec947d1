"""The download step against a stand-in of the hub on 127.0.0.1 (tests/hub_standin.py): a pinned
revision copied in the repository's layout, sizes and hashes checked, resumable, provenance in its
manifest, and a gated repository refused before anything runs, naming it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
from hub_standin import HubStandin, forget_huggingface_hub_state, git_blob_id, point_huggingface_hub_at

from soda_jax import fileio
from soda_jax.contracts import DOWNLOAD_MANIFEST_FILE as MANIFEST_FILE
from soda_jax.data.download import DownloadConfig, DownloadError, download, included
from soda_jax.execution import Executor
from soda_jax.execution.executor import ExecutorError
from soda_jax.execution.provenance import INPUTS_FILE
from soda_jax.recipes.defaults import default_download

GRANTED, NOT_GRANTED, UNKNOWN = "hf_granted", "hf_not_granted", "hf_unknown"
DATASET = "standin/yodas2"
TOKENIZER_REPO = "standin/gated-tokenizer"
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")


def tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def yodas2_files(text: str = "hello there") -> dict[str, bytes]:
    """A YODAS2-shaped repository: two English subsets and a French one, audio archives in LFS."""
    files = {"README.md": b"# stand-in of espnet/yodas2\n"}
    for subset in ("en000", "en001", "fr000"):
        audio_id = f"vid-{subset}"
        files[f"data/{subset}/audio/00000000.tar.gz"] = tar_gz({f"{audio_id}.wav": os.urandom(2000)})
        captions = [{"audio_id": audio_id, "text": {f"{audio_id}-00000-00000000-00000150": f"{text} {subset}"}}]
        files[f"data/{subset}/text/00000000.json"] = json.dumps(captions).encode()
        files[f"data/{subset}/duration/00000000.txt"] = f"{audio_id} 1.50\n".encode()
    return files


@pytest.fixture
def hub(monkeypatch):
    with HubStandin(page_size=2, valid_tokens={GRANTED, NOT_GRANTED}) as server:
        point_huggingface_hub_at(monkeypatch, server.url)
        yield server
    forget_huggingface_hub_state()


def read_tree(root) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, names in os.walk(root)
        for f in names
        if not f.startswith(".") and f != MANIFEST_FILE
    }


def test_include_patterns_take_folders_and_globs():
    assert included("data/en000/audio/00000000.tar.gz", ("data/en*",))
    assert not included("data/fr000/audio/00000000.tar.gz", ("data/en*",))
    assert included("Emilia/EN/EN-B000000.tar", ("Emilia/EN", "Emilia-YODAS/EN"))
    assert not included("Emilia/DE/DE-B000000.tar", ("Emilia/EN",))
    assert included(
        "x/quality=high/kind=actual/kind2=actual/CC-MAIN-1.jsonl.zstd", ("*quality=high/kind=actual/kind2=actual",)
    )
    assert not included(
        "x/quality=high/kind=synthetic/kind2=qa/CC-MAIN-1.jsonl.zstd", ("*quality=high/kind=actual/kind2=actual",)
    )
    assert included("anything/at/all", ())


def test_hub_urls_are_taken_apart_without_a_request():
    loc = fileio.hub_location("hf://datasets/espnet/yodas2@abc/data/en000")
    assert (loc.repo_type, loc.repo_id, loc.revision, loc.path_in_repo) == (
        "dataset",
        "espnet/yodas2",
        "abc",
        "data/en000",
    )
    loc = fileio.hub_location("hf://kyutai/mimi")
    assert (loc.repo_type, loc.repo_id, loc.revision, loc.path_in_repo) == ("model", "kyutai/mimi", None, "")
    loc = fileio.hub_location("hf://datasets/a/b@refs/convert/parquet/default/train")
    assert (loc.revision, loc.path_in_repo) == ("refs/convert/parquet", "default/train")
    assert fileio.hub_location("hf://datasets/a/b@refs%2Fpr%2F3").revision == "refs/pr/3"
    assert fileio.hub_location("hf://a/b@" + "0" * 40).pinned and not fileio.hub_location("hf://a/b@main").pinned
    assert loc.at("c0ffee", "x.json") == "hf://datasets/a/b@c0ffee/x.json"
    assert fileio.hub_location("gs://bucket/raw") is None
    with pytest.raises(ValueError, match="names a repository"):
        fileio.hub_location("hf://datasets/only-namespace")


def test_the_step_copies_a_pinned_revision_with_its_provenance(hub, tmp_path):
    repo = hub.add_repo(DATASET, yodas2_files("first"))
    pinned = repo.branches["main"]
    repo.commit({"data/en000/text/00000000.json": b"[]"})  # main moves on; the pinned copy must not
    step = default_download("yodas2-en", f"hf://datasets/{DATASET}@{pinned}", include=("data/en*",))
    executor = Executor(str(tmp_path / "prefix"), use_ray=False)
    executor.run([step])
    out = executor.output_path(step)

    expected = {p: d for p, d in repo.commits[pinned].items() if p.startswith("data/en")}
    assert read_tree(out) == expected
    manifest = fileio.read_json(os.path.join(out, MANIFEST_FILE))
    assert manifest["status"] == "complete" and manifest["commit"] == pinned and manifest["revision"] == pinned
    assert manifest["repo_id"] == DATASET and manifest["include"] == ["data/en*"]
    assert manifest["num_files"] == len(expected) == manifest["copied"]
    by_path = {f["path"]: f for f in manifest["files"]}
    audio = "data/en000/audio/00000000.tar.gz"
    assert by_path[audio]["sha256"] is not None and by_path[audio]["size"] == len(expected[audio])
    text = "data/en001/text/00000000.json"
    assert by_path[text]["sha256"] is None and by_path[text]["git_oid"] == git_blob_id(expected[text])
    # the executor versioned the location and fingerprinted what it listed there
    assert executor.identities[id(step)].version["config"]["input_path"] == f"path:hf://datasets/{DATASET}@{pinned}"
    provenance = fileio.read_json(os.path.join(out, ".provenance.json"))
    assert provenance["status"] == "SUCCESS"
    assert provenance["inputs"]["input_path"]["files"] == len(repo.commits[pinned])
    listing = fileio.read_json(os.path.join(out, INPUTS_FILE))["input_path"]["listing"]
    assert listing[audio]["sha256"] == by_path[audio]["sha256"] and listing[text]["blob_id"] == git_blob_id(
        expected[text]
    )


def test_a_rerun_copies_only_what_is_missing_or_incomplete(hub, tmp_path):
    repo = hub.add_repo(DATASET, yodas2_files())
    config = DownloadConfig(f"hf://datasets/{DATASET}@{repo.branches['main']}", str(tmp_path / "copy"), ("data/en000",))
    first = download(config)
    assert first["copied"] == 3 and len(hub.downloads()) == 3
    os.remove(tmp_path / "copy/data/en000/duration/00000000.txt")
    with open(tmp_path / "copy/data/en000/audio/00000000.tar.gz", "r+b") as f:
        f.truncate(100)  # what a copy stopped mid-file by hand would leave
    hub.requests.clear()
    second = download(config)
    assert sorted(p.rsplit("/resolve/", 1)[1].split("/", 1)[1] for p in hub.downloads()) == [
        "data/en000/audio/00000000.tar.gz",
        "data/en000/duration/00000000.txt",
    ]
    assert (second["copied"], second["already_present"]) == (2, 1)
    assert read_tree(tmp_path / "copy") == {
        p: d for p, d in repo.commits[repo.branches["main"]].items() if p.startswith("data/en000")
    }


def test_a_file_that_does_not_match_its_hash_is_never_committed(hub, tmp_path):
    repo = hub.add_repo(DATASET, yodas2_files())
    bad = "data/en001/audio/00000000.tar.gz"
    repo.corrupt.add(bad)
    config = DownloadConfig(f"hf://datasets/{DATASET}@{repo.branches['main']}", str(tmp_path / "copy"), ("data/en*",))
    with pytest.raises(DownloadError, match=rf"1 of 6 files did not copy(.|\n)*{bad}(.|\n)*sha256 .* does not match"):
        download(config)
    assert not (tmp_path / "copy" / bad).exists() and len(read_tree(tmp_path / "copy")) == 5
    assert fileio.read_json(str(tmp_path / "copy" / MANIFEST_FILE))["status"] == "copying"
    repo.corrupt.clear()
    hub.requests.clear()
    assert download(config)["status"] == "complete" and len(hub.downloads()) == 1


def test_a_revision_that_moved_under_a_copy_is_refused(hub, tmp_path):
    repo = hub.add_repo(DATASET, yodas2_files())
    config = DownloadConfig(f"hf://datasets/{DATASET}@main", str(tmp_path / "copy"), ("data/en000",))
    assert download(config)["commit"] == repo.branches["main"]
    moved = repo.commit({"data/en000/text/00000000.json": b"[]"})
    with pytest.raises(DownloadError, match=f"now resolves to commit {moved}.*pin the revision"):
        download(config)


def test_a_gated_repository_stops_the_run_before_any_step_naming_it(hub, tmp_path, monkeypatch):
    files = {name: json.dumps({"name": name}).encode() for name in (*TOKENIZER_FILES, "model.safetensors")}
    repo = hub.add_repo(TOKENIZER_REPO, files, repo_type="model", gated=True, granted={GRANTED})
    step = default_download("tokenizer", f"hf://{TOKENIZER_REPO}@{repo.branches['main']}", include=TOKENIZER_FILES)
    prefix = tmp_path / "prefix"

    def run():
        executor = Executor(str(prefix), use_ray=False)
        executor.run([step])
        return executor.output_path(step)

    no_token = f"nothing was run(.|\n)*model {TOKENIZER_REPO}.* is gated and no credential was given: set \\$HF_TOKEN"
    with pytest.raises(ExecutorError, match=no_token):
        run()
    assert not prefix.exists()  # nothing ran, nothing was written
    monkeypatch.setenv("HF_TOKEN", NOT_GRANTED)
    not_granted = f"model {TOKENIZER_REPO}.* is gated and refused the token in \\$HF_TOKEN \\(HTTP 403\\)"
    with pytest.raises(ExecutorError, match=not_granted):
        run()
    monkeypatch.setenv("HF_TOKEN", UNKNOWN)
    unknown = f"the hub refused the token in \\$HF_TOKEN \\(HTTP 401\\) opening the model {TOKENIZER_REPO}"
    with pytest.raises(ExecutorError, match=unknown):
        run()
    assert not prefix.exists()
    monkeypatch.setenv("HF_TOKEN", GRANTED)
    out = run()
    assert read_tree(out) == {name: files[name] for name in TOKENIZER_FILES}


def test_the_command_line_reads_the_endpoint_and_token_from_the_environment(hub, tmp_path):
    repo = hub.add_repo(DATASET, yodas2_files(), gated=True, granted={GRANTED})
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": GRANTED}
    out = tmp_path / "copy"
    command = [
        sys.executable,
        "-m",
        "soda_jax.data.download",
        "--input_path",
        f"hf://datasets/{DATASET}@{repo.branches['main']}",
        "--output_path",
        str(out),
        "--include",
        "[data/fr000]",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kinds = ("audio/00000000.tar.gz", "duration/00000000.txt", "text/00000000.json")
    assert sorted(read_tree(out)) == [f"data/fr000/{kind}" for kind in kinds]
    refused = subprocess.run(command, env={**env, "HF_TOKEN": NOT_GRANTED}, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and f"dataset {DATASET}@" in refused.stderr and "HTTP 403" in refused.stderr
