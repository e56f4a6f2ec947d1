"""Where SODA's evaluation sets and scorer weights are, as settings, and the evaluation steps over them.

Local copies (nothing here downloads) under ``$SODA_EVAL_ROOT``, each overridable by its own
variable::

    {root}/sWUGGY/            $SODA_EVAL_SWUGGY       sWUGGY table (parquet/arrow; also tWUGGY's words)
    {root}/sBLIMP/            $SODA_EVAL_SBLIMP       sBLIMP table (also tBLIMP's transcriptions)
    {root}/SALMon/            $SODA_EVAL_SALMON       SALMon table (``all`` config)
    {root}/LibriSpeech/       $SODA_EVAL_LIBRISPEECH  test-clean/ (items) and dev-clean/ (N-shot examples)
    {root}/seed-tts-eval/     $SODA_EVAL_SEED_TTS     en/meta.lst, prompt-wavs/, ...
    {root}/lm-eval-tasks/     $SODA_EVAL_LM_EVAL      lm-eval task YAMLs (a ``hellaswag`` task over local jsonl)
    {root}/whisper-large-v3/  $SODA_EVAL_WHISPER      Whisper-large-v3 (transformers): SODA's TTS WER scorer
    {root}/wavlm-large-sv/    $SODA_EVAL_WAVLM        a WavLM x-vector model (transformers): speaker similarity
    {root}/mimi/              $SODA_EVAL_MIMI         Kyutai's Mimi weights (to encode and decode audio)

A set that is not there is **skipped by name**: its tasks are left out, the reason is logged, and
every evaluation step records it (its description; `SodaEvalPlan.missing`). Scorers: Whisper and
WavLM when their weights are local, the offline defaults (PocketSphinx, resemblyzer) otherwise,
and the plan says which. A remote root (``gs://...``) is not checked when the experiment is built;
the evaluation step reads it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig
from soda_jax.contracts import HF_CONFIG_FILE
from soda_jax.eval.tasks import SODA_ASR_SHOTS, Scorers, soda_tasks
from soda_jax.execution import ExecutorStep
from soda_jax.recipes.defaults import default_eval

logger = logging.getLogger(__name__)

SODA_EVAL_ROOT_ENV = "SODA_EVAL_ROOT"
"""Environment variable naming the directory (or bucket URL) holding local copies of SODA's sets."""
ENV_PREFIX = "SODA_EVAL_"
"""``{ENV_PREFIX}{FIELD}`` (upper case) overrides one set's path."""
DEFAULT_SUBDIRS = {
    "swuggy": "sWUGGY",
    "sblimp": "sBLIMP",
    "salmon": "SALMon",
    "librispeech": "LibriSpeech",
    "seed_tts": "seed-tts-eval",
    "lm_eval": "lm-eval-tasks",
    "whisper": "whisper-large-v3",
    "wavlm": "wavlm-large-sv",
    "mimi": "mimi",
}
"""Where each set is looked for under ``$SODA_EVAL_ROOT``."""
SEED_TTS_META = "en/meta.lst"
"""The English list of the Seed-TTS eval set."""
LIBRISPEECH_TEST, LIBRISPEECH_SHOTS = "test-clean", "dev-clean"
HELLASWAG_YAML_PREFIX = "hellaswag"
"""An lm-eval task directory serves HellaSwag when it holds a ``hellaswag*.yaml``."""
SODA_CAPABILITY_METRICS = (
    "swuggy/accuracy",
    "twuggy/accuracy",
    "sblimp/accuracy",
    "tblimp/accuracy",
    "salmon/accuracy",
    "librispeech/wer",
    f"librispeech_{SODA_ASR_SHOTS}shot/wer",
    "seed_tts/wer_x100",
    "seed_tts/speaker_similarity",
    "lm_eval/hellaswag/acc_norm",
)
"""What the analyses fit against the fitted loss: SODA's benchmark numbers (`soda_jax.eval.report.SODA_REPORTED`
names eight of them), whichever sets are present."""
EVAL_TPU = "v5p-8"
"""Where an evaluation step runs on a cluster (every SODA size fits one v5p-8 for inference)."""


