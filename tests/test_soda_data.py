"""``experiments/soda_data.py``: each corpus root its own setting (flag, environment, ``$SODA_RAW_ROOT``),
its shards listed by the readers from a local tree and from the same tree served by a stand-in of
the hub (tests/hub_standin.py), the input locations in the output paths, and a gated tokenizer
refused before anything runs, naming it."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
import zstandard
from helpers_audio import SENTENCES, needs_espeak, recording, speech
from hub_standin import HubStandin, forget_huggingface_hub_state, point_huggingface_hub_at

from soda_jax import fileio
from soda_jax.audio.codec import MimiCodec
from soda_jax.contracts import STATS_FILE
from soda_jax.data.sources import SkipCounter, get_source, yodas2
from soda_jax.data.synth import ShortUtterance, write_emilia_shard, write_yodas2_shard
from soda_jax.data.tokenizer_steps import ExportTokenizerConfig, export_tokenizer
from soda_jax.execution import Executor
from soda_jax.execution.executor import ExecutorError, topological_order
from soda_jax.recipes import soda_data
from soda_jax.recipes.soda_data import SodaDataRoots, main, parse_roots, soda_data_caches

pytestmark = needs_espeak

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ("yodas2_root", "emilia_root", "nemotron_cc_root", "mls_root")
SHARDS = {
    "yodas2": ["en000-00000000", "en000-00000001", "en001-00000000"],
    "emilia_yodas": ["EN-EN-B000000", "EN-EN-B000001"],
    "emilia": ["EN-EN-B000000"],
    "nemotron_cc": ["quality=high-kind=actual-kind2=actual-CC-MAIN-2024-10-part-00000"],
    "mls": ["train-00000"],
}
"""What the readers must list in `write_corpora`'s trees (SODA's English parts, hq_actual, MLS train)."""
GRANTED = "hf_granted"


def write_corpora(root: str) -> dict[str, str]:
    """The four corpora in their published layouts (and parts SODA does not read); setting -> root."""
    roots = {setting: fileio.join(root, setting.removesuffix("_root")) for setting in SETTINGS}
    for subset, index in (("en000", 0), ("en000", 1), ("en001", 0), ("fr000", 0)):
        write_yodas2_shard(roots["yodas2_root"], subset, index, [recording(f"vid-{subset}{index}", (index, 2))])
    emilia = [
        ShortUtterance(f"EN_B00000_S00000_W00000{i}", speech(SENTENCES[i]), SENTENCES[i], "spk") for i in range(2)
    ]
    for tar in (
        "Emilia/EN/EN-B000000.tar",
        "Emilia/DE/DE-B000000.tar",
        "Emilia-YODAS/EN/EN-B000000.tar",
        "Emilia-YODAS/EN/EN-B000001.tar",
    ):
        write_emilia_shard(fileio.join(roots["emilia_root"], tar), emilia)
    lines = "".join(json.dumps({"text": s, "warc_record_id": str(i)}) + "\n" for i, s in enumerate(SENTENCES)).encode()
    for partition in (
        "quality=high/kind=actual/kind2=actual",
        "quality=medium/kind=actual/kind2=actual",
        "quality=high/kind=synthetic/kind2=qa",
    ):
        path = fileio.join(roots["nemotron_cc_root"], partition, "CC-MAIN-2024-10-part-00000.jsonl.zstd")
        fileio.atomic_write_bytes(path, zstandard.ZstdCompressor().compress(lines))
    for split, speaker in (("train", "100"), ("dev", "200")):
        flac = io.BytesIO()
        sf.write(flac, speech(SENTENCES[3]), 24_000, format="FLAC")
        utterance = f"{speaker}_7_000000"
        fileio.atomic_write_text(
            fileio.join(roots["mls_root"], split, "transcripts.txt"), f"{utterance}\t{SENTENCES[3]}\n"
        )
        fileio.atomic_write_bytes(
            fileio.join(roots["mls_root"], split, "audio", speaker, "7", f"{utterance}.flac"), flac.getvalue()
        )
    return roots


def tree_files(root: str) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, names in os.walk(root)
        for f in names
    }


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, str]:
    return write_corpora(str(tmp_path_factory.mktemp("raw")))


@pytest.fixture
def hub(monkeypatch):
    with HubStandin(page_size=3, valid_tokens={GRANTED}) as server:
        point_huggingface_hub_at(monkeypatch, server.url)
        yield server
    forget_huggingface_hub_state()


def serve(hub: HubStandin, corpora: dict[str, str]) -> dict[str, str]:
    """The same trees as hub dataset repositories, at pinned commits: setting -> hf:// root."""
    roots = {}
    for setting, root in corpora.items():
        repo = hub.add_repo(f"standin/{setting.removesuffix('_root')}", tree_files(root))
        roots[setting] = f"hf://datasets/{repo.repo_id}@{repo.branches['main']}"
    return roots


