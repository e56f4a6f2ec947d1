"""Tokenization on the hosts of a TPU slice: each host's one process tokenizes its share of the shards.

Fast: the share rule, and the step run as each host of a 2-host job in turn (`running_as`, what
`host_main` does around the step), on real shards. Slow: a ``default_tokenize(..., resources=
Resources(tpu="v5p-16"))`` step on the emulated 2-host v5p-16 slice (Ray's TPU API, two processes
joined by ``jax.distributed``, the JAX codec on each host): every shard once, split across both hosts.
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from helpers_audio import needs_espeak, write_yodas2_corpus

from soda_jax.audio.codec import CodecConfig
from soda_jax.data.tokenize_audio import SHARD_STATS_KEY, TokenizeAudioConfig, tokenize_audio
from soda_jax.execution.tpu import SliceHost, host_share, running_as

pytestmark = needs_espeak

RUN_FACTS = ("shards_processed", "shards_already_done", "shards_by_process", "process", "shards_processed_here")
"""Keys of a run's stats (or a host's return) that say who did what, not what was made."""


def shard_names(out) -> list[str]:
    return sorted(n.removesuffix(".parquet") for n in os.listdir(os.path.join(out, "shards")) if n.endswith(".parquet"))


def codes_by_shard(out) -> dict[str, list]:
    return {n: pq.read_table(os.path.join(out, "shards", f"{n}.parquet")).to_pydict() for n in shard_names(out)}


def writer_of(out, shard: str):
    metadata = pq.read_schema(os.path.join(out, "shards", f"{shard}.parquet")).metadata
    return json.loads(metadata[SHARD_STATS_KEY]).get("process")


def test_host_share_gives_every_item_to_exactly_one_host():
    items = [f"s{i}" for i in range(7)]
    shares = [host_share(items, SliceHost(p, 3)) for p in range(3)]
    assert shares == [["s0", "s3", "s6"], ["s1", "s4"], ["s2", "s5"]]
    assert sorted(sum(shares, [])) == sorted(items)
    assert host_share(items, SliceHost(0, 1)) == items
    assert host_share(items[:1], SliceHost(1, 2)) == []  # more hosts than shards: some idle


def test_each_host_tokenizes_its_share_and_process_0_writes_the_stats(tmp_path):
    raw, out, reference = str(tmp_path / "raw"), str(tmp_path / "out"), str(tmp_path / "reference")
    write_yodas2_corpus(raw, num_shards=3)
    expected = tokenize_audio(TokenizeAudioConfig(raw, reference, "yodas2"))  # one process, every shard
    shards = expected["shards_processed"]
    config = TokenizeAudioConfig(raw, out, "yodas2")

    with running_as(SliceHost(1, 2)):  # the second host first: it writes its shards and nothing else
        second = tokenize_audio(config)
    assert second == {"process": 1, "shards_processed_here": [shards[1]]}
    assert shard_names(out) == [shards[1]] and writer_of(out, shards[1]) == 1
    assert not os.path.exists(os.path.join(out, "stats.json")) and not os.path.exists(os.path.join(out, "codec.json"))

    with running_as(SliceHost(0, 2)):
        first = tokenize_audio(config)
    assert first["process"] == 0 and first["shards_processed_here"] == [shards[0], shards[2]]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["shards_by_process"] == {"0": [shards[0], shards[2]], "1": [shards[1]]}
    assert {k: v for k, v in stats.items() if k not in RUN_FACTS} == {
        k: v for k, v in expected.items() if k not in RUN_FACTS
    }
    assert json.loads((tmp_path / "out" / "codec.json").read_text()) == json.loads(
        (tmp_path / "reference" / "codec.json").read_text()
    )
    assert codes_by_shard(out) == codes_by_shard(reference)  # the same rows and codes, whichever host wrote them


def test_a_host_refuses_to_add_to_an_output_of_another_codec(tmp_path):
    """Every host checks codec.json before it encodes (only process 0 writes it)."""
    raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
    write_yodas2_corpus(raw, num_shards=2)
    tokenize_audio(TokenizeAudioConfig(raw, out, "yodas2"))
    os.remove(os.path.join(out, "shards", f"{shard_names(out)[1]}.parquet"))
    with running_as(SliceHost(1, 2)), pytest.raises(ValueError, match="codec.json: output was written with codec"):
        tokenize_audio(TokenizeAudioConfig(raw, out, "yodas2", codec=CodecConfig(seed=1)))
    assert len(shard_names(out)) == 1


# ------------------------------------------------------------------------ matmul precision
def test_a_lower_matmul_precision_is_versioned_and_highest_keeps_every_path():
    from soda_jax.execution.versioning import compute_identities
    from soda_jax.recipes.defaults import default_synth_demo_corpus, default_tokenize

    speech = default_synth_demo_corpus()
    plain = default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2")
    highest = default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2", matmul_precision="highest")
    fast = default_tokenize(
        "demo-yodas2", speech / "yodas2", source="yodas2", codec_backend="jax", matmul_precision="default"
    )
    jax_highest = default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2", codec_backend="jax")
    ids = compute_identities([speech, plain, highest, fast, jax_highest], "/prefix")
    # The demo's path before the setting existed (tests/test_mimi_jax.py pins it too).
    assert ids[id(plain)].output_path == ids[id(highest)].output_path == "/prefix/tokenized/demo-yodas2-audio-4007c052"
    assert "matmul_precision" not in ids[id(jax_highest)].version["config"]
    assert ids[id(fast)].version["config"]["matmul_precision"] == "default"
    assert ids[id(fast)].hash != ids[id(jax_highest)].hash


def test_codec_json_records_a_lower_precision_and_a_resume_must_match_it(tmp_path):
    raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
    write_yodas2_corpus(raw, num_shards=2)
    tokenize_audio(TokenizeAudioConfig(raw, out, "yodas2", matmul_precision="high"))
    assert json.loads((tmp_path / "out" / "codec.json").read_text())["matmul_precision"] == "high"
    os.remove(os.path.join(out, "shards", f"{shard_names(out)[1]}.parquet"))
    with pytest.raises(ValueError, match="codec.json: output was written with codec"):
        tokenize_audio(TokenizeAudioConfig(raw, out, "yodas2"))  # "highest" would mix codes of two settings
    with pytest.raises(ValueError, match=r"matmul_precision must be one of \('highest', 'high', 'default'\)"):
        tokenize_audio(TokenizeAudioConfig(raw, str(tmp_path / "other"), "yodas2", matmul_precision="bf16"))


def test_the_jax_codec_compiles_each_precision_and_a_cpu_gives_the_same_codes():
    """The precision is part of the compiled program (one program each), and a CPU computes float32
    whatever it says: the CPU's codes are the codes of every setting."""
    import numpy as np

    from soda_jax.audio.codec import MimiCodec
    from soda_jax.audio.mimi_jax import runner

    wave = np.random.default_rng(0).standard_normal(24_000).astype(np.float32) * 0.1
    highest = MimiCodec.random(seed=0, backend="jax").encode([wave])[0]  # compiled here or by an earlier test
    compiled = runner._encode._cache_size()
    default = MimiCodec.random(seed=0, backend="jax", matmul_precision="default").encode([wave])[0]
    assert runner._encode._cache_size() == compiled + 1  # the same shapes, another program
    np.testing.assert_array_equal(highest, default)