@dataclasses.dataclass(frozen=True)
class SodaEvalRoots:
    """Paths of SODA's evaluation sets and scorer weights (None: not configured)."""

    swuggy: str | None = None
    """sWUGGY table (parquet/arrow file or directory, or a ``save_to_disk`` export)."""
    sblimp: str | None = None
    """sBLIMP table."""
    salmon: str | None = None
    """SALMon table."""
    librispeech: str | None = None
    """LibriSpeech root holding ``test-clean/`` and ``dev-clean/``."""
    seed_tts: str | None = None
    """Seed-TTS eval root holding ``en/meta.lst``."""
    lm_eval: str | None = None
    """Directory of lm-eval task YAMLs (``include_path``), HellaSwag's among them."""
    whisper: str | None = None
    """Whisper-large-v3 weights (a transformers directory)."""
    wavlm: str | None = None
    """A WavLM x-vector speaker-verification model (a transformers directory)."""
    mimi: str | None = None
    """Mimi weights (a transformers ``MimiModel`` directory); None: the codec the model's data recorded."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SodaEvalRoots:
        """Each field from ``$SODA_EVAL_{FIELD}``, else ``$SODA_EVAL_ROOT/{DEFAULT_SUBDIRS[field]}``, else None."""
        environ = os.environ if environ is None else environ
        root = environ.get(SODA_EVAL_ROOT_ENV)
        values = {}
        for field in dataclasses.fields(cls):
            explicit = environ.get(f"{ENV_PREFIX}{field.name.upper()}")
            values[field.name] = explicit or (fileio.join(root, DEFAULT_SUBDIRS[field.name]) if root else None)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class SodaEvalPlan:
    """SODA's tasks over the sets that are there, and what was left out."""

    tasks: tuple
    """Task configs (`soda_jax.eval.tasks.soda_tasks`)."""
    missing: dict[str, str]
    """Task name -> why it is not run (a set not configured, or not at its path)."""
    scorers: Scorers
    """Who scores generated speech."""
    scorer_notes: tuple[str, ...]
    """Which scorers and codec, and why those."""
    codec: CodecConfig | None
    """The Mimi to use (None: the one the model's data recorded)."""

    def describe(self) -> str:
        lines = [f"SODA evaluation: {len(self.tasks)} tasks ({', '.join(t.name for t in self.tasks) or 'none'})"]
        lines += [f"  not run: {name}: {why}" for name, why in self.missing.items()]
        lines += [f"  scorer: {note}" for note in self.scorer_notes]
        return "\n".join(lines)


def _missing(path: str | None, name: str, *required: str) -> str | None:
    """Why ``path`` (with ``required`` inside it) cannot serve, or None when it can (or is remote)."""
    variable = f"${ENV_PREFIX}{name.upper()} / ${SODA_EVAL_ROOT_ENV}"
    if path is None:
        return f"not configured ({variable} unset)"
    if not fileio.is_local(path):
        return None  # read by the evaluation step; not checked here
    for part in required or ("",):
        target = fileio.join(path, part) if part else path
        if not fileio.exists(target):
            return f"{target} does not exist ({variable})"
    return None


def _has_hellaswag(path: str) -> bool:
    if not fileio.is_local(path):
        return True
    return any(name.startswith(HELLASWAG_YAML_PREFIX) and name.endswith((".yaml", ".yml")) for name in os.listdir(path))