def flags(roots: dict[str, str], tmp_path) -> list[str]:
    assets = ["--tokenizer", str(tmp_path / "tokenizer"), "--mimi", str(tmp_path / "mimi")]
    return [arg for setting, root in roots.items() for arg in (f"--{setting}", root)] + assets


def listed(output: str) -> dict[str, list[str]]:
    """component -> shard names from ``--list_shards`` output."""
    shards: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("  ") and current is not None:
            shards[current].append(line.strip())
        elif " shards at " in line:
            current = line.split(":", 1)[0]
            shards[current] = []
        else:
            current = None
    return shards


def dry_run_actions(output: str) -> dict[str, str]:
    """step name -> action from the executor's dry-run lines."""
    actions = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("run", "skip", "wait", "fail", "blocked"):
            actions[parts[1]] = parts[0]
    return actions


def test_settings_come_from_flags_then_the_environment_then_the_raw_root(monkeypatch):
    for variable in (
        "SODA_YODAS2_ROOT",
        "SODA_EMILIA_ROOT",
        "SODA_NEMOTRON_CC_ROOT",
        "SODA_MLS_ROOT",
        "SODA_TOKENIZER",
        "SODA_MIMI",
        "SODA_COPY_FROM_HUB",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SODA_RAW_ROOT", "gs://bucket/raw")
    monkeypatch.setenv("SODA_YODAS2_ROOT", "hf://datasets/espnet/yodas2@" + "a" * 40)
    roots, list_shards, rest = parse_roots(
        ["--emilia_root", "s3://b/emilia", "--list_shards", "--prefix", "p", "--dry_run"]
    )
    assert roots == SodaDataRoots(
        yodas2_root="hf://datasets/espnet/yodas2@" + "a" * 40,
        emilia_root="s3://b/emilia",
        nemotron_cc_root="gs://bucket/raw/nemotron_cc",
        mls_root="gs://bucket/raw/mls",
        tokenizer=f"hf://meta-llama/Meta-Llama-3-8B@{soda_data.LLAMA3_COMMIT}",
        mimi=f"hf://kyutai/mimi@{soda_data.MIMI_COMMIT}",
        copy_from_hub=False,
    )
    assert list_shards and rest == ["--prefix", "p", "--dry_run"]
    monkeypatch.setenv("SODA_COPY_FROM_HUB", "1")
    assert SodaDataRoots().copy_from_hub and parse_roots(["--copy_from_hub"])[0].copy_from_hub


def test_a_local_root_and_another_bucket_give_two_sets_of_output_paths(monkeypatch, tmp_path):
    def output_paths(raw_root: str) -> dict[str, str]:
        monkeypatch.setenv("SODA_RAW_ROOT", raw_root)
        steps = topological_order(list(soda_data_caches(SodaDataRoots(tokenizer="/tok", mimi="/mimi")).values()))
        executor = Executor(str(tmp_path), use_ray=False)
        executor.prepare(steps)
        return {step.name: executor.output_path(step) for step in steps}

    local, other = output_paths(str(tmp_path / "raw")), output_paths("gs://other-bucket/raw")
    assert set(local) == set(other) and len(local) == 9  # five tokenizations, four interleaves
    assert all(local[name] != other[name] for name in local)


def test_list_shards_and_dry_run_on_local_trees(corpora, tmp_path, capsys):
    main([*flags(corpora, tmp_path), "--list_shards", "--prefix", str(tmp_path / "prefix"), "--dry_run"])
    output = capsys.readouterr().out
    assert listed(output) == SHARDS
    actions = dry_run_actions(output)
    tokenizations = {f"tokenized/{c}-audio" for c in ("yodas2", "emilia_yodas", "emilia", "mls")} | {
        "tokenized/nemotron_cc-text"
    }
    assert {name: actions[name] for name in tokenizations} == dict.fromkeys(tokenizations, "run")
    assert not any(name.startswith("raw/") for name in actions)  # local assets: nothing to download
    assert not (tmp_path / "prefix").exists()


def test_the_same_trees_on_the_hub_list_the_same_shards_and_read_alike(hub, corpora, tmp_path, capsys):
    hub_roots = serve(hub, corpora)
    with pytest.raises(SystemExit) as exit_code:
        main([*flags(hub_roots, tmp_path), "--list_shards"])
    assert exit_code.value.code == 0 and listed(capsys.readouterr().out) == SHARDS
    # the reader streams the published files from the hub and reads what it reads locally
    local = yodas2.list_shards(corpora["yodas2_root"], ("en",))[0]
    remote = yodas2.list_shards(hub_roots["yodas2_root"], ("en",))[0]
    assert remote.audio_url.startswith(hub_roots["yodas2_root"] + "/data/en000/audio/")

    def read(shard):
        return [(u.segment_id, u.text, len(u.audio)) for u in yodas2.read_shard(shard, SkipCounter())]

    assert read(remote) == read(local) and len(read(local)) == 2
    # copied into the prefix first: one download per corpus repository, the tokenizations wait for it
    main([*flags(hub_roots, tmp_path), "--copy_from_hub", "--prefix", str(tmp_path / "prefix"), "--dry_run"])
    actions = dry_run_actions(capsys.readouterr().out)
    assert {name: action for name, action in actions.items() if name.startswith("raw/")} == {
        f"raw/hub/standin/{corpus}": "run" for corpus in ("yodas2", "emilia", "nemotron_cc", "mls")
    }
    assert actions["tokenized/yodas2-audio"] == "wait"


def test_a_gated_tokenizer_blocks_the_dry_run_and_stops_the_run_naming_it(hub, corpora, tmp_path, capsys):
    tokenizer = hub.add_repo(
        "standin/gated-llama",
        {"tokenizer.json": b"{}", "tokenizer_config.json": b"{}"},
        repo_type="model",
        gated=True,
        granted={GRANTED},
    )
    args = [
        *flags(corpora, tmp_path),
        "--tokenizer",
        f"hf://standin/gated-llama@{tokenizer.branches['main']}",
        "--prefix",
        str(tmp_path / "prefix"),
    ]
    main([*args, "--dry_run"])
    output = capsys.readouterr().out
    actions = dry_run_actions(output)
    assert actions["raw/hub/standin/gated-llama"] == "blocked" and actions["tokenized/yodas2-interleaved"] == "blocked"
    assert "model standin/gated-llama@" in output and "is gated and no credential was given: set $HF_TOKEN" in output
    with pytest.raises(
        ExecutorError, match="nothing was run(.|\n)*raw/hub/standin/gated-llama \\(input_path\\).*gated"
    ):
        main([*args, "--local"])
    assert not (tmp_path / "prefix").exists()


def test_the_experiment_reads_the_hub_endpoint_from_the_environment(hub, corpora, tmp_path):
    hub_roots = serve(hub, {"yodas2_root": corpora["yodas2_root"]})
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "SODA_YODAS2_ROOT": hub_roots["yodas2_root"],
        "SODA_RAW_ROOT": str(tmp_path / "elsewhere"),
    }
    done = subprocess.run(
        [sys.executable, "experiments/soda_data.py", "--list_shards"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # the other corpora are nowhere: listed as unreadable, named
    assert listed(done.stdout)["yodas2"] == SHARDS["yodas2"]
    assert f"emilia: cannot list {tmp_path}/elsewhere/emilia: {tmp_path}/elsewhere/emilia: no such file" in done.stdout


@pytest.mark.parametrize(
    "where, cpus, gpus, tpu, backend",
    [
        ("cpu", soda_data.TOKENIZE_CPUS, 0, None, "torch"),
        ("gpu", soda_data.TOKENIZE_CPUS, 1, None, "torch"),
        ("v5p-128", None, None, "v5p-128", "jax"),
    ],
)
def test_tokenization_goes_where_the_setting_says(tmp_path, where, cpus, gpus, tpu, backend):
    roots = SodaDataRoots(
        **{s: str(tmp_path / s) for s in SETTINGS},
        tokenizer=str(tmp_path / "tok"),
        mimi=str(tmp_path / "mimi"),
        tokenize_on=where,
    )
    tokenize = soda_data.SodaSteps(roots).speech_cache("yodas2").config.input_path
    assert tokenize.name == "tokenized/yodas2-audio"
    assert getattr(tokenize.config.codec_backend, "value", tokenize.config.codec_backend) == backend
    assert tokenize.resources.tpu == tpu
    if tpu is None:
        assert (tokenize.config.num_cpus_per_shard, tokenize.config.num_gpus_per_shard) == (cpus, gpus)
    with pytest.raises(ValueError, match="unknown TPU type"):
        soda_data.SodaSteps(dataclasses.replace(roots, tokenize_on="a-laptop")).speech_cache("yodas2")


def test_published_trees_become_a_soda_mix_cache(corpora, tmp_path):
    """The four corpora in their published layouts, through `default_tokenize`, `default_interleave` and
    `default_tokenize_text`, into the caches of SODA's final mix; the counts are the readers' own."""
    export_tokenizer(ExportTokenizerConfig(output_path=str(tmp_path / "tokenizer"), name="mistral-v1"))
    MimiCodec.random(seed=0).model.save_pretrained(tmp_path / "mimi")
    prefix = str(tmp_path / "prefix")
    main([*flags(corpora, tmp_path), "--prefix", prefix, "--local"])
    roots = SodaDataRoots(**corpora, tokenizer=str(tmp_path / "tokenizer"), mimi=str(tmp_path / "mimi"))
    caches = soda_data_caches(roots)
    executor = Executor(prefix, use_ray=False)
    executor.prepare(topological_order(list(caches.values())))
    for component, step in caches.items():
        stats = fileio.read_json(fileio.join(executor.output_path(step), STATS_FILE))
        if component == "nemotron_cc":  # hq_actual only: one file of every sentence
            assert sum(stats[split]["documents"] for split in ("train", "validation")) == len(SENTENCES), stats
            continue
        codes = fileio.read_json(fileio.join(executor.output_path(step.config.input_path), STATS_FILE))
        source = get_source(soda_data.SPEECH_SOURCES[component])
        root = corpora[soda_data.COMPONENT_ROOTS[component]]
        read = [u for shard in source.list_shards(root, ("en",)) for u in source.read_shard(shard, SkipCounter())]
        assert codes["utterances"] == len(read) > 0 and codes["shards"] == len(SHARDS[component]), (component, codes)
    data = soda_data.soda_final_data(roots)
    assert sorted(data.train_weights) == sorted(soda_data.FINAL_COMPONENTS)
