"""Design-choice studies: the analysis over real run outputs, the demo text corpus, and the experiments' arms.

Summaries carry the ``heldout_nll`` section the training step writes (built here by the training
step's own `heldout_nll` from a validation row); eval results are ``results.json`` files.
"""

from __future__ import annotations

import collections
import json
import os

import matplotlib.image
import numpy as np
import pytest
from helpers_data import save_test_tokenizer

from soda_jax import fileio
from soda_jax.data.demo_text import (
    PYDOC_SOURCE,
    SENTENCES_SOURCE,
    DemoTextConfig,
    prose_paragraphs,
    write_demo_text_corpus,
)
from soda_jax.data.synth import DEFAULT_SENTENCES
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text
from soda_jax.execution.executor import topological_order
from soda_jax.execution.versioning import compute_identities, dependencies
from soda_jax.scaling.studies import (
    MISSING_SUMMARY,
    NO_EVAL,
    NO_HELDOUT,
    STUDY_FILE,
    STUDY_PLOT,
    StudyAnalysisConfig,
    StudyArm,
    analyze_study,
    study_table,
)
from soda_jax.training.validation import HELDOUT_NLL, heldout_nll, validation_key

SPEECH = {
    "yodas2": {"text": (1.4, 90), "semantic": (3.2, 160), "acoustic": (4.6, 1100), "marker": (0.5, 20)},
    "emilia": {"text": (1.5, 110), "semantic": (3.1, 190), "acoustic": (4.5, 1300), "marker": (0.6, 20)},
}
TEXT_CORPUS = {"nemotron_cc": {"text": (3.9, 1500)}}


def validation_row(components: dict, shift: float) -> dict:
    """A training step's final validation row: per component and kind, loss (+ ``shift``) and tokens."""
    row = {}
    for name, kinds in components.items():
        for kind, (loss, tokens) in kinds.items():
            row[validation_key(name, kind)] = loss + shift
            row[validation_key(name, kind, "tokens")] = tokens
    return row


def write_run(
    root: str, name: str, *, shift: float | None, metrics: dict | None, heldout: bool = True
) -> tuple[str, str]:
    """A training output (summary.json; none when ``shift`` is None) and an eval output (results.json
    when ``metrics``)."""
    run, evaluation = os.path.join(root, "checkpoints", name), os.path.join(root, "evaluation", name)
    os.makedirs(run), os.makedirs(evaluation)
    if shift is not None:
        summary = {"params": 839088, "tokens": 529408, "final_validation_loss": 4.0 + shift}
        if heldout:
            summary[HELDOUT_NLL] = heldout_nll(validation_row({**SPEECH, **TEXT_CORPUS}, shift))
        fileio.atomic_write_json(os.path.join(run, "summary.json"), summary)
    if metrics is not None:
        fileio.atomic_write_json(os.path.join(evaluation, "results.json"), {"metrics": metrics, "tasks": {}})
    return run, evaluation


