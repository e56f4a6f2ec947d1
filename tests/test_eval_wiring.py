"""SODA's evaluation wired into the experiments: the sets from settings (a missing one skipped by
name), an evaluation step for every sweep run and final model, the analyses reading them, and the
one results table (text and dashboard) with intervals and SODA's numbers."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import urllib.request

import pytest

from soda_jax import fileio
from soda_jax.eval.report import (
    SODA_REPORTED,
    decimals_for,
    format_value,
    read_items,
    result_rows,
    results_table,
)
from soda_jax.eval.results import TaskStore, write_results
from soda_jax.execution import ExecutorStep, InputName, this_output_path, versioned

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the experiments package


# ----------------------------------------------------------------------------------- the settings
def fixture_sets(root, *, with_shots=True, with_scorers=False) -> None:
    """Local copies as `soda_jax.recipes.soda_eval_sets` looks for them (the layouts' entry points only):
    sWUGGY, sBLIMP, LibriSpeech and lm-eval's HellaSwag are there; SALMon and Seed-TTS are not."""
    for name in ("sWUGGY", "sBLIMP", "LibriSpeech/test-clean", "lm-eval-tasks"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    if with_shots:
        os.makedirs(os.path.join(root, "LibriSpeech", "dev-clean"))
    with open(os.path.join(root, "lm-eval-tasks", "hellaswag.yaml"), "w") as f:
        f.write("task: hellaswag\ndataset_path: json\n")
    if with_scorers:
        for name in ("whisper-large-v3", "wavlm-large-sv"):
            os.makedirs(os.path.join(root, name))
            with open(os.path.join(root, name, "config.json"), "w") as f:
                f.write("{}")


@pytest.fixture
def eval_root(tmp_path, monkeypatch):
    root = str(tmp_path / "soda-eval")
    fixture_sets(root)
    for key in [k for k in os.environ if k.startswith("SODA_EVAL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SODA_EVAL_ROOT", root)
    return root


def test_missing_sets_are_skipped_by_name_with_the_path_they_were_looked_for_at(eval_root):
    from soda_jax.recipes.soda_eval_sets import soda_eval_plan

    plan = soda_eval_plan()
    assert [t.name for t in plan.tasks] == [
        "swuggy",
        "twuggy",
        "sblimp",
        "tblimp",
        "librispeech",
        "librispeech_3shot",
        "lm_eval",
    ]
    assert set(plan.missing) == {"salmon", "seed_tts"}
    assert plan.missing["salmon"] == f"{eval_root}/SALMon does not exist ($SODA_EVAL_SALMON / $SODA_EVAL_ROOT)"
    assert plan.missing["seed_tts"].startswith(f"{eval_root}/seed-tts-eval/en/meta.lst does not exist")
    assert (plan.scorers.asr, plan.scorers.speaker) == ("pocketsphinx", "resemblyzer")  # no local Whisper / WavLM
    assert "offline default" in plan.scorer_notes[0] and "whisper-large-v3" in plan.scorer_notes[0]
    text = plan.describe()
    assert "not run: salmon" in text and "not run: seed_tts" in text
    (lm_eval,) = [t for t in plan.tasks if t.name == "lm_eval"]
    assert lm_eval.tasks == ("hellaswag",) and lm_eval.include_path == f"{eval_root}/lm-eval-tasks"


def test_an_override_a_missing_shot_split_and_local_scorers(tmp_path, monkeypatch):
    from soda_jax.recipes.soda_eval_sets import SodaEvalRoots, soda_eval_plan

    root = str(tmp_path / "sets")
    fixture_sets(root, with_shots=False, with_scorers=True)
    salmon = tmp_path / "elsewhere" / "salmon"
    salmon.mkdir(parents=True)
    roots = SodaEvalRoots.from_env({"SODA_EVAL_ROOT": root, "SODA_EVAL_SALMON": str(salmon)})
    assert roots.salmon == str(salmon) and roots.swuggy == f"{root}/sWUGGY"
    plan = soda_eval_plan(roots)
    names = [t.name for t in plan.tasks]
    assert "salmon" in names and "librispeech" in names and "librispeech_3shot" not in names
    assert (
        plan.missing["librispeech_3shot"]
        == f"{root}/LibriSpeech/dev-clean does not exist ($SODA_EVAL_LIBRISPEECH / $SODA_EVAL_ROOT)"
    )
    assert plan.scorers.asr == "whisper" and plan.scorers.asr_model == f"{root}/whisper-large-v3"
    assert plan.scorers.speaker == "wavlm" and plan.scorers.speaker_model == f"{root}/wavlm-large-sv"
    nothing = soda_eval_plan(SodaEvalRoots.from_env({}))
    assert nothing.tasks == () and all("not configured ($SODA_EVAL_" in why for why in nothing.missing.values())
    assert set(nothing.missing) == {
        "swuggy",
        "twuggy",
        "sblimp",
        "tblimp",
        "salmon",
        "librispeech",
        "librispeech_3shot",
        "seed_tts",
        "lm_eval",
    }


# ----------------------------------------------------------------------------- the experiments' DAGs
def _input_step(value):
    """The step an `InputName` (or a bare step) in a config points at."""
    return value.step if isinstance(value, InputName) else value


def _model_step(eval_step: ExecutorStep):
    return _input_step(eval_step.config.model_path)


def test_every_sweep_run_is_evaluated_and_the_analysis_reads_every_evaluation(eval_root, tmp_path):
    from soda_jax.eval.step import run_eval
    from soda_jax.recipes.adaptive_sweep import build_state
    from soda_jax.recipes.isoflop_sweep import soda_adaptive_sweep, soda_mix_data
    from soda_jax.recipes.soda_eval_sets import SODA_CAPABILITY_METRICS
    from soda_jax.scaling.sweep import isoflop_grid
    from soda_jax.training.train import train

    state = build_state(soda_adaptive_sweep(soda_mix_data()), str(tmp_path / "prefix"))
    trains = [s for s in state.steps if s.fn is train]
    evaluations = [s for s in state.steps if s.fn is run_eval]
    assert len(trains) == len(evaluations) == len(isoflop_grid())
    assert [_model_step(e) for e in evaluations] == trains
    assert all(e.name == "evaluation/" + t.name.removeprefix("checkpoints/") for e, t in zip(evaluations, trains))
    assert all("not run: salmon, seed_tts" in e.description for e in evaluations)
    analysis = state.steps[-1].config
    assert [_input_step(p) for p in analysis.run_paths] == trains
    assert [_input_step(p) for p in analysis.eval_paths] == evaluations
    assert analysis.capability_metrics.value == SODA_CAPABILITY_METRICS
    assert analysis.fitted_loss.value == "heldout_speech_nll"


def test_sweep_dry_run_shows_an_evaluation_per_run(eval_root, tmp_path, capsys):
    from soda_jax.recipes import isoflop_sweep
    from soda_jax.scaling.sweep import isoflop_grid

    isoflop_sweep.main(["--prefix", str(tmp_path / "prefix"), "--dry_run"])
    out = capsys.readouterr().out
    assert "not run: salmon:" in out and "not run: seed_tts:" in out
    evaluations = [
        line for line in out.splitlines() if line.split()[1:2] and line.split()[1].startswith("evaluation/isoflop/")
    ]
    assert len(evaluations) == len(isoflop_grid())
    (analysis,) = [line for line in out.splitlines() if " analysis/isoflop-soda " in f" {line} "]
    assert analysis.split()[0] in ("run", "wait", "blocked")  # blocked where the data's hub snapshots cannot be fetched


def test_final_runs_are_evaluated_and_starred_on_the_sweep_analysis(eval_root, tmp_path, capsys):
    from soda_jax.eval.step import run_eval
    from soda_jax.recipes import soda_final
    from soda_jax.recipes.soda_models import SODA_MODELS
    from soda_jax.scaling.sweep import isoflop_grid

    steps = soda_final.soda_final_steps(str(tmp_path / "prefix"))
    finals = steps[: len(SODA_MODELS)]
    evaluations = [s for s in steps if s.fn is run_eval]
    assert [_model_step(e) for e in evaluations] == finals
    assert [e.name for e in evaluations] == [f"evaluation/soda-{size}" for size in SODA_MODELS]
    analysis = steps[-1]
    assert analysis.name == soda_final.FINALS_ANALYSIS
    assert [_input_step(p) for p in analysis.config.reference_run_paths] == finals
    assert [_input_step(p) for p in analysis.config.reference_eval_paths] == evaluations
    assert len(analysis.config.run_paths) == len(analysis.config.eval_paths) == len(isoflop_grid())
    assert all(_input_step(p).name.startswith("evaluation/isoflop/") for p in analysis.config.eval_paths)

    soda_final.main(["--prefix", str(tmp_path / "prefix"), "--dry_run"])
    out = capsys.readouterr().out
    for size in SODA_MODELS:
        assert f" evaluation/soda-{size} " in out
    assert f" {soda_final.FINALS_ANALYSIS} " in out


def test_soda_eval_dry_run_of_a_checkpoint(eval_root, tmp_path, capsys):
    from soda_jax.recipes import soda_eval
    from soda_jax.recipes.soda_eval_sets import SodaEvalRoots, soda_eval_plan

    model = str(tmp_path / "SODA-4B-base")
    (step,) = soda_eval.soda_eval_steps(model)
    assert (
        step.name == "evaluation/soda-eval/SODA-4B-base" and step.config.model_path.value == model
    )  # versioned by the path
    assert [t.name for t in step.config.tasks.value] == [t.name for t in soda_eval_plan().tasks]
    soda_eval.main(["--model", model, "--prefix", str(tmp_path / "prefix"), "--dry_run"])
    out = capsys.readouterr().out
    assert (
        "evaluation/soda-eval/SODA-4B-base" in out and "not run: salmon" in out and "scorer: ASR: pocketsphinx" in out
    )
    with pytest.raises(SystemExit, match="no SODA evaluation set found"):
        soda_eval.soda_eval_steps(model, plan=soda_eval_plan(SodaEvalRoots()))


def test_without_any_set_the_sweep_has_no_evaluations_and_says_what_it_would_fit(tmp_path, monkeypatch):
    from soda_jax.eval.step import run_eval
    from soda_jax.recipes.isoflop_sweep import build_sweep, soda_mix_data
    from soda_jax.recipes.soda_eval_sets import SodaEvalRoots, soda_eval_plan

    steps = build_sweep(soda_mix_data(), plan=soda_eval_plan(SodaEvalRoots()))
    assert not [s for s in steps if s.fn is run_eval] and steps[-1].config.eval_paths == ()


# ----------------------------------------------------------------------------------- the table
def _pairs_summary(name: str, outcomes: list[bool]) -> tuple[dict, list[dict]]:
    from soda_jax.eval.pairs import summarize_pairs, swuggy

    records = [
        {"id": str(i), "group": None, "positive": -1.0, "negative": -2.0 if ok else 0.0, "correct": ok, "tie": False}
        for i, ok in enumerate(outcomes)
    ]
    return summarize_pairs(swuggy(name), records), records


def _asr_summary() -> tuple[dict, list[dict]]:
    from soda_jax.eval.normalize import normalizer
    from soda_jax.eval.wer import word_error_rate

    pairs = [
        ("THE CAT SAT", "the cat sat"),
        ("A DOG RAN HOME", "a dog ran"),
        ("RED FISH", "red fish"),
        ("IT IS LATE", "it was late"),
    ]
    records = [{"id": str(i), "reference": r, "hypothesis": h, "finish": "stop"} for i, (r, h) in enumerate(pairs)]
    wer = word_error_rate([r for r, _ in pairs], [h for _, h in pairs], normalizer("soda"))
    summary = {
        "metrics": {"wer": wer.corpus_wer, "mean_utterance_wer": wer.mean_utterance_wer},
        "headline": "wer",
        "items": len(records),
        "wer": wer.to_dict(),
        "settings": {"normalizer": "soda"},
    }
    return summary, records


def test_values_are_rounded_to_what_their_interval_supports():
    assert [decimals_for(h) for h in (0.185, 0.25, 0.012, 0.0049, 3.2, 15.0)] == [2, 1, 3, 3, 0, 0]
    assert format_value(0.458333, (0.279, 0.651)) == ("0.46", "[0.28, 0.65]")
    assert format_value(5.29361234, (5.2871, 5.3002)) == ("5.294", "[5.287, 5.300]")
    assert format_value(0.1234567, None) == ("0.1235", "")  # no interval: 4 significant digits
    assert format_value(math.nan, None) == ("nan", "")
    assert format_value(100.0, (100.0, 100.0)) == ("100", "[100, 100]")  # every item the same


def test_the_table_has_intervals_items_skips_and_sodas_numbers():
    swuggy, swuggy_items = _pairs_summary("swuggy", [True] * 11 + [False] * 13)
    swuggy["skipped"] = {"too_long": 2}
    asr, asr_items = _asr_summary()
    results = {"tasks": {"swuggy": swuggy, "asr": asr}}
    rows = {
        row.name: row
        for row in result_rows(
            results, {"swuggy": swuggy_items, "asr": asr_items}, not_run={"salmon": "not configured"}
        )
    }
    accuracy = rows["swuggy/accuracy"]
    assert accuracy.value_text == "0.46" and accuracy.interval_text == "[0.28, 0.65]"  # Wilson, 11 of 24
    assert accuracy.items == 24 and accuracy.skipped == {"too_long": 2}
    assert accuracy.reported is SODA_REPORTED["swuggy/accuracy"] and accuracy.reported.label() == "0.618 (SODA-4B?)"
    wer = rows["asr/wer"]
    assert wer.value == pytest.approx(2 / 12) and wer.interval is not None  # 1 deletion + 1 substitution over 12 words
    assert wer.interval[0] <= wer.value <= wer.interval[1] and wer.reported is None  # the demo's ASR is not LibriSpeech
    assert rows["salmon/-"].skipped == {"not run: not configured": 1}
    text = results_table(results, {"swuggy": swuggy_items, "asr": asr_items}, not_run={"salmon": "not configured"})
    header, rule, *lines = text.splitlines()
    assert header.split()[:4] == ["task", "metric", "value", "95%"] and set(rule) <= {"-", " "}
    assert any(
        line.startswith("swuggy")
        and "0.46" in line
        and "[0.28, 0.65]" in line
        and "too_long=2" in line
        and "0.618 (SODA-4B?)" in line
        for line in lines
    )
    assert any(line.startswith("salmon") and "not run: not configured" in line for line in lines)
    assert "16 digits" not in text and "0.4583333" not in text


def test_nll_intervals_come_from_a_bootstrap_over_documents():
    from soda_jax.eval.nll import ValidationNllTask, summarize_nll

    records = [
        {"id": f"c:{i}", "cache": "c", "nll": [2.0 + 0.1 * i, 50.0 + i, 300.0, 1.0], "tokens": [1, 20, 140, 4]}
        for i in range(12)
    ]
    summary = json.loads(
        json.dumps(summarize_nll(ValidationNllTask(), ["c"], records), sort_keys=True)
    )  # as results.json holds it
    assert list(summary["tokens_by_kind"]) == ["acoustic", "marker", "semantic", "text"]  # not the records' order
    rows = {row.name: row for row in result_rows({"tasks": {"validation_nll": summary}}, {"validation_nll": records})}
    for row in rows.values():
        assert row.interval is None or row.interval[0] <= row.value <= row.interval[1], row
    semantic = rows["validation_nll/semantic/loss"]
    assert semantic.value == pytest.approx(sum(50.0 + i for i in range(12)) / 240)
    assert semantic.interval[0] < semantic.value < semantic.interval[1]
    assert rows["validation_nll/acoustic/loss"].interval == pytest.approx(
        (300 / 140, 300 / 140)
    )  # the same in every document
    bits = rows["validation_nll/semantic/bits_per_token"]
    assert bits.interval == pytest.approx((semantic.interval[0] / math.log(2), semantic.interval[1] / math.log(2)))


# ------------------------------------------------------------------------------ the dashboard page
@dataclasses.dataclass(frozen=True)
class EvalOutputConfig:
    output_path: str
    items: int


def write_eval_output(config: EvalOutputConfig) -> None:
    """What an evaluation step leaves (results.json, items/, tasks/), written by the eval package's own store."""
    summaries = {}
    for name, outcomes in (("swuggy", [True] * 11 + [False] * 13), ("sblimp", [True, False] * 8)):
        store = TaskStore(config.output_path, name)
        summary, records = _pairs_summary(name, outcomes)
        store.add(records)
        store.skip("99", "too_long", "99: 300 tokens; the model's context is 256")
        summaries[name] = store.finish(summary)
    write_results(config.output_path, summaries, {"model_path": "fixture"})


def test_dashboard_evaluation_page_is_a_table(tmp_path):
    from soda_jax.dashboard.server import BackgroundServer
    from soda_jax.execution import Executor

    prefix = str(tmp_path / "prefix")
    step = ExecutorStep("evaluation/fixture", write_eval_output, EvalOutputConfig(this_output_path(), versioned(24)))
    executor = Executor(prefix, use_ray=False)
    executor.run([step], description="eval table")
    rel = os.path.relpath(executor.output_path(step), prefix)
    assert len(read_items(executor.output_path(step), ["swuggy"])["swuggy"]) == 24  # the skipped item is not scored
    with BackgroundServer(prefix) as base, urllib.request.urlopen(f"{base}/step/{rel}", timeout=60) as response:
        page = response.read().decode()
    table = page.split('<table class="list eval-table">')[1].split("</table>")[0]
    assert "<th>95% interval</th>" in table and "<th>SODA reported</th>" in table
    assert f'href="/items/{rel}/items/swuggy.jsonl"' in table and f'href="/items/{rel}/items/sblimp.jsonl"' in table
    swuggy_row = table.split(">swuggy</a>")[1].split("</tr>")[0]
    assert ">0.46<" in swuggy_row and ">[0.28, 0.65]<" in swuggy_row and ">24<" in swuggy_row
    assert "too_long 1" in swuggy_row and "0.618 (SODA-4B?)" in swuggy_row
    assert "0.4583333" not in table  # no bare floats
    with open(os.path.join(executor.output_path(step), "results.json")) as f:
        assert json.load(f)["metrics"]["swuggy/accuracy"] == pytest.approx(11 / 24)
    assert fileio.exists(os.path.join(executor.output_path(step), "items", "sblimp.jsonl"))
