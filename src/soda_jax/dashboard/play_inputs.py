"""A playground request read from its form and checked before anything is queued or written.

What can be checked without the model is checked here, and a failure is a `PlayInputError` whose
message names the field (an HTTP 400, or 413 over the size limit): the task, the checkpoint
(confined, `play_models`), text that is empty or too long, an upload that is missing, empty, over
`MAX_UPLOAD_BYTES` or not decodable audio, sampling values that are not numbers or out of range,
and the shot set. A prompt longer than the model's context is only known once the model is loaded:
that job fails with the same kind of message, and leaves nothing behind either.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import soundfile as sf

from soda_jax.audio.audio_io import AudioReadError, decode_native
from soda_jax.dashboard.play_models import ModelChoice
from soda_jax.dashboard.play_shots import MAX_SHOTS
from soda_jax.inference.prompts import TASK_DEFAULTS
from soda_jax.inference.requests import DEFAULT_PROMPT_SECONDS
from soda_jax.inference.sampling import SamplingParams

PLAY_TASKS = {
    "tts": "text to speech",
    "voice_tts": "text to speech in the voice of a reference clip",
    "asr": "speech to text (0 or N shots)",
    "continuation": "continue a clip",
}
"""The playground's tasks (`TASK_DEFAULTS` keys) and how the page names them; ASR with shots runs
as ``asr_nshot``."""
TASK_FIELDS = {
    "tts": ("text",),
    "voice_tts": ("text", "ref_text", "ref_audio"),
    "asr": ("audio",),
    "continuation": ("audio",),
}
"""The inputs each task needs (form field names, as `soda_jax.inference.requests.run_task` names them)."""
AUDIO_FIELDS = ("audio", "ref_audio")
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
"""Largest audio file accepted (about 90 s of 16-bit 48 kHz stereo WAV, far more than a context holds)."""
MAX_REQUEST_BYTES = len(AUDIO_FIELDS) * MAX_UPLOAD_BYTES + 1024 * 1024
"""A request body larger than this is refused before it is parsed."""
MAX_TEXT_CHARS = 2000
"""Longest text field accepted."""
MAX_PROMPT_SECONDS = 60.0
"""Longest continuation prompt that may be asked for (the context limits it further)."""
SAMPLING_FIELDS: dict[str, type] = {"temperature": float, "top_p": float, "top_k": int, "max_new_tokens": int}
"""Sampling overrides the form may send; an empty field keeps the task's `TASK_DEFAULTS` value."""
SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "MP3": ".mp3", "OGG": ".ogg"}
"""Stored file suffix by the format soundfile detects (the upload's own name is not trusted)."""


class PlayInputError(ValueError):
    """Input the playground refuses; the message names the field."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Upload:
    field: str
    filename: str
    """The name the browser sent (shown only; never used as a path)."""
    data: bytes
    suffix: str
    """``.wav``, ``.flac``, ...: from the decoded format."""
    seconds: float


@dataclasses.dataclass(frozen=True)
class PlayRequest:
    task: str
    """A `TASK_DEFAULTS` key: a `PLAY_TASKS` task, or ``asr_nshot`` for ASR with shots."""
    model: ModelChoice
    texts: dict[str, str]
    """``text`` and ``ref_text`` as the task needs them."""
    uploads: tuple[Upload, ...]
    sampling: dict[str, Any]
    """Overrides of the task's defaults (`prompts.sampling_params`), the seed included."""
    shots: int = 0
    shot_set: str | None = None
    """The split directory the shots come from (``shots > 0``)."""
    prompt_seconds: float = DEFAULT_PROMPT_SECONDS