def test_the_table_and_plot_over_real_run_outputs_skip_and_count_what_is_missing(tmp_path):
    root = str(tmp_path)
    arms = [
        StudyArm("text-0", "0% text", 0.0),
        StudyArm("text-50", "50% text", 0.5),
        StudyArm("text-100", "100% text", 1.0),
        StudyArm("old", "old summary"),
        StudyArm("killed", "never finished"),
    ]
    outputs = [
        write_run(root, "text-0", shift=0.0, metrics={"swuggy/accuracy": 0.55, "tblimp/accuracy": 0.5}),
        write_run(root, "text-50", shift=0.25, metrics={"swuggy/accuracy": 0.52, "tblimp/accuracy": 0.6}),
        write_run(root, "text-100", shift=1.0, metrics=None),
        write_run(root, "old", shift=0.1, metrics={}, heldout=False),
        write_run(root, "killed", shift=None, metrics=None),
    ]
    out = os.path.join(root, "analysis")
    config = StudyAnalysisConfig(
        title="text share",
        arms=tuple(arms),
        run_paths=tuple(r for r, _ in outputs),
        eval_paths=tuple(e for _, e in outputs),
        output_path=out,
        metrics=("swuggy/accuracy", "tblimp/accuracy", "salmon/accuracy"),
        axis_label="text share",
    )
    result = analyze_study(config)
    assert json.loads(open(os.path.join(out, STUDY_FILE)).read()) == json.loads(json.dumps(result))
    assert [row["arm"] for row in result["arms"]] == ["text-0", "text-50", "text-100"]
    assert result["skipped"] == {MISSING_SUMMARY: 1, NO_HELDOUT: 1, NO_EVAL: 1}
    assert set(result["skipped_arms"]) == {"old", "killed", "text-100 (eval)"}
    assert result["metrics"] == ["swuggy/accuracy", "tblimp/accuracy"]  # no arm has salmon

    first = result["arms"][0]
    speech_tokens = {k: SPEECH["yodas2"][k][1] + SPEECH["emilia"][k][1] for k in SPEECH["yodas2"]}
    speech_nll = sum(loss * tokens for kinds in SPEECH.values() for loss, tokens in kinds.values()) / sum(
        speech_tokens.values()
    )
    assert first["speech_nll"] == pytest.approx(
        speech_nll
    )  # token-weighted over both speech components, markers included
    semantic = (3.2 * 160 + 3.1 * 190) / 350
    assert first["speech_nll_by_kind"]["semantic"] == pytest.approx(semantic)
    assert first["speech_components"] == ["emilia", "yodas2"]
    assert first["component_nll"]["nemotron_cc"] == pytest.approx(3.9)
    assert result["arms"][1]["speech_nll"] == pytest.approx(speech_nll + 0.25)
    assert first["metrics"] == {"swuggy/accuracy": 0.55, "tblimp/accuracy": 0.5} and result["arms"][2]["metrics"] == {}

    image = matplotlib.image.imread(os.path.join(out, STUDY_PLOT))
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 200
    table = study_table(result["arms"], result["metrics"]).splitlines()
    assert table[0] == (
        "| arm | speech NLL | text | semantic | acoustic | emilia NLL | nemotron_cc NLL | yodas2 NLL "
        "| swuggy/accuracy | tblimp/accuracy |"
    )
    assert (
        len(table) == 2 + 3
        and table[2].startswith(f"| 0% text | {speech_nll:.3f} |")
        and table[4].endswith("| - | - |")
    )


def test_a_study_with_no_readable_arm_fails_naming_them(tmp_path):
    run, _ = write_run(str(tmp_path), "killed", shift=None, metrics=None)
    config = StudyAnalysisConfig(
        title="t", arms=(StudyArm("killed", "killed"),), run_paths=(run,), output_path=str(tmp_path / "out")
    )
    with pytest.raises(ValueError, match="no arm could be read.*killed.*missing summary"):
        analyze_study(config)
    with pytest.raises(ValueError, match="2 arms but 1 run paths"):
        analyze_study(
            StudyAnalysisConfig(
                title="t", arms=(StudyArm("a", "a"), StudyArm("b", "b")), run_paths=(run,), output_path=""
            )
        )


def test_prose_paragraphs_skip_code_headings_and_stubs_by_reason():
    text = (
        'The "if" statement\n******************\n\n'
        'The "if" statement is used for conditional execution, and it selects\nexactly one of the suites.\n\n'
        '   if_stmt ::= "if" assignment_expression ":" suite\n\nSee also: PEP 8.\n'
    )
    skipped: collections.Counter[str] = collections.Counter()
    kept = prose_paragraphs(text, 8, skipped)
    assert kept == ['The "if" statement is used for conditional execution, and it selects exactly one of the suites.']
    assert skipped == {"heading": 1, "indented_block": 1, "too_few_words": 1}


def test_the_demo_text_corpus_is_a_tokenize_text_input(tmp_path):
    stats = write_demo_text_corpus(DemoTextConfig(output_path=str(tmp_path / "corpus"), documents_per_shard=300))
    assert stats["documents"][SENTENCES_SOURCE] == len(DEFAULT_SENTENCES) and stats["documents"][PYDOC_SOURCE] > 500
    records = [json.loads(line) for name in sorted(stats["files"]) for line in open(tmp_path / "corpus" / name)]
    assert [r["text"] for r in records[: len(DEFAULT_SENTENCES)]] == list(DEFAULT_SENTENCES)
    assert len(records) == sum(stats["documents"].values()) and len({r["id"] for r in records}) == len(records)
    assert all("\n" not in r["text"] and len(r["text"].split()) >= 8 for r in records if r["source"] == PYDOC_SOURCE)
    caches = tokenize_text(
        TokenizeTextConfig(
            input_path=str(tmp_path / "corpus" / "text"),
            output_path=str(tmp_path / "cache"),
            tokenizer=save_test_tokenizer(str(tmp_path / "tok")),
            validation_fraction=0.1,
        )
    )
    documents = caches["train"]["documents"] + caches["validation"]["documents"]
    assert documents == len(records) and 0 < caches["validation"]["documents"] < 0.2 * documents


