"""The loss the scaling analysis fits: held-out NLL per component and token kind, recorded by training,
pooled over the speech components, and selected by `ScalingAnalysisConfig.fitted_loss`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import haliax as hax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from haliax import Axis

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the experiments package

from helpers_scaling import TEXT_LOSS, heldout_section, sweep_with_text_component
from helpers_training import TEST_CODEBOOK_SIZE, tiny_config, write_split, write_test_cache
from levanter.layers.attention import AttentionMask
from levanter.models.lm_model import LmExample

from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.mixture import soda_mixture
from soda_jax.models import TEST_TINY, qwen3_config
from soda_jax.scaling import runs
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling
from soda_jax.scaling.fits import fit_compute_optimal
from soda_jax.training.validation import HELDOUT_NLL, KINDS, TokenKindLayout, heldout_nll, kind_sums


# ------------------------------------------------------------------------- per-kind sums of a batch
@pytest.mark.parametrize("cross_entropy", ["fused", "full"])
def test_kind_sums_equal_the_log_softmax_of_the_full_logits(cross_entropy):
    layout = TokenKindLayout(text_size=300, audio_offset=304, codebook_size=TEST_CODEBOOK_SIZE)
    vocab_size = layout.audio_offset + 8 * TEST_CODEBOOK_SIZE
    Batch, Pos, Vocab = Axis("batch", 2), Axis("position", 24), Axis("vocab", vocab_size)
    model = qwen3_config(TEST_TINY, Pos.size, gradient_checkpointing=False).build(Vocab, key=jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    ids = np.stack(
        [  # text, a marker, semantic and acoustic ids in both rows
            np.concatenate(
                [rng.integers(0, 300, 8), [300, 302], layout.audio_offset + rng.integers(0, 8 * TEST_CODEBOOK_SIZE, 14)]
            )
            for _ in range(Batch.size)
        ]
    ).astype(np.int32)
    weight = np.ones(ids.shape, np.float32)
    weight[1, 3:6] = 0  # unscored positions (a document boundary, a prompt) count nowhere
    example = LmExample(
        tokens=hax.named(jnp.asarray(ids), (Batch, Pos)),
        loss_weight=hax.named(jnp.asarray(weight), (Batch, Pos)),
        attn_mask=AttentionMask.causal(),
    )

    sums = np.asarray(kind_sums(model, example, layout, cross_entropy, vocab_block=64).array, np.float64)

    logits = np.asarray(model(example.tokens, example.attn_mask).array, np.float64)
    logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    expected = np.zeros((2, len(KINDS)))
    for b in range(Batch.size):
        for t in range(Pos.size - 1):  # the last position has no target
            target = ids[b, t + 1]
            kind = layout.kind_of(np.array(target))
            expected[0, kind] += -logp[b, t, target] * weight[b, t]
            expected[1, kind] += weight[b, t]
    np.testing.assert_allclose(sums, expected, rtol=2e-4, atol=2e-4)
    # 7 text targets a row, less the 3 unweighted ones of row 1; 2 markers a row; 14 audio targets a row
    text, semantic, acoustic, marker = sums[1]
    assert (text, marker, semantic + acoustic) == (11, 4, 28) and semantic > 0 and acoustic > 0


def test_token_kinds_follow_the_vocabulary_layout():
    layout = TokenKindLayout(text_size=300, audio_offset=304, codebook_size=16)
    ids = np.array([0, 299, 300, 303, 304, 319, 320, 304 + 8 * 16 - 1])
    assert [KINDS[k] for k in layout.kind_of(ids)] == [
        "text",
        "text",
        "marker",
        "marker",
        "semantic",
        "semantic",
        "acoustic",
        "acoustic",
    ]


# --------------------------------------------------------------------- the summary's held-out NLL
def test_heldout_nll_pools_speech_components_weighted_by_tokens():
    row = {
        "validation/yodas2/loss": 2.1,
        "validation/emilia/loss": 2.4,
        "validation/nemotron_cc/loss": 3.5,
        "validation/yodas2/text/loss": 4.0,
        "validation/yodas2/text/tokens": 100,
        "validation/yodas2/semantic/loss": 3.0,
        "validation/yodas2/semantic/tokens": 200,
        "validation/yodas2/acoustic/loss": 1.5,
        "validation/yodas2/acoustic/tokens": 1400,
        "validation/emilia/semantic/loss": 2.0,
        "validation/emilia/semantic/tokens": 100,
        "validation/emilia/acoustic/loss": 2.0,
        "validation/emilia/acoustic/tokens": 700,
        "validation/nemotron_cc/text/loss": 3.5,
        "validation/nemotron_cc/text/tokens": 5000,
        "validation_loss": 8.0 / 3,
    }
    section = heldout_nll(row)
    components = section["components"]
    assert {n: c["speech"] for n, c in components.items()} == {"emilia": True, "nemotron_cc": False, "yodas2": True}
    assert components["yodas2"]["tokens"] == 1700
    assert components["yodas2"]["loss"] == pytest.approx((400 + 600 + 2100) / 1700)
    speech = section["speech"]
    assert speech["components"] == ["emilia", "yodas2"] and speech["tokens"] == 2500
    assert speech["loss"] == pytest.approx((400 + 600 + 2100 + 200 + 1400) / 2500)
    assert speech["kinds"]["semantic"] == {"loss": pytest.approx((600 + 200) / 300), "tokens": 300}
    assert speech["kinds"]["text"] == {"loss": 4.0, "tokens": 100}  # the transcripts inside speech documents
    assert section["all"]["loss"] == pytest.approx((3100 + 1600 + 17500) / 7500)
    assert (
        heldout_nll({"validation/x/loss": 1.0, "validation_loss": 1.0}) is None
    )  # no per-kind counts: nothing to pool


def test_text_only_mix_has_no_speech_loss():
    section = heldout_nll({"validation/text/text/loss": 3.0, "validation/text/text/tokens": 10})
    assert section["speech"] == {"loss": None, "tokens": 0, "kinds": {}, "components": []}


def test_training_records_heldout_nll_per_component_and_kind(tmp_path):
    """A real run on a speech cache and a text-only cache in one vocabulary: its summary names the
    speech component, and its losses agree with the validation row it came from."""
    vocab = write_test_cache(str(tmp_path / "speech"), str(tmp_path / "tokenizer"))
    rng = np.random.default_rng(2)
    text_docs = [
        np.concatenate([[vocab.bos_id], rng.integers(5, 200, int(rng.integers(10, 30))), [vocab.eos_id]]).astype(
            np.int32
        )
        for _ in range(64)
    ]
    write_split(str(tmp_path / "text" / "train"), text_docs[:48])
    write_split(str(tmp_path / "text" / "validation"), text_docs[48:])
    save_cache_vocab(vocab, str(tmp_path / "text"))
    data = soda_mixture(
        {"speech": str(tmp_path / "speech"), "text": str(tmp_path / "text")}, {"speech": 0.75, "text": 0.25}
    )
    config = dataclasses.replace(
        tiny_config(str(tmp_path / "speech"), str(tmp_path / "run"), steps=4, steps_per_eval=100), data=data
    )
    from soda_jax.training.train import train

    summary = train(config)
    section = summary[HELDOUT_NLL]
    components = section["components"]
    assert {name: c["speech"] for name, c in components.items()} == {"speech": True, "text": False}
    assert set(components["text"]["kinds"]) == {"text"}  # BOS/text/EOS targets only
    assert {"semantic", "acoustic"} <= set(components["speech"]["kinds"])
    assert section["speech"]["components"] == ["speech"]
    assert section["speech"]["loss"] == pytest.approx(components["speech"]["loss"])
    low, high = sorted(c["loss"] for c in components.values())
    assert low < section["all"]["loss"] < high
    validation = summary["validation"]
    assert summary["final_validation_loss"] == pytest.approx(
        (validation["validation/speech/loss"] + validation["validation/text/loss"]) / 2
    )
    for (
        name,
        component,
    ) in components.items():  # token-weighted vs mean of batch means: the same batches, near-equal sizes
        assert component["loss"] == pytest.approx(validation[f"validation/{name}/loss"], rel=0.05)
        assert component["tokens"] == sum(validation[f"validation/{name}/{kind}/tokens"] for kind in component["kinds"])
    last_row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert heldout_nll(last_row) == section
    assert runs.read_run(str(tmp_path / "run")).loss == pytest.approx(section["speech"]["loss"])


# ----------------------------------------------------------------------- selection in the analysis
def test_the_old_macro_loss_is_a_setting(tmp_path):
    run_paths, _ = sweep_with_text_component(str(tmp_path / "sweep"))
    macro = runs.read_runs(run_paths, fitted_loss="validation_macro").records
    speech = runs.read_runs(run_paths).records
    assert [r.loss for r in macro] == pytest.approx([(r.loss + TEXT_LOSS) / 2 for r in speech])
    # the optima move with the loss: each budget's minimum is the speech loss's (+3)/2, at the same N*
    fitted = [
        fit_compute_optimal(
            *(np.array([getattr(r, k) for r in records], float) for k in ("train_flops", "params", "tokens", "loss")),
            num_bootstrap=20,
        )
        for records in (macro, speech)
    ]
    for on_macro, on_speech in zip(fitted[0].budgets, fitted[1].budgets):
        assert on_macro.params_opt == pytest.approx(on_speech.params_opt, rel=1e-6)
        assert on_macro.loss_opt == pytest.approx((on_speech.loss_opt + TEXT_LOSS) / 2, rel=1e-6)


def test_summaries_without_the_fitted_loss_are_skipped_by_reason(tmp_path):
    run_paths = list(sweep_with_text_component(str(tmp_path / "sweep"))[0])
    old = run_paths[0]
    with open(os.path.join(old, "summary.json")) as f:
        summary = json.load(f)
    del summary["heldout_nll"]  # a summary written before per-kind validation
    with open(os.path.join(old, "summary.json"), "w") as f:
        json.dump(summary, f)
    loaded = runs.read_runs(tuple(run_paths))
    assert loaded.skipped == {"no heldout_speech_nll in summary": 1}
    assert "re-run its training" in loaded.skipped_paths[old]
    assert len(loaded.records) == len(run_paths) - 1
    assert len(runs.read_runs(tuple(run_paths), fitted_loss="validation_macro").records) == len(
        run_paths
    )  # the old loss is there


def test_an_unknown_fitted_loss_fails_before_any_run_is_read(tmp_path):
    with pytest.raises(ValueError, match="unknown fitted loss 'speech'.*heldout_speech_nll"):
        analyze_scaling(ScalingAnalysisConfig(("/nonexistent",), str(tmp_path / "out"), fitted_loss="speech"))
    assert not (tmp_path / "out").exists()


def test_the_fitted_loss_is_part_of_the_analysis_version():
    from soda_jax.execution.versioning import compute_identities
    from soda_jax.recipes.defaults import default_scaling_analysis

    steps = [
        default_scaling_analysis("analysis/x", [], fitted_loss=name)
        for name in ("heldout_speech_nll", "validation_macro")
    ]
    identities = compute_identities(steps, "/prefix")
    paths = {identities[id(step)].output_path for step in steps}
    assert len(paths) == 2
    assert steps[0].config.fitted_loss.value == runs.DEFAULT_FITTED_LOSS == "heldout_speech_nll"


def test_every_fitted_loss_name_is_described():
    assert set(runs.fitted_loss_names()) >= {"heldout_speech_nll", "validation_macro", "heldout_speech_nll/acoustic"}
    assert all(runs.describe_loss(name) for name in runs.fitted_loss_names())
    assert not math.isnan(runs.run_loss({"heldout_nll": heldout_section(2.0)}, "heldout_speech_nll", "x"))
