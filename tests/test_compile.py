"""Ahead-of-time compilation of the real training step for TPU slices, on this CPU host (libtpu's compiler).

The default suite compiles SODA-135M's final-run step (seq 4096, batch 512) for a v5p-32; the four
final runs on their slices and the oversized SODA-4B-on-v5p-8 case are `slow`
(benchmarks/compile_final_runs.py records their figures for the README).
"""

from __future__ import annotations

import json

import pytest

from soda_jax.aot import DoesNotFitError, check_fits, compile_report, tpu_slice
from soda_jax.aot.cli import parse_parallelism, train_config_for
from soda_jax.cli import main as soda_main
from soda_jax.models.catalogue import SODA_135M
from soda_jax.scaling.sweep import SODA_VOCAB_SIZE
from soda_jax.training.parallelism import ParallelismConfig

GIB = 1024**3


def test_slice_types_resolve_chips_topology_and_hosts():
    v5p32 = tpu_slice("v5p-32")
    assert (v5p32.num_chips, v5p32.topology, v5p32.num_hosts, v5p32.jax_topology_name) == (16, "2x2x4", 4, "v5p:2x2x4")
    assert tpu_slice("v5p-256").num_hosts == 32 and tpu_slice("v5p-8").num_hosts == 1
    assert (tpu_slice("v6e-64").num_chips, tpu_slice("v6e-64").topology) == (64, "8x8")
    assert tpu_slice("v5p-16").head_resource == "TPU-v5p-16-head"
    for bad in ("v5p-33", "v9-8", "tpu"):
        with pytest.raises(ValueError, match="v5p|TPU type"):
            tpu_slice(bad)


def test_parallelism_flag():
    assert parse_parallelism("model=2") == ParallelismConfig(model=2)
    assert parse_parallelism("replica=2,fsdp=false") == ParallelismConfig(replica=2, fsdp=False)
    with pytest.raises(ValueError, match="name=value"):
        parse_parallelism("pipeline=2")


def check_135m_memory(report):
    memory = report["memory"]
    assert report["mesh"]["data"] == 16 and report["chips"] == 16 and report["hosts"] == 4
    assert report["layer_loop"] == "scan" and "splash" in report["attention"].lower()
    params = SODA_135M.param_counts(report["padded_vocab_size"]).total
    assert memory["parameters_gib"] == pytest.approx(4 * params / 16 / GIB, rel=0.02)
    assert memory["optimizer_state_gib"] >= 2 * memory["parameters_gib"] * 0.98  # Cautious: two moments
    assert memory["fits"] and 0 < memory["peak_gib"] < memory["budget_gib"]


def test_soda_135m_final_step_compiles_for_v5p_32():
    """The exact final-run step (bf16 compute, scanned layers, remat, splash attention, FSDP over 16
    chips) compiles for a v5p-32 and fits a chip; its parameter bytes are the model's f32 parameters
    split 16 ways."""
    config = train_config_for("soda-135m", batch=512, seq=4096, parallelism=ParallelismConfig())
    check_135m_memory(compile_report(config, "v5p-32", vocab_size=SODA_VOCAB_SIZE, model_name="soda-135m", count_flops=False))


@pytest.mark.slow
@pytest.mark.xfail(reason="the scanned-loop FLOP correction is unfinished: measured 2.9e8 compiled vs 1.17e9 analytic "
                   "FLOPs/token for SODA-135M (issue 13)", strict=False)
def test_soda_135m_compiled_flops_match_analytic():
    """The loop-corrected compiled FLOPs agree with the analytic count up to what the analytic count
    leaves out (two more compiles, unrolled at depth 1 and 2)."""
    config = train_config_for("soda-135m", batch=512, seq=4096, parallelism=ParallelismConfig())
    report = compile_report(config, "v5p-32", vocab_size=SODA_VOCAB_SIZE, model_name="soda-135m")
    check_135m_memory(report)
    flops = report["flops_per_token"]
    # XLA counts the scanned loop's body once: the uncorrected count misses most of the layers.
    assert flops["compiled_as_is"] < flops["compiled"]
    # Compiled = analytic (3 x forward) + remat's recomputed forward, less the causal half of attention
    # splash skips, give or take norms/softmax/optimizer: between 0.8x and the with-recompute count x 1.1.
    assert 0.8 * flops["analytic"] < flops["compiled"] < 1.1 * flops["analytic_with_recompute"]
    assert report["roofline_step_seconds_lower_bound"] > 0


def test_cli_compiles_a_small_step_and_writes_its_report(tmp_path, capsys):
    """`soda compile`: the report printed and written as JSON, exit 0 when it fits."""
    out = tmp_path / "report.json"
    code = soda_main(["compile", "test-tiny", "--tpu", "v5p-8", "--batch", "16", "--seq", "256", "--no-flops",
                      "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code == 0 and "FITS" in printed and "v5p-8 (4 chips, 1 hosts" in printed
    assert report["memory"]["fits"] and report["mesh"]["data"] == 4 and report["layer_loop"] == "scan"


@pytest.mark.slow
def test_soda_4b_batch_512_does_not_fit_a_v5p_8(tmp_path, capsys):
    """The oversized case through the CLI: exit 1 and the numbers, not a crash."""
    out = tmp_path / "report.json"
    code = soda_main(["compile", "soda-4b", "--tpu", "v5p-8", "--batch", "512", "--seq", "4096", "--no-flops", "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 1 and "DOES NOT FIT" in capsys.readouterr().out
    assert report["memory"]["peak_gib"] > report["memory"]["budget_gib"]
    with pytest.raises(DoesNotFitError, match=r"soda-4b batch 512 x seq 4096 does not fit v5p-8: needs \d+\.\d GiB per chip"):
        check_fits(report)


@pytest.mark.slow
@pytest.mark.parametrize("model,tpu,model_parallel", [
    ("soda-135m", "v5p-32", 1), ("soda-600m", "v5p-64", 1), ("soda-1.7b", "v5p-128", 1), ("soda-4b", "v5p-256", 2),
])  # fmt: skip
def test_final_runs_fit_their_slices(model, tpu, model_parallel):
    """SODA's four final runs on their published slices (benchmarks/compile_final_runs.py: minutes each)."""
    config = train_config_for(model, batch=512, seq=4096, parallelism=ParallelismConfig(model=model_parallel))
    report = compile_report(config, tpu, vocab_size=SODA_VOCAB_SIZE, model_name=model)
    assert report["memory"]["fits"], report["memory"]
    flops = report["flops_per_token"]
    assert 0.8 * flops["analytic"] < flops["compiled"] < 1.1 * flops["analytic_with_recompute"]
