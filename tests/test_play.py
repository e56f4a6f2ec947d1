"""The dashboard's playground (/play) over real HTTP: a tiny model trained by the executor, uploads as
multipart forms, jobs polled until done; results are what ``soda generate`` writes, the model loads
once, jobs run one at a time, and bad input is refused with a message and leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np
import pytest
import requests
import soundfile as sf
from helpers_play import CONTEXT, SHOT_TRANSCRIPTS, shared_play_prefix

from soda_jax.cli import main as soda
from soda_jax.dashboard.play_inputs import MAX_REQUEST_BYTES, MAX_UPLOAD_BYTES
from soda_jax.dashboard.play_results import PLAY_DIR
from soda_jax.dashboard.server import BackgroundServer
from soda_jax.inference.prompts import TASK_DEFAULTS

JOB_TIMEOUT_S = 600
MAX_NEW = "24"
"""Three frames of audio: enough to decode, quick to generate."""
SAMPLES_PER_FRAME = 1920


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_play_prefix(tmp_path_factory)


@pytest.fixture(scope="module")
def base(built):
    with BackgroundServer(built.prefix) as url:
        yield url


def submit(base: str, fields: dict, files: dict | None = None) -> requests.Response:
    opened = {name: (os.path.basename(path), open(path, "rb")) for name, path in (files or {}).items()}
    try:
        return requests.post(f"{base}/api/play", data=fields, files=opened, timeout=120)
    finally:
        for _, f in opened.values():
            f.close()


def wait(base: str, job_id: str) -> dict:
    deadline = time.time() + JOB_TIMEOUT_S
    while time.time() < deadline:
        job = requests.get(f"{base}/api/play/job/{job_id}", timeout=30).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not finished after {JOB_TIMEOUT_S} s")


def run(base: str, fields: dict, files: dict | None = None) -> dict:
    answer = submit(base, fields, files)
    assert answer.status_code == 202, answer.text
    return wait(base, answer.json()["id"])


def record_of(built, job: dict) -> dict:
    assert job["state"] == "done", job
    with open(os.path.join(built.prefix, job["result"]["json"])) as f:
        return json.load(f)


def play_entries(built) -> list[str]:
    directory = os.path.join(built.prefix, PLAY_DIR)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_first_two_requests_load_the_model_once_and_run_in_turn(built, base):
    fields = {"task": "tts", "checkpoint": built.model_rel, "text": "hello world", "max_new_tokens": MAX_NEW}
    answers: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda s=seed: answers.append(submit(base, fields | {"seed": str(s)})))
        for seed in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    first, second = sorted((wait(base, a.json()["id"]) for a in answers), key=lambda j: j["submitted"])
    assert first["state"] == second["state"] == "done", (first, second)
    assert second["started"] >= first["finished"]  # one worker: the second waited its turn
    assert (first["loaded_model"], second["loaded_model"]) == (True, False)
    models = requests.get(f"{base}/api/play/models", timeout=30).json()
    assert models["loads"] == {os.path.join(built.prefix, built.model_rel): 1}
    assert {"value": built.model_rel, "kind": "training output"} in models["choices"]


def test_tts_writes_what_soda_generate_writes(built, base, tmp_path):
    job = run(
        base,
        {"task": "tts", "checkpoint": built.model_rel, "text": "hello world", "max_new_tokens": MAX_NEW, "seed": "3"},
    )
    record = record_of(built, job)
    assert job["loaded_model"] is False and job["result"]["wav"] == f"{PLAY_DIR}/{job['id']}/tts.wav"
    assert record["inputs"] == {"text": "hello world"} and record["seed"] == 3
    defaults = TASK_DEFAULTS["tts"]
    assert (record["sampling"]["temperature"], record["sampling"]["top_p"]) == (defaults.temperature, defaults.top_p)
    wave, rate = sf.read(record["output"])
    assert rate == 24_000 and record["frames"] > 0 and wave.shape == (record["frames"] * SAMPLES_PER_FRAME,)
    raw = requests.get(f"{base}/raw/{job['result']['wav']}", timeout=30)
    assert raw.status_code == 200 and raw.content[:4] == b"RIFF"

    # the same request through `soda generate`: the same prompt, sampling and tokens
    out = tmp_path / "cli"
    argv = [
        "generate",
        "tts",
        "--checkpoint",
        os.path.join(built.prefix, built.model_rel),
        "--out",
        str(out),
        "--text",
        "hello world",
        "--max-new-tokens",
        MAX_NEW,
        "--seed",
        "3",
    ]
    assert soda(argv) == 0
    cli = json.loads((out / "tts.json").read_text())
    assert set(cli) == set(record)
    for key in (
        "task",
        "checkpoint",
        "inputs",
        "prompt_ids",
        "sampling",
        "generated_ids",
        "finish_reason",
        "frames",
        "codec",
    ):
        assert cli[key] == record[key], key

    page = requests.get(f"{base}/play/results", timeout=30).text
    assert f'data-id="{job["id"]}"' in page and f"/raw/{job['result']['wav']}" in page


def test_asr_zero_and_n_shot_transcribe_an_upload(built, base):
    zero = run(
        base, {"task": "asr", "checkpoint": built.model_rel, "max_new_tokens": MAX_NEW}, {"audio": built.clips["short"]}
    )
    record = record_of(built, zero)
    assert record["task"] == "asr" and record["sampling"]["temperature"] == TASK_DEFAULTS["asr"].temperature
    assert record["inputs"]["audio"] == os.path.join(built.prefix, PLAY_DIR, zero["id"], "inputs", "audio.wav")
    with open(record["output"]) as f:
        assert f.read() == record["text"] + "\n" == zero["result"]["transcript"] + "\n"
    prompt = np.array(record["prompt_ids"])
    assert prompt.size == 4 + 8 * 5  # 0.4 s = 5 frames, between <bos><|audio_start|> and <|audio_end|><|text_start|>

    fields = {
        "task": "asr",
        "checkpoint": built.model_rel,
        "max_new_tokens": MAX_NEW,
        "shots": "1",
        "shot_set": built.shot_set_rel,
    }
    nshot = record_of(built, run(base, fields, {"audio": built.clips["short"]}))
    assert nshot["task"] == "asr_nshot" and nshot["sampling"]["temperature"] == TASK_DEFAULTS["asr_nshot"].temperature
    [(shot_audio, shot_text)] = nshot["inputs"]["shots"]
    item = os.path.basename(shot_audio).removesuffix(".flac")
    assert (
        shot_audio.startswith(os.path.join(built.prefix, built.shot_set_rel))
        and shot_text == SHOT_TRANSCRIPTS[item].lower()
    )
    assert (
        len(nshot["prompt_ids"]) > len(record["prompt_ids"])
        and nshot["prompt_ids"][-len(prompt) :] == record["prompt_ids"]
    )


def test_voice_tts_and_continuation(built, base):
    fields = {
        "task": "voice_tts",
        "checkpoint": built.model_rel,
        "text": "good night",
        "ref_text": "a low tone",
        "max_new_tokens": MAX_NEW,
    }
    voice = record_of(built, run(base, fields, {"ref_audio": built.clips["flac"]}))
    assert (
        voice["inputs"]["ref_audio"].endswith("/inputs/ref_audio.flac") and voice["inputs"]["ref_text"] == "a low tone"
    )
    assert voice["frames"] > 0 and os.path.isfile(voice["output"])
    fields = {"task": "continuation", "checkpoint": built.model_rel, "max_new_tokens": MAX_NEW, "prompt_seconds": "0.2"}
    continued = record_of(built, run(base, fields, {"audio": built.clips["short"]}))
    assert continued["task"] == "continuation" and len(continued["prompt_ids"]) == 2 + 8 * 3  # 0.2 s kept: 3 frames
    assert continued["sampling"]["temperature"] == TASK_DEFAULTS["continuation"].temperature


def raw_post_headers(base: str, length: int) -> tuple[int, bytes]:
    """Headers announcing ``length`` bytes of form, and no body: refused before anything is read."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"POST /api/play HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), body