def test_the_mini_study_arms_differ_in_the_text_share_only(tmp_path):
    from soda_jax.recipes.study_text_share_mini import STUDY, TEXT_SHARES, build_mini_study

    steps = build_mini_study()
    train = [s for s in steps if s.name.startswith(f"checkpoints/{STUDY}/")]
    evaluations = [s for s in steps if s.name.startswith(f"evaluation/{STUDY}/")]
    analysis = steps[-1]
    assert [s.name.rsplit("/", 1)[1] for s in train] == ["text-0", "text-5", "text-25", "text-50", "text-100"]
    assert len(evaluations) == len(train) and analysis.name == f"analysis/{STUDY}"
    for share, step in zip(TEXT_SHARES, train):
        data = step.config.data.value
        assert sorted(data.components) == ["emilia", "nemotron_cc", "yodas2"]  # every arm validated on every component
        weights = data.train_weights
        assert weights["nemotron_cc"] == pytest.approx(share)
        assert weights["yodas2"] == pytest.approx(weights["emilia"]) == pytest.approx((1 - share) / 2)
        assert (
            step.config.model.value == train[0].config.model.value
            and step.config.recipe.value == train[0].config.recipe.value
        )
    recipe = train[0].config.recipe.value
    assert (recipe.num_train_steps, recipe.batch_size, recipe.seq_len) == (517, 4, 256)
    assert set(dependencies(analysis)) == {*train, *evaluations}
    identities = compute_identities(topological_order(steps), str(tmp_path))
    assert len({identities[id(s)].output_path for s in train}) == len(train)


def test_arms_are_never_confused_with_each_other_in_the_plot_order(tmp_path):
    """Rows follow the arms' order, not the order their directories sort in."""
    root = str(tmp_path)
    outputs = [write_run(root, name, shift=shift, metrics=None) for name, shift in (("b", 0.5), ("a", 0.0))]
    config = StudyAnalysisConfig(
        title="t",
        arms=(StudyArm("b", "B"), StudyArm("a", "A")),
        run_paths=tuple(r for r, _ in outputs),
        output_path=os.path.join(root, "out"),
    )
    rows = analyze_study(config)["arms"]
    assert [r["label"] for r in rows] == ["B", "A"] and rows[0]["speech_nll"] > rows[1]["speech_nll"]
    assert np.isfinite([r["speech_nll"] for r in rows]).all()


@pytest.fixture
def soda_setup(tmp_path):
    """Local roots for SODA's corpora and assets (nothing read: the steps are only built), and an
    evaluation plan over local sWUGGY, sBLIMP and LibriSpeech directories."""
    from soda_jax.recipes.soda_data import SodaDataRoots
    from soda_jax.recipes.soda_eval_sets import SodaEvalRoots, soda_eval_plan

    roots = SodaDataRoots(
        **{
            name: str(tmp_path / name)
            for name in ("yodas2_root", "emilia_root", "nemotron_cc_root", "mls_root", "tokenizer", "mimi")
        }
    )
    for sub in ("swuggy", "sblimp", "librispeech/test-clean", "librispeech/dev-clean"):
        os.makedirs(tmp_path / "eval" / sub)
    plan = soda_eval_plan(
        SodaEvalRoots(
            swuggy=str(tmp_path / "eval/swuggy"),
            sblimp=str(tmp_path / "eval/sblimp"),
            librispeech=str(tmp_path / "eval/librispeech"),
        )
    )
    return roots, plan


def study_parts(steps, study):
    train = [s for s in steps if s.name.startswith(f"checkpoints/{study}/")]
    evaluations = [s for s in steps if s.name.startswith(f"evaluation/{study}/")]
    assert steps[-1].name == f"analysis/{study}" and set(dependencies(steps[-1])) == {*train, *evaluations}
    return train, evaluations