# --------------------------------------------------------------------- on the emulated slice
SLICE = "v5p-16"
"""Two emulated hosts of 4 chips."""


@pytest.fixture(scope="module")
def tpu_cluster():
    from helpers_cluster import emulated_host, local_cluster

    from soda_jax.execution.parallel import ensure_ray

    with local_cluster(num_cpus=2, include_dashboard=False) as cluster:
        hosts = [emulated_host(cluster, SLICE, "slice-a", w) for w in range(2)]
        ensure_ray(cluster.address)
        yield cluster, hosts


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_tokenize_step_on_a_two_host_slice_splits_the_shards(tpu_cluster, tmp_path):
    import ray

    from soda_jax.execution import Executor, Resources
    from soda_jax.execution.provenance import PROVENANCE_FILE
    from soda_jax.execution.tpu import run_on_tpu_slices
    from soda_jax.execution.versioning import instantiate
    from soda_jax.recipes.defaults import default_tokenize

    raw, reference = str(tmp_path / "raw"), str(tmp_path / "reference")
    write_yodas2_corpus(raw, num_shards=5)
    # Same codes as the torch codec on CPU (tests/test_mimi_jax.py), so the reference is cheap to make here.
    expected = tokenize_audio(TokenizeAudioConfig(raw, reference, "yodas2"))
    shards = expected["shards_processed"]

    step = default_tokenize(
        "on-slice", raw, source="yodas2", codec_backend="jax", resources=Resources(tpu=SLICE, tpu_wait_s=300)
    )
    executor = Executor(str(tmp_path / "prefix"), ray_address=tpu_cluster[0].address)
    executor.prepare([step])
    out = executor.output_path(step)
    config = instantiate(step.config, out, executor.output_path, executor.prefix)
    # The dispatch the executor does for a TPU step on a cluster, called here to see each host's return.
    hosts = run_on_tpu_slices(step.fn, config, out, step.name, step.resources)
    assert ray.is_initialized()

    assert sorted(h["process_id"] for h in hosts) == [0, 1] and all(h["emulated"] for h in hosts)
    done_here = {h["process_id"]: h["result"]["shards_processed_here"] for h in hosts}
    assert done_here == {0: shards[0::2], 1: shards[1::2]}  # every shard exactly once, on both hosts
    stats = json.loads(open(os.path.join(out, "stats.json")).read())
    assert stats["shards_by_process"] == {"0": shards[0::2], "1": shards[1::2]}  # who wrote each parquet
    assert {k: v for k, v in stats.items() if k not in RUN_FACTS} == {
        **{k: v for k, v in expected.items() if k not in RUN_FACTS},
        "codec_backend": "jax",
    }
    assert json.loads(open(os.path.join(out, "codec.json")).read())["backend"] == "jax"
    assert codes_by_shard(out) == codes_by_shard(reference)
    provenance = json.loads(open(os.path.join(out, PROVENANCE_FILE)).read())
    assert provenance["processes"] == 2 and provenance["emulated_tpu"] is True
