"""Evaluation of a real (tiny, overfitted) model end to end on 8 fake CPU devices: likelihood
pairs, per-kind NLL, codebook selection, generative tasks with bad input, resume after SIGKILL,
lm-eval on a local task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers_eval import (
    AUDIO_FRAMES,
    TRAINED_TEXTS,
    audio_bodies,
    documents,
    eval_train_config,
    resume_eval_config,
    write_eval_cache,
)

from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.audio.codec import CodecConfig
from soda_jax.data.synth import FLITE_VOICES, synthesize
from soda_jax.eval.codebooks import soda_reshape_selection
from soda_jax.eval.context import EvalContext
from soda_jax.eval.nll import KINDS, token_kinds
from soda_jax.eval.pairs import SPEECH, content_logprobs, utterance_score
from soda_jax.eval.readers import audio_bytes_of
from soda_jax.eval.step import EvalConfig, run_eval
from soda_jax.eval.tasks import (
    AsrTask,
    ContinuationTask,
    LmEvalTask,
    Sampling,
    TranslationTask,
    TtsTask,
    ValidationNllTask,
    twuggy,
)
from soda_jax.training.train import train

TESTS_DIR = Path(__file__).parent
CODEC = CodecConfig(pretrained=None, random_size="tiny", seed=0)
SHORT = Sampling(max_new_tokens=16)
KILL_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("eval")
    vocab = write_eval_cache(str(root / "cache"), str(root / "tokenizer"))
    summary = train(eval_train_config(str(root / "cache"), str(root / "run")))
    assert summary["final_train_loss"] < 0.5, "the fixture model must have memorised its documents"
    return {"root": root, "run": str(root / "run"), "cache": str(root / "cache"), "vocab": vocab}


@pytest.fixture(scope="module")
def ctx(trained) -> EvalContext:
    from soda_jax.inference.loader import load_model

    return EvalContext(load_model(trained["run"]), codec=CODEC, batch_size=8)


def write_text_pairs(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"t{i}", "positive_word": t, "negative_word": " ".join(reversed(t.split()))}
        for i, t in enumerate(TRAINED_TEXTS)
    ]
    pq.write_table(pa.Table.from_pylist(rows), directory / "test.parquet")
    return str(directory)


# --------------------------------------------------------------------------- likelihood scoring
def test_trained_documents_beat_corrupted_copies_and_nll_counts_every_kind(trained, ctx, tmp_path):
    results = run_eval(
        EvalConfig(
            model_path=trained["run"],
            output_path=str(tmp_path / "eval"),
            codec=CODEC,
            batch_size=8,
            tasks=(ValidationNllTask(caches=(trained["cache"],)), twuggy(write_text_pairs(tmp_path / "pairs"))),
        )
    )
    assert results["metrics"]["twuggy/accuracy"] == 1.0 and results["tasks"]["twuggy"]["items"] == len(TRAINED_TEXTS)

    rng = np.random.default_rng(1)
    positives = audio_bodies(trained["vocab"])
    negatives = [trained["vocab"].codes_to_ids(rng.integers(0, 2048, size=(8, AUDIO_FRAMES))) for _ in positives]
    scores = [utterance_score(c, SPEECH, None, 8) for c in content_logprobs(ctx, SPEECH, positives + negatives)]
    assert all(p > n for p, n in zip(scores[: len(positives)], scores[len(positives) :]))

    # NLL by kind: exactly the validation documents' targets, counted by kind
    expected = np.zeros(len(KINDS), int)
    for doc in documents(trained["vocab"]):
        np.add.at(expected, token_kinds(trained["vocab"], doc[1:]), 1)
    nll = results["tasks"]["validation_nll"]
    assert [nll["tokens_by_kind"][k] for k in KINDS] == expected.tolist()
    assert expected[1] == 3 * AUDIO_FRAMES and expected[2] == 3 * 7 * AUDIO_FRAMES  # semantic, acoustic
    metrics = results["metrics"]
    assert all(0 <= metrics[f"validation_nll/{k}/loss"] < 2 for k in KINDS)  # memorised: far below ln(vocab) ~ 9.7
    assert metrics["validation_nll/all/bits_per_token"] == pytest.approx(metrics["validation_nll/all/loss"] / np.log(2))


def test_four_codebooks_scored_selects_codebooks_not_time(trained, ctx):
    """Negative = a trained utterance with codebooks 0-3 corrupted in its second half only. Scoring
    the first 4 codebooks must see that; SODA's reshape(8, -1)[:4] scores the first half of the
    time span, identical in both, and cannot tell them apart."""
    vocab = trained["vocab"]
    positive = audio_bodies(vocab)[0]
    codes, _ = vocab.ids_to_codes(positive, range(8))
    corrupted = codes.copy()
    half = AUDIO_FRAMES // 2
    corrupted[:4, half:] = (corrupted[:4, half:] + 1000) % 2048
    negative = vocab.codes_to_ids(corrupted)
    pos, neg = content_logprobs(ctx, SPEECH, [positive, negative])
    assert utterance_score(pos, SPEECH, 4, 8) > utterance_score(neg, SPEECH, 4, 8) + 1.0  # ours: decisive
    theirs = [float(np.mean(soda_reshape_selection(lp, 4))) for lp in (pos, neg)]
    assert theirs[0] == pytest.approx(theirs[1], abs=1e-5)  # SODA's: same prefix, same score: a tie


# ------------------------------------------------------------------------------- generative tasks
def flac(path: Path, wave: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, MIMI_SAMPLE_RATE, format="FLAC")


def write_generative_sets(root: Path) -> tuple[str, str]:
    """A LibriSpeech layout (2 good test items + missing flac + unreadable flac + empty transcript;
    2 dev items for shots) and a Seed-TTS meta.lst (2 good lines + one with 3 fields). Clips are
    0.24 s (3 Mimi frames) so prompts fit the model's 128-token context."""
    clip = int(0.24 * MIMI_SAMPLE_RATE)
    words = ["hello", "yes", "stop", "go"]
    waves = [synthesize(w, FLITE_VOICES[i % 2])[:clip] for i, w in enumerate(words)]
    test = root / "libri" / "test-clean" / "19" / "198"
    flac(test / "19-198-0000.flac", waves[0])
    flac(test / "19-198-0001.flac", waves[1])
    (test / "19-198-0002.flac").write_bytes(b"this is not a flac file")
    (test / "19-198.trans.txt").write_text(
        "19-198-0000 HELLO\n19-198-0001 YES\n19-198-0002 BROKEN\n19-198-0003 GONE\n19-198-0004\n"
    )
    dev = root / "libri" / "dev-clean" / "84" / "121"
    flac(dev / "84-121-0000.flac", waves[2])
    flac(dev / "84-121-0001.flac", waves[3])
    (dev / "84-121.trans.txt").write_text("84-121-0000 STOP\n84-121-0001 GO\n")
    tts = root / "seed" / "en"
    (tts / "wavs").mkdir(parents=True)
    sf.write(tts / "wavs" / "p0.wav", waves[0], MIMI_SAMPLE_RATE)
    sf.write(tts / "wavs" / "p1.wav", waves[2], MIMI_SAMPLE_RATE)
    (tts / "meta.lst").write_text(
        "u0|hello|wavs/p0.wav|a dog ran\nu1|stop|wavs/p1.wav|the cat sat\nu2|three|wavs/p0.wav\n"
    )
    covost = root / "covost"
    covost.mkdir()

    def cell(wave):
        return {"bytes": audio_bytes_of(wave, MIMI_SAMPLE_RATE), "path": None}

    rows = [
        {"id": f"c{i}", "audio": cell(waves[i]), "sentence": words[i], "translation": t}
        for i, t in enumerate(["hallo", "ja", "halt", "los"])
    ]
    pq.write_table(pa.Table.from_pylist(rows[:2] + [dict(rows[2], translation="")]), covost / "test.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), covost / "train.parquet")
    return str(root / "libri"), str(tts / "meta.lst")


def test_generative_tasks_count_bad_input_per_reason_and_write_audio(trained, tmp_path):
    libri, meta = write_generative_sets(tmp_path)
    out = tmp_path / "eval"
    results = run_eval(
        EvalConfig(
            model_path=trained["run"],
            output_path=str(out),
            codec=CODEC,
            batch_size=8,
            tasks=(
                AsrTask("asr", libri, sampling=SHORT),
                AsrTask("asr_1shot", libri, num_shots=1, sampling=SHORT),
                TtsTask("tts", meta, sampling=SHORT),
                ContinuationTask("continuation", libri, prompt_seconds=0.16, sampling=SHORT),
                TranslationTask(
                    "covost2",
                    str(tmp_path / "covost" / "test.parquet"),
                    str(tmp_path / "covost" / "train.parquet"),
                    num_shots=1,
                    sampling=SHORT,
                ),
            ),
        )
    )
    bad_libri = {"missing_audio": 1, "unreadable_audio": 1, "empty_text": 1}
    for task in ("asr", "asr_1shot", "continuation"):
        assert results["tasks"][task]["skipped"] == bad_libri, task
    assert results["tasks"]["asr"]["wer"]["utterances"] == 2
    assert "19-198-0002" in " ".join(results["tasks"]["asr"]["skipped_examples"]["unreadable_audio"])
    assert results["tasks"]["tts"]["skipped"] == {"malformed_record": 1}
    assert "meta.lst:3" in results["tasks"]["tts"]["skipped_examples"]["malformed_record"][0]
    for name in ("asr/wer", "asr/mean_utterance_wer", "asr_1shot/wer", "tts/wer_x100", "tts/corpus_wer"):
        assert results["metrics"][name] >= 0, name
    items = [json.loads(line) for line in (out / "items" / "tts.jsonl").read_text().splitlines()]
    assert sorted(i["id"] for i in items) == ["u0", "u1", "u2"]
    for item in items:
        if item.get("wav"):
            wave, rate = sf.read(item["wav"])
            assert rate == MIMI_SAMPLE_RATE and wave.size > 0 and -1 <= item["speaker_similarity"] <= 1
    assert results["tasks"]["covost2"]["skipped"] == {"empty_text": 1} and results["tasks"]["covost2"]["items"] == 2
    assert results["metrics"]["covost2/bleu"] >= 0 and results["metrics"]["covost2/mean_sentence_bleu"] >= 0
    continuation = [json.loads(line) for line in (out / "items" / "continuation.jsonl").read_text().splitlines()]
    assert all(Path(i["wav"]).exists() for i in continuation if "skipped" not in i)
    for task, records in (("tts", items), ("continuation", continuation)):
        scored = [i["frame_valid"] for i in records if "skipped" not in i]
        assert scored and all(isinstance(v, bool) for v in scored), task
        assert results["metrics"][f"{task}/frame_valid_rate"] == pytest.approx(np.mean(scored)), task


# ---------------------------------------------------------------------------------------- resume
def test_killed_eval_resumes_without_recomputing_finished_tasks(trained, tmp_path):
    libri, _ = write_generative_sets(tmp_path)
    pairs = write_text_pairs(tmp_path / "pairs")
    out = tmp_path / "eval"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from helpers_eval import resume_eval_config
        from soda_jax.eval.step import run_eval
        run_eval(resume_eval_config({trained["run"]!r}, {str(out)!r}, {pairs!r}, {libri!r}))
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    finished = out / "tasks" / "twuggy.json"
    deadline = time.time() + KILL_TIMEOUT_S
    while not finished.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert finished.exists(), "the first task should have finished before the kill"
    assert not (out / "results.json").exists(), "killed before the end"
    before = (finished.read_bytes(), finished.stat().st_mtime_ns)

    config = resume_eval_config(trained["run"], str(out), pairs, libri)
    results = run_eval(config)
    assert (finished.read_bytes(), finished.stat().st_mtime_ns) == before  # read back, not recomputed
    assert results["metrics"]["twuggy/accuracy"] == 1.0 and "asr/wer" in results["metrics"]

    # Unfinished items: drop the task's summary and all but one item, mark that one; a re-run
    # keeps the marked record and recomputes only the rest.
    (out / "tasks" / "asr.json").unlink()
    items_path = out / "items" / "asr.jsonl"
    kept = json.loads(items_path.read_text().splitlines()[0])
    items_path.write_text(json.dumps(dict(kept, marker="from the first attempt")) + "\n")
    results = run_eval(config)
    again = {json.loads(line)["id"]: json.loads(line) for line in items_path.read_text().splitlines()}
    assert again[kept["id"]]["marker"] == "from the first attempt" and len(again) == 5  # 2 scored + 3 skipped
    assert results["tasks"]["asr"]["skipped"] == {"missing_audio": 1, "unreadable_audio": 1, "empty_text": 1}


# --------------------------------------------------------------------------------------- lm-eval
def test_lm_eval_runs_a_local_multiple_choice_task_offline(trained, ctx, tmp_path):
    from soda_jax.eval.lm_eval_adapter import MARKERS, SodaLM

    data = tmp_path / "mini_mc.jsonl"
    rows = [
        {"query": "the cat sat on the", "choices": ["mat", "dawn"], "gold": 0},
        {"query": "a dog ran in the", "choices": ["mat", "park"], "gold": 1},
        {"query": "birds sing at", "choices": ["dawn", "park"], "gold": 0},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mini_mc.yaml").write_text(
        textwrap.dedent(f"""
        task: mini_mc
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{query}}}}"
        doc_to_choice: choices
        doc_to_target: gold
        metric_list:
          - metric: acc
    """)
    )
    results = run_eval(
        EvalConfig(
            model_path=trained["run"],
            output_path=str(tmp_path / "eval"),
            codec=CODEC,
            batch_size=8,
            tasks=(LmEvalTask(tasks=("mini_mc",), include_path=str(tmp_path / "tasks"), wrap=MARKERS),),
        )
    )
    assert results["metrics"]["lm_eval/mini_mc/acc"] == 1.0

    lm = SodaLM(ctx, wrap=MARKERS)

    class Request:
        def __init__(self, *args):
            self.args = args

    (generated,) = lm.generate_until([Request("the cat sat on", {"until": ["\n"], "max_gen_toks": 8})])
    assert generated.strip() == "the mat"
    text = TRAINED_TEXTS[1]
    (rolling,) = lm.loglikelihood_rolling([Request(text)])
    ids = np.concatenate([lm.prefix, trained["vocab"].encode_text(text)])
    (direct,) = ctx.score([ids])
    assert rolling == pytest.approx(float(direct[1:].sum()), rel=1e-5)  # the text's tokens, not the marker's
    (with_context,) = lm.loglikelihood([Request("a dog ran in the", " park")])
    assert with_context[1] is True and with_context[0] > -1.0