def soda_eval_plan(roots: SodaEvalRoots | None = None) -> SodaEvalPlan:
    """SODA's benchmark set over ``roots`` (default: `SodaEvalRoots.from_env`); every set not there is
    named in ``missing`` and logged."""
    roots = roots or SodaEvalRoots.from_env()
    missing: dict[str, str] = {}

    def present(task_names: tuple[str, ...], path: str | None, field: str, *required: str) -> str | None:
        why = _missing(path, field, *required)
        for name in task_names:
            if why:
                missing[name] = why
        return None if why else path

    swuggy = present(("swuggy", "twuggy"), roots.swuggy, "swuggy")
    sblimp = present(("sblimp", "tblimp"), roots.sblimp, "sblimp")
    salmon = present(("salmon",), roots.salmon, "salmon")
    librispeech = present(("librispeech",), roots.librispeech, "librispeech", LIBRISPEECH_TEST)
    seed_tts = present(("seed_tts",), roots.seed_tts, "seed_tts", SEED_TTS_META)
    lm_eval = present(("lm_eval",), roots.lm_eval, "lm_eval")
    if lm_eval is not None and not _has_hellaswag(lm_eval):
        missing["lm_eval"] = f"{lm_eval} holds no {HELLASWAG_YAML_PREFIX}*.yaml task"
        lm_eval = None
    shots_missing = None if librispeech is None else _missing(librispeech, "librispeech", LIBRISPEECH_SHOTS)
    scorers, notes = _scorers(roots)
    tasks = soda_tasks(
        swuggy=swuggy,
        sblimp=sblimp,
        salmon=salmon,
        librispeech=librispeech,
        seed_tts_meta=None if seed_tts is None else fileio.join(seed_tts, SEED_TTS_META),
        lm_eval_include=lm_eval,
        scorers=scorers,
    )
    shots_task = f"librispeech_{SODA_ASR_SHOTS}shot"
    if librispeech is None:
        missing[shots_task] = missing["librispeech"]
    elif shots_missing:
        missing[shots_task] = shots_missing
        tasks = tuple(t for t in tasks if t.name != shots_task)
    for name, why in missing.items():
        logger.warning("SODA evaluation: %s not run: %s", name, why)
    mimi_missing = _missing(roots.mimi, "mimi", HF_CONFIG_FILE)
    codec = None if mimi_missing else CodecConfig(pretrained=roots.mimi)
    notes += (
        f"codec: Mimi from {roots.mimi}"
        if codec
        else f"codec: the one the model's data recorded (local Mimi: {mimi_missing})",
    )
    return SodaEvalPlan(tasks=tasks, missing=missing, scorers=scorers, scorer_notes=notes, codec=codec)


def _scorers(roots: SodaEvalRoots) -> tuple[Scorers, tuple[str, ...]]:
    """SODA's scorers where their weights are local, the offline defaults otherwise (and why)."""
    defaults = Scorers()
    whisper_missing = _missing(roots.whisper, "whisper", HF_CONFIG_FILE)
    wavlm_missing = _missing(roots.wavlm, "wavlm", HF_CONFIG_FILE)
    scorers = Scorers(
        asr="whisper" if not whisper_missing else defaults.asr,
        asr_model=None if whisper_missing else roots.whisper,
        speaker="wavlm" if not wavlm_missing else defaults.speaker,
        speaker_model=None if wavlm_missing else roots.wavlm,
    )
    notes = (
        f"ASR: Whisper from {roots.whisper} (SODA's)"
        if not whisper_missing
        else f"ASR: {defaults.asr} (offline default; SODA's Whisper-large-v3: {whisper_missing})",
        f"speaker: WavLM from {roots.wavlm} (SODA used a WavLM-large verification model)"
        if not wavlm_missing
        else f"speaker: {defaults.speaker} (offline default; WavLM: {wavlm_missing})",
    )
    return scorers, notes


def soda_eval_step(
    name: str, model, plan: SodaEvalPlan, *, tpu: str | None = EVAL_TPU, batch_size: int = 32
) -> ExecutorStep:
    """``evaluation/{name}``: ``plan``'s tasks on ``model`` (a `default_train` step, or a versioned
    path); the sets not run are named in the step's description."""
    step = default_eval(name, model, plan.tasks, codec=plan.codec, batch_size=batch_size, tpu=tpu)
    if plan.missing:
        step = dataclasses.replace(step, description=f"{step.description}; not run: {', '.join(sorted(plan.missing))}")
    return step