def test_bad_input_is_refused_with_a_message_and_changes_nothing(built, base, tmp_path):
    before = play_entries(built)
    results_before = requests.get(f"{base}/play/results", timeout=30).text
    asr = {"task": "asr", "checkpoint": built.model_rel}
    tts = {"task": "tts", "checkpoint": built.model_rel, "text": "hello"}
    huge = tmp_path / "huge.wav"
    huge.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")  # an HF-looking directory outside the prefix
    cases = [
        (asr, {"audio": built.clips["text"]}, 400, ["notes.wav", "not a WAV, FLAC, MP3 or OGG file"]),
        (asr, {"audio": built.clips["empty"]}, 400, ["empty.wav", "empty"]),
        (asr, {"audio": built.clips["silent_header"]}, 400, ["nothing.wav", "no samples"]),
        (asr, {"audio": str(huge)}, 413, ["huge.wav", f"{MAX_UPLOAD_BYTES:,}", "MAX_UPLOAD_BYTES"]),
        (asr, {}, 400, ["audio: no file uploaded"]),
        (tts | {"text": "   "}, {}, 400, ["text: empty"]),
        (tts | {"checkpoint": str(outside)}, {}, 400, [str(outside), "outside"]),
        (tts | {"checkpoint": "../../.."}, {}, 400, ["outside"]),
        (tts | {"checkpoint": "/etc"}, {}, 400, ["outside"]),
        (tts | {"checkpoint": built.shot_set_rel}, {}, 400, ["neither a training output", "HF directory"]),
        (tts | {"checkpoint": "no/such/run"}, {}, 400, ["no/such/run"]),
        (tts | {"task": "sing"}, {}, 400, ["task: 'sing'"]),
        (tts | {"temperature": "hot"}, {}, 400, ["temperature: 'hot' is not a number"]),
        (tts | {"top_p": "1.5"}, {}, 400, ["top_p must be in (0, 1]"]),
        (tts | {"max_new_tokens": "0"}, {}, 400, ["max_new_tokens must be >= 1"]),
        (asr | {"shots": "99"}, {"audio": built.clips["short"]}, 400, ["shots: 99"]),
        (
            asr | {"shots": "1", "shot_set": "/etc"},
            {"audio": built.clips["short"]},
            400,
            ["shot set '/etc' is outside"],
        ),
        (
            asr | {"shots": "3", "shot_set": built.shot_set_rel, "seed": "x"},
            {"audio": built.clips["short"]},
            400,
            ["seed: 'x'"],
        ),
    ]
    for fields, files, status, words in cases:
        answer = submit(base, fields, files)
        assert answer.status_code == status, (fields, files, answer.text)
        message = answer.json()["error"]
        for word in words:
            assert word in message, (fields, files, message)

    status, body = raw_post_headers(base, MAX_REQUEST_BYTES + 1)
    assert status == 413 and b"over the limit" in body
    assert requests.get(f"{base}/api/play/job/nope", timeout=30).status_code == 404

    # too long for the model's context: only known once the model is loaded; the job fails, nothing stays
    job = run(base, asr, {"audio": built.clips["long"]})
    assert job["state"] == "failed" and f"context is {CONTEXT}" in job["error"] and "audio.wav" in job["error"], job
    nshot = run(base, asr | {"shots": "5", "shot_set": built.shot_set_rel}, {"audio": built.clips["short"]})
    assert nshot["state"] == "failed" and "3 usable utterances, 5 shots asked" in nshot["error"], nshot

    assert play_entries(built) == before
    assert requests.get(f"{base}/play/results", timeout=30).text == results_before