def test_the_text_share_study_is_sodas_nemotron_sweep(soda_setup):
    from soda_jax.models.catalogue import SODA_150M
    from soda_jax.recipes.soda_models import SODA_TEXT_SHARE_RECIPE
    from soda_jax.recipes.study_text_share import STUDY, TEXT_SHARES, text_share_study

    roots, plan = soda_setup
    train, evaluations = study_parts(text_share_study(roots, plan), STUDY)
    assert len(train) == len(evaluations) == len(TEXT_SHARES) == 5
    recipe = SODA_TEXT_SHARE_RECIPE
    assert (recipe.num_train_steps, recipe.batch_size, recipe.seq_len, recipe.z_loss_weight) == (
        19_074,
        128,
        4096,
        1e-4,
    )
    assert recipe.optimizer.learning_rate == pytest.approx(0.003 * (128 / 256) ** 0.5)
    for share, step in zip(TEXT_SHARES, train):
        assert (
            step.config.model.value == SODA_150M
            and step.config.recipe.value == recipe
            and step.resources.tpu == "v5p-8"
        )
        weights = step.config.data.value.train_weights
        assert weights == pytest.approx({"yodas2": 1 - share, "nemotron_cc": share})
    assert {t.name for t in evaluations[0].config.tasks.value} == {
        "swuggy",
        "twuggy",
        "sblimp",
        "tblimp",
        "librispeech",
        "librispeech_3shot",
    }


def test_the_data_source_study_validates_every_arm_on_every_corpus(soda_setup):
    from soda_jax.recipes.data_mixes import MIXES
    from soda_jax.recipes.soda_models import SODA_DATA_SOURCES_RECIPE
    from soda_jax.recipes.study_data_sources import ARMS, STUDY, data_sources_study

    roots, plan = soda_setup
    train, evaluations = study_parts(data_sources_study(roots, plan), STUDY)
    assert [s.name.rsplit("/", 1)[1] for s in train] == [arm.name for arm, _ in ARMS]
    assert (SODA_DATA_SOURCES_RECIPE.num_train_steps, SODA_DATA_SOURCES_RECIPE.batch_size) == (5_723, 128)
    assert SODA_DATA_SOURCES_RECIPE.optimizer.learning_rate == pytest.approx(0.0015)
    for (_, mix), step in zip(ARMS, train):
        data = step.config.data.value
        assert sorted(data.components) == ["emilia", "emilia_yodas", "mls", "yodas2"]
        trained = {name: w for name, w in data.train_weights.items() if w > 0}
        assert trained == pytest.approx({name: w / sum(MIXES[mix].values()) for name, w in MIXES[mix].items() if w > 0})


def test_the_token_type_study_reads_one_corpus_in_three_layouts_and_scores_pairs_only(soda_setup, tmp_path):
    from soda_jax.models import SODA_1_7B
    from soda_jax.recipes.soda_data import soda_final_caches
    from soda_jax.recipes.soda_models import SODA_TOKEN_TYPES_RECIPE
    from soda_jax.recipes.study_token_types import STUDY, token_types_study

    roots, plan = soda_setup
    steps = token_types_study(roots, plan)
    train, evaluations = study_parts(steps, STUDY)
    caches = [step.config.data.value.components["yodas2"] for step in train]
    assert [tuple(c.config.patterns.value) for c in caches] == [
        ("semantic_only",),
        ("audio_only",),
        ("text_first", "audio_first"),
    ]
    final_yodas2 = soda_final_caches(roots)["yodas2"]
    identities = compute_identities(topological_order([*steps, final_yodas2]), str(tmp_path / "prefix"))
    codes = {identities[id(c.config.input_path)].output_path for c in caches}
    assert len(codes) == 1  # one tokenization, three interleavings
    assert identities[id(caches[2])].output_path == identities[id(final_yodas2)].output_path  # the final runs' cache
    assert len({identities[id(c)].output_path for c in caches}) == 3
    assert all(s.config.model.value == SODA_1_7B and s.config.recipe.value == SODA_TOKEN_TYPES_RECIPE for s in train)
    assert SODA_TOKEN_TYPES_RECIPE.num_train_steps == 57_221
    assert SODA_TOKEN_TYPES_RECIPE.optimizer.learning_rate == pytest.approx(0.002)
    assert {t.name for t in evaluations[0].config.tasks.value} == {"swuggy", "twuggy", "sblimp", "tblimp"}