def number(form: dict[str, Any], name: str, kind: type, default=None):
    """The form field ``name`` as ``kind`` (``default`` when empty)."""
    raw = str(form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise PlayInputError(f"{name}: {raw[:40]!r} is not {'an integer' if kind is int else 'a number'}") from None


def read_upload(name: str, upload: Any) -> Upload:
    """An uploaded audio file, decoded once to prove it is audio."""
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
        raise PlayInputError(f"{name}: no file uploaded")
    size = upload.size if upload.size is not None else 0
    if size > MAX_UPLOAD_BYTES:
        raise PlayInputError(
            f"{name} ({upload.filename}): {size:,} bytes is over the upload limit of {MAX_UPLOAD_BYTES:,} "
            "(MAX_UPLOAD_BYTES)",
            status=413,
        )
    upload.file.seek(0)
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise PlayInputError(
            f"{name} ({upload.filename}): over the upload limit of {MAX_UPLOAD_BYTES:,} bytes (MAX_UPLOAD_BYTES)",
            status=413,
        )
    if not data:
        raise PlayInputError(f"{name} ({upload.filename}): the file is empty")
    try:
        wave, rate = decode_native(data, f"{name} ({upload.filename})")
        fmt = sf.info(io.BytesIO(data)).format
    except AudioReadError as error:
        raise PlayInputError(f"{error}: not a WAV, FLAC, MP3 or OGG file") from None
    return Upload(name, str(upload.filename), data, SUFFIXES.get(fmt, ".audio"), wave.shape[0] / rate)


def read_request(
    form: dict[str, Any],
    resolve_model: Callable[[str], ModelChoice],
    resolve_shot_set: Callable[[str], str],
) -> PlayRequest:
    """The request a submitted form asks for; `PlayInputError` naming the first bad field."""
    task = str(form.get("task") or "")
    if task not in PLAY_TASKS:
        raise PlayInputError(f"task: {task!r} is not one of {', '.join(PLAY_TASKS)}")
    try:
        model = resolve_model(str(form.get("checkpoint") or ""))
    except ValueError as error:
        raise PlayInputError(str(error)) from None
    texts: dict[str, str] = {}
    for name in ("text", "ref_text"):
        if name not in TASK_FIELDS[task]:
            continue
        value = str(form.get(name) or "")
        if not value.strip():
            raise PlayInputError(f"{name}: empty; {PLAY_TASKS[task]} needs it")
        if len(value) > MAX_TEXT_CHARS:
            raise PlayInputError(f"{name}: {len(value):,} characters, more than {MAX_TEXT_CHARS:,} (MAX_TEXT_CHARS)")
        texts[name] = value
    uploads = tuple(read_upload(name, form.get(name)) for name in AUDIO_FIELDS if name in TASK_FIELDS[task])

    shots = number(form, "shots", int, 0) if task == "asr" else 0
    if not 0 <= shots <= MAX_SHOTS:
        raise PlayInputError(f"shots: {shots} is not between 0 and {MAX_SHOTS} (MAX_SHOTS)")
    seed = number(form, "seed", int, 0)
    shot_set = None
    if shots:
        task = "asr_nshot"
        try:
            shot_set = resolve_shot_set(str(form.get("shot_set") or ""))
        except ValueError as error:
            raise PlayInputError(str(error)) from None
    prompt_seconds = number(form, "prompt_seconds", float, DEFAULT_PROMPT_SECONDS)
    if not 0 < prompt_seconds <= MAX_PROMPT_SECONDS:
        raise PlayInputError(
            f"prompt_seconds: {prompt_seconds} is not in (0, {MAX_PROMPT_SECONDS:g}] (MAX_PROMPT_SECONDS)"
        )

    sampling = {
        name: value for name, kind in SAMPLING_FIELDS.items() if (value := number(form, name, kind)) is not None
    }
    sampling["seed"] = seed
    try:
        SamplingParams(**sampling)  # the ranges SamplingParams enforces, before queueing
    except ValueError as error:
        raise PlayInputError(f"sampling: {error}") from None
    return PlayRequest(task, model, texts, uploads, sampling, shots, shot_set, prompt_seconds)


def task_defaults_json() -> dict[str, dict[str, Any]]:
    """`TASK_DEFAULTS`' sampling values for the page (it fills the fields when the task changes)."""
    return {
        task: {
            "temperature": d.temperature,
            "top_p": d.top_p,
            "top_k": d.top_k,
            "max_new_tokens": d.max_new_tokens,
            "output": d.output,
        }
        for task, d in TASK_DEFAULTS.items()
    }
