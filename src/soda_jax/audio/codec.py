"""Mimi as a codec: waveforms -> codes ``[K, frames]`` -> 24 kHz waveforms (transformers' MimiModel).

Padding rule (what makes batched encoding equal one-at-a-time encoding, transformers issues
35166 / 43377): every waveform is right-padded with zeros to a whole number of frames
(1920 samples at 24 kHz / 12.5 Hz), so a recording of ``n`` samples gives exactly
``ceil(n / 1920)`` frames: 12.5 frames = 100 tokens (8 codebooks) per second, the last partial
frame rounded up. A batch is then right-padded to its longest member and each item's frames past
its own length are dropped. Mimi's convolutions and transformer are causal, so padding on the right
never changes an earlier frame; padding only to the batch maximum (not to a whole frame) is what
made transformers' batched output differ in the last frame.

Long recordings are encoded in chunks with Mimi's streaming state (convolution padding cache plus a
sliding-window KV cache), so memory is bounded by the chunk length and the codes are identical to a
single full-length pass.

Two backends run the same Mimi with the same rules: ``"torch"`` (transformers' MimiModel, the
reference) and ``"jax"`` (`soda_jax.audio.mimi_jax`, flax, jit-compiled and sharded over a
data-parallel mesh). A JAX codec built from the same weights gives the same codes (docs/audio.md).
The torch backend runs on a GPU when given ``device="cuda"`` (`torch_device` chooses). On
accelerators, ``matmul_precision`` sets how float32 matmuls and convolutions run (`MATMUL_PRECISIONS`):
"highest" (the default) computes them in full float32 as a CPU does, so the codes match the CPU
reference; lower settings are faster and may change codes.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import numpy as np

from soda_jax import fileio
from soda_jax.audio.precision import DEFAULT_MATMUL_PRECISION, MATMUL_PRECISIONS
from soda_jax.audio.vocab import MIMI_CODEBOOKS, codebooks_for
from soda_jax.contracts import HF_CONFIG_FILE

if TYPE_CHECKING:  # imported where a codec is built or run: step configs need only `CodecConfig`
    import torch
    from transformers import MimiConfig, MimiModel

    from soda_jax.audio.mimi_jax.model import Mimi

_MODEL_BUILD_LOCK = threading.Lock()
"""Held while a torch Mimi is built: a random one draws from torch's process-wide RNG, a loaded one is
made under transformers' process-wide meta-device context; threads building at once would share either."""

logger = logging.getLogger(__name__)

CODEC_NAME = "mimi"
DEFAULT_CHUNK_SECONDS = 30.0
"""Encode long inputs in pieces of this length (memory ~ batch x chunk, not batch x duration)."""
RANDOM_SIZES = ("tiny", "full")
BACKENDS = ("torch", "jax")
DEFAULT_BACKEND = "torch"
"""The backend of `CodecConfig`-built codecs unless a step chooses one (docs/audio.md: speeds)."""


def tiny_mimi_config(num_quantizers: int = MIMI_CODEBOOKS) -> MimiConfig:
    """A 0.5M-parameter Mimi with the real sample rate, frame rate and codebook shapes (~10 ms/audio-s).

    ``upsample_groups`` must equal ``hidden_size`` (the depthwise upsampler convolves per channel).
    """
    from transformers import MimiConfig

    hidden = 64
    return MimiConfig(
        hidden_size=hidden,
        num_filters=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=128,
        codebook_dim=32,
        vector_quantization_hidden_dimension=32,
        num_quantizers=num_quantizers,
        upsample_groups=hidden,
    )


def randomize_codebooks(model: MimiModel, generator: torch.Generator) -> None:
    """Give every codebook random centroids so a random-init Mimi emits varied codes.

    A fresh MimiModel has zero ``embed_sum`` buffers, so every distance ties and every code is 0.
    The centroid is ``embed_sum / cluster_usage``; we set usage to 1 and reset the cached ``_embed``
    (computed lazily on first use and never invalidated by transformers).
    """
    import torch

    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "embed_sum") and hasattr(module, "cluster_usage"):
                module.embed_sum.copy_(torch.randn(module.embed_sum.shape, generator=generator))
                module.cluster_usage.fill_(1.0)
                module._embed = None


CODEBOOK_INITS = ("normal", "frames")
"""How `MimiCodec.random` draws its centroids: "normal" (standard-normal, `randomize_codebooks`: the
default, and the codes of every random-codec output made so far) or "frames" (`codebooks_from_frames`:
k-means' initialisation, each codebook's centroids are the latents it sees at frames sampled from
`calibration_babble`, so the centroids lie where the latents are; docs/audio.md)."""
DEFAULT_CODEBOOK_INIT = "normal"
"""The init of every random codec unless one is chosen (its weights name has no init suffix)."""
CALIBRATION_SECONDS = 200.0
"""Babble `codebooks_from_frames` encodes: 2,500 frames, more than a codebook's 2,048 centroids."""
CALIBRATION_PIECE_SECONDS = 10.0
"""Length of each babble recording encoded (whole frames, within the encoder's attention window)."""
FRAME_JITTER = 0.1
"""Noise added to each sampled centroid, in units of the latents' per-dimension spread: a frame sampled
twice gives two centroids, not two tied ones."""
BABBLE_SEGMENT_SECONDS = (0.05, 0.4)
"""Range of the length of a babble segment (a vowel-like, a fricative-like or a silent stretch)."""
BABBLE_KIND_WEIGHTS = (0.6, 0.25, 0.15)
"""Chance of a segment being voiced (harmonics), noise or silence."""
BABBLE_F0_HZ = (80.0, 280.0)
"""Range of a voiced segment's starting pitch (it glides by up to `BABBLE_F0_GLIDE` over the segment)."""
BABBLE_F0_GLIDE = 0.2
"""Largest relative pitch change over a voiced segment."""
BABBLE_HARMONICS = 30
"""Harmonics of a voiced segment (amplitude 1/k), those below the Nyquist frequency."""
BABBLE_FORMANTS_HZ = ((250.0, 900.0), (800.0, 2500.0), (2000.0, 4000.0))
"""Ranges of the three spectral peaks (formants) that shape every segment."""
BABBLE_FORMANT_WIDTH_HZ = (80.0, 300.0)
"""Range of a formant's width (the standard deviation of its Gaussian peak)."""
BABBLE_PEAK = (0.02, 0.3)
"""Range of a segment's peak amplitude (loud and quiet stretches, as in speech)."""


def calibration_babble(seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """Seeded speech-like sound made in numpy (no synthesiser): segments that are voiced (a gliding
    harmonic series), noise or silence, each shaped by three random formant peaks, at random loudness."""
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    total = 0
    while total < seconds * sample_rate:
        n = int(rng.uniform(*BABBLE_SEGMENT_SECONDS) * sample_rate)
        kind = rng.choice(len(BABBLE_KIND_WEIGHTS), p=BABBLE_KIND_WEIGHTS)
        if kind == 0:
            glide = 1 + rng.uniform(-BABBLE_F0_GLIDE, BABBLE_F0_GLIDE) * np.linspace(0.0, 1.0, n)
            f0 = rng.uniform(*BABBLE_F0_HZ) * glide
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            ks = [k for k in range(1, BABBLE_HARMONICS + 1) if k * f0.max() < sample_rate / 2]
            source = sum(np.sin(k * phase) / k for k in ks)
        elif kind == 1:
            source = rng.standard_normal(n)
        else:
            source = np.zeros(n)
        freqs = np.fft.rfftfreq(n, 1 / sample_rate)
        formants = [(rng.uniform(*band), rng.uniform(*BABBLE_FORMANT_WIDTH_HZ)) for band in BABBLE_FORMANTS_HZ]
        envelope = sum(np.exp(-0.5 * ((freqs - f) / width) ** 2) for f, width in formants)
        shaped = np.fft.irfft(np.fft.rfft(source) * envelope, n)
        pieces.append(shaped * rng.uniform(*BABBLE_PEAK) / max(float(np.abs(shaped).max()), 1e-9))
        total += n
    return np.concatenate(pieces)[: round(seconds * sample_rate)].astype(np.float32)


def quantizer_inputs(model: MimiModel, audio: torch.Tensor) -> torch.Tensor:
    """``[batch, samples]`` float32 audio of whole frames -> the latents Mimi's quantizer sees,
    ``[batch, frames, hidden_size]`` (the steps of transformers' ``MimiModel._encode_frame`` before
    ``quantizer.encode``, in one pass)."""
    embeddings = model.encoder(audio[:, None])
    hidden = model.encoder_transformer(embeddings.transpose(1, 2), use_cache=False, return_dict=True)
    return model.downsample(hidden.last_hidden_state.transpose(1, 2)).transpose(1, 2)


def set_codebooks(
    model: MimiModel,
    latents: torch.Tensor,
    centroids_for: Callable[[torch.Tensor, int], torch.Tensor],
    num_codebooks: int | None = None,
) -> None:
    """Give the first ``num_codebooks`` codebooks (default all) the centroids ``centroids_for(inputs,
    codebook_size)`` picks from the inputs each layer sees when ``latents`` (``[frames, hidden]``, the
    quantizer's input) are encoded: each residual quantizer (the semantic one, then the acoustic one)
    projects them with its own ``input_proj``; each layer passes on the residual to the next, as
    encoding does. The centroid is ``embed_sum / cluster_usage``: usage is set to 1 and the cached
    ``_embed`` reset (transformers never invalidates it)."""
    import torch

    remaining = sum(len(rvq.layers) for rvq in _quantizers(model)) if num_codebooks is None else num_codebooks
    with torch.no_grad():
        for rvq in _quantizers(model):
            residual = latents if rvq.input_proj is None else rvq.input_proj(latents.T[None])[0].T
            for layer in rvq.layers[: max(remaining, 0)]:
                book = layer.codebook
                centroids = centroids_for(residual, book.codebook_size)
                book.embed_sum.copy_(centroids)
                book.cluster_usage.fill_(1.0)
                book._embed = None
                residual = residual - centroids[torch.cdist(residual, centroids).argmin(dim=-1)]
            remaining -= len(rvq.layers)


def _quantizers(model: MimiModel) -> tuple:
    return model.quantizer.semantic_residual_vector_quantizer, model.quantizer.acoustic_residual_vector_quantizer


def codebooks_from_frames(model: MimiModel, generator: torch.Generator, seed: int) -> None:
    """k-means' initialisation of every codebook: centroids = latents of sampled babble frames.

    The babble (`calibration_babble`, seeded by ``seed``) is encoded to the quantizer's input; each
    residual quantizer (the semantic one, then the acoustic one) projects it with its own
    ``input_proj``, and layer by layer takes ``codebook_size`` frames of its input at random (with a
    little `FRAME_JITTER`) as centroids, then passes on the residual to the next layer, as encoding does.
    """
    import torch

    rate = int(model.config.sampling_rate)
    pieces = round(CALIBRATION_SECONDS / CALIBRATION_PIECE_SECONDS)

    def sampled_frames(inputs: torch.Tensor, size: int) -> torch.Tensor:
        picks = torch.randint(len(inputs), (size,), generator=generator)
        noise = torch.randn((size, inputs.shape[1]), generator=generator)
        return inputs[picks] + FRAME_JITTER * inputs.std(dim=0) * noise

    with torch.no_grad():
        model.eval()
        babble = [calibration_babble(seed * pieces + i, CALIBRATION_PIECE_SECONDS, rate) for i in range(pieces)]
        latents = torch.cat([quantizer_inputs(model, torch.from_numpy(wave)[None])[0] for wave in babble])
    set_codebooks(model, latents, sampled_frames)


@dataclass(frozen=True)
class CodecConfig:
    """Which Mimi to build, as plain data (for step configs)."""

    pretrained: str | None = None
    """Local directory or hub id (``kyutai/mimi``) with Mimi weights; None builds a random Mimi."""
    random_size: str = "tiny"
    """Shape of the random Mimi when ``pretrained`` is None: "tiny" (0.5M params) or "full" (79M)."""
    seed: int = 0
    """Seed of the random weights (a random codec is deterministic given size and seed)."""
    num_codebooks: int = MIMI_CODEBOOKS
    """Codebooks kept, the first K of Mimi's (1 = semantic only)."""
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    """Streaming chunk length for long inputs; does not change the codes."""

    def __post_init__(self):
        codebooks_for(self.num_codebooks)
        if self.pretrained is None and self.random_size not in RANDOM_SIZES:
            raise ValueError(f"random_size must be one of {RANDOM_SIZES}, got {self.random_size!r}")

    @property
    def weights(self) -> str:
        """Where the weights come from, for codec.json: a path/hub id or ``random-{size}-seed{seed}``."""
        return self.pretrained or f"random-{self.random_size}-seed{self.seed}"


_P = ParamSpec("_P")
_R = TypeVar("_R")
_JAX_MIMI_MODULE = "soda_jax.audio.mimi_jax.model"
"""Where the jax backend's `Mimi` lives (imported only by code that builds or loads one)."""


def _inference_mode(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """``torch.inference_mode()`` around ``method``, with torch imported at the call, not with this module."""

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import torch

        with torch.inference_mode():
            return method(*args, **kwargs)

    return run


def _is_jax_mimi(model: object) -> bool:
    """Whether ``model`` is the jax backend's flax `Mimi`, without importing JAX to ask about a torch
    model: no `Mimi` exists unless its module has been imported."""
    module = sys.modules.get(_JAX_MIMI_MODULE)
    return module is not None and isinstance(model, module.Mimi)


class MimiCodec:
    """Encode waveforms to Mimi codes and decode codes back, with the padding rule above."""

    def __init__(
        self,
        model: MimiModel | Mimi,
        *,
        num_codebooks: int = MIMI_CODEBOOKS,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        weights: str = "",
        devices: Sequence[Any] | None = None,
        device: str = "cpu",
        matmul_precision: str = DEFAULT_MATMUL_PRECISION,
    ):
        """``model``: a transformers MimiModel (torch backend) or a flax `Mimi` (jax backend).

        ``devices``: the jax backend's data-parallel mesh (default: all local accelerators, or one
        CPU device). ``device``: the torch backend's device (``"cpu"``, ``"cuda"``; `torch_device`).
        ``matmul_precision``: float32 matmul/convolution precision on accelerators (`MATMUL_PRECISIONS`).
        """
        codebooks_for(num_codebooks)
        check_precision(matmul_precision)
        self.model = model
        self.matmul_precision = matmul_precision
        self.device = "cpu"
        if _is_jax_mimi(model):
            from soda_jax.audio.mimi_jax.runner import MimiRunner

            model = cast("Mimi", model)
            self.backend = "jax"
            config = model.config
            self.runner = MimiRunner(model, devices=devices, matmul_precision=matmul_precision)
            self.sample_rate, self.frame_rate = config.sample_rate, float(config.frame_rate)
            self.codebook_size, num_quantizers = config.codebook_size, config.num_quantizers
        else:
            import torch

            model = cast("MimiModel", model)
            self.backend = "torch"
            self.device = device
            if torch.device(device).type == "cuda":
                apply_torch_precision(matmul_precision)
            self.model = model.eval().to(device)
            # The encoder transformer only returns its (sliding-window) KV cache when use_cache is on;
            # chunked encoding needs it to match a full pass.
            self.model.config.use_cache = True
            self.sample_rate = int(model.config.sampling_rate)
            self.frame_rate = float(model.config.frame_rate)
            self.codebook_size, num_quantizers = int(model.config.codebook_size), model.config.num_quantizers
        if num_codebooks > num_quantizers:
            raise ValueError(f"model has {num_quantizers} codebooks, {num_codebooks} asked")
        self.num_codebooks = num_codebooks
        self.weights = weights
        self.samples_per_frame = round(self.sample_rate / self.frame_rate)
        self.chunk_frames = max(1, round(chunk_seconds * self.frame_rate))

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, backend: str = "torch", converted_dir: str | None = None, **kwargs: Any
    ) -> MimiCodec:
        """Load Mimi weights from a directory (local or any fsspec URL) or a hub id (set HF_HUB_OFFLINE=1 offline).

        The jax backend reads a converted checkpoint (`mimi_jax.convert`) if ``name_or_path`` is one;
        otherwise it converts the safetensors directory (a hub id: its local snapshot) once, into
        ``converted_dir`` (default ``$SODA_JAX_CACHE/mimi_jax/{source hash}``), and loads that.
        """
        check_backend(backend)
        kwargs.setdefault("weights", name_or_path)
        if "://" in name_or_path:  # a directory in a bucket (e.g. Mimi copied into the prefix): read a local copy
            with fileio.local_directory(name_or_path) as local:
                return cls.from_pretrained(local, backend=backend, converted_dir=converted_dir, **kwargs)
        if backend == "torch":
            from transformers import MimiModel

            # transformers builds the model under a process-wide meta-device context: two threads loading
            # at once (steps of an in-process run) would leave each other's tensors on "meta"
            with _MODEL_BUILD_LOCK:
                model = MimiModel.from_pretrained(name_or_path)
            return cls(model, **kwargs)
        from soda_jax.audio.mimi_jax import convert

        if convert.read_manifest(name_or_path) is not None:
            return cls(convert.load_checkpoint(name_or_path), **kwargs)
        source = name_or_path if os.path.isdir(name_or_path) else _hub_snapshot(name_or_path)
        return cls(convert.load_checkpoint(convert.converted(source, converted_dir)), **kwargs)

    @classmethod
    def random(
        cls,
        config: MimiConfig | None = None,
        *,
        seed: int = 0,
        backend: str = "torch",
        codebook_init: str = DEFAULT_CODEBOOK_INIT,
        **kwargs: Any,
    ) -> MimiCodec:
        """A randomly initialised Mimi (default: `tiny_mimi_config`) with random codebooks.

        ``codebook_init`` (`CODEBOOK_INITS`): "normal" centroids, or "frames", centroids placed on the
        latents of seeded babble (`codebooks_from_frames`: codes spread over many more centroids; docs/audio.md).
        Both backends get the same weights for the same config, seed and init (the jax one converts them).
        """
        import torch
        from transformers import MimiModel

        check_backend(backend)
        check_codebook_init(codebook_init)
        config = config or tiny_mimi_config()
        # The init draws from torch's global RNG: two threads building codecs at once (two steps of
        # an in-process run) would interleave their draws and get different weights for one seed.
        with _MODEL_BUILD_LOCK, torch.random.fork_rng():  # seed the init without touching the caller's RNG
            torch.manual_seed(seed)
            model = MimiModel(config)
        if codebook_init == "frames":
            codebooks_from_frames(model, torch.Generator().manual_seed(seed), seed)
        else:
            randomize_codebooks(model, torch.Generator().manual_seed(seed))
        kwargs.setdefault("weights", f"random-seed{seed}{codebook_init_suffix(codebook_init)}")
        if backend == "torch":
            return cls(model, **kwargs)
        from soda_jax.audio.mimi_jax import convert

        return cls(convert.from_transformers(model), **kwargs)

    @classmethod
    def from_config(
        cls, config: CodecConfig, backend: str = DEFAULT_BACKEND, *, device: str = "cpu",
        matmul_precision: str = DEFAULT_MATMUL_PRECISION,
    ) -> MimiCodec:  # fmt: skip
        """The codec ``config`` describes, on ``device`` (torch) with ``matmul_precision`` (accelerators)."""
        kwargs: dict[str, Any] = {
            "num_codebooks": config.num_codebooks,
            "chunk_seconds": config.chunk_seconds,
            "weights": config.weights,
            "backend": backend,
            "matmul_precision": matmul_precision,
        }
        if backend == "torch":
            kwargs["device"] = device
        if config.pretrained is not None:
            return cls.from_pretrained(config.pretrained, **kwargs)
        from transformers import MimiConfig

        mimi_config = tiny_mimi_config() if config.random_size == "tiny" else MimiConfig()
        return cls.random(mimi_config, seed=config.seed, **kwargs)

    def describe(self) -> dict[str, Any]:
        """The facts ``codec.json`` records (data contract section 1).

        ``backend`` appears only for the jax backend, so outputs written before it existed (torch)
        keep their codec.json and can still be resumed; ``matmul_precision`` only when it is not the
        default (full float32, as every output before the setting existed was computed).
        """
        facts = {
            "codec": CODEC_NAME,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "weights": self.weights,
        }
        return facts | backend_facts(self.backend, self.matmul_precision)

    # ---------------------------------------------------------------------------------- encode
    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` of 24 kHz audio: the last partial frame counts as one."""
        return math.ceil(num_samples / self.samples_per_frame)

    @_inference_mode
    def encode(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """1-D float waveforms at 24 kHz -> int16 codes ``[num_codebooks, ceil(len / 1920)]`` each.

        The whole list is one batch (group similar lengths with `batches_by_length` first: padding
        costs compute, never correctness). Results equal encoding each waveform alone.
        """
        if not waves:
            return []
        frames = [self.num_frames(len(w)) for w in waves]
        if min(frames) == 0:
            raise ValueError("cannot encode an empty waveform")
        batch = np.zeros((len(waves), 1, max(frames) * self.samples_per_frame), dtype=np.float32)
        for i, wave in enumerate(waves):
            batch[i, 0, : len(wave)] = wave
        codes = self._encode_padded(batch).astype(np.int16)
        return [codes[i, :, :n] for i, n in enumerate(frames)]

    def _encode_padded(self, batch: np.ndarray) -> np.ndarray:
        """``[B, 1, whole frames]`` -> ``[B, K, frames]``, chunk by chunk with streaming state."""
        if self.backend == "jax":
            return self.runner.encode(batch[:, 0], self.num_codebooks, self.chunk_frames)
        import torch

        return self._encode_padded_torch(torch.from_numpy(batch).to(self.device)).cpu().numpy()

    def _encode_padded_torch(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        model = cast("MimiModel", self.model)  # torch backend: a transformers MimiModel
        chunk = self.chunk_frames * self.samples_per_frame
        kv_cache, conv_cache, pieces = None, None, []
        for start in range(0, batch.shape[-1], chunk):
            out = model.encode(
                batch[..., start : start + chunk],
                num_quantizers=self.num_codebooks,
                use_streaming=True,
                encoder_past_key_values=kv_cache,
                padding_cache=conv_cache,
                return_dict=True,
            )
            kv_cache, conv_cache = out.encoder_past_key_values, out.padding_cache
            pieces.append(out.audio_codes)
        return torch.cat(pieces, dim=-1)

    # ---------------------------------------------------------------------------------- decode
    @_inference_mode
    def decode(self, codes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Codes ``[num_codebooks, frames]`` each -> float32 waveforms of ``frames * 1920`` samples.

        Decodes the list as one batch in a single pass (decoding is for evaluation and listening,
        on utterance-length inputs).
        """
        if not codes:
            return []
        for c in codes:
            if c.ndim != 2 or c.shape[0] != self.num_codebooks:
                raise ValueError(f"codes must be [{self.num_codebooks}, frames], got shape {c.shape}")
        frames = [c.shape[1] for c in codes]
        # Pad with code 0: the decoder is causal, so padding frames cannot reach earlier samples
        # (batched and single decodes agree to float rounding, ~1e-5).
        batch = np.zeros((len(codes), self.num_codebooks, max(frames)), dtype=np.int64)
        for i, c in enumerate(codes):
            batch[i, :, : c.shape[1]] = c
        if self.backend == "jax":
            audio = self.runner.decode(batch)
        else:
            import torch

            model = cast("MimiModel", self.model)  # torch backend: a transformers MimiModel
            audio = model.decode(torch.from_numpy(batch).to(self.device), return_dict=True).audio_values
            audio = audio[:, 0].float().cpu().numpy()
        return [audio[i, : n * self.samples_per_frame].copy() for i, n in enumerate(frames)]


def backend_facts(backend: str, matmul_precision: str) -> dict[str, str]:
    """The part of `MimiCodec.describe` that says how the codes were computed (only what differs from
    the torch backend at full precision, the setting of every output written before these facts)."""
    facts = {}
    if backend != "torch":
        facts["backend"] = backend
    if matmul_precision != DEFAULT_MATMUL_PRECISION:
        facts["matmul_precision"] = matmul_precision
    return facts


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"codec backend must be one of {BACKENDS}, got {backend!r}")


def check_codebook_init(codebook_init: str) -> None:
    if codebook_init not in CODEBOOK_INITS:
        raise ValueError(f"codebook_init must be one of {CODEBOOK_INITS}, got {codebook_init!r}")


def codebook_init_suffix(codebook_init: str) -> str:
    """What a random codec's weights name gains for its codebook init: nothing for the default (names
    recorded before the option existed stay as they were), ``-{init}`` otherwise."""
    return "" if codebook_init == DEFAULT_CODEBOOK_INIT else f"-{codebook_init}"


def check_precision(precision: str) -> None:
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")


TORCH_PRECISIONS = {"highest": "highest", "high": "high"}
"""`MATMUL_PRECISIONS` -> ``torch.set_float32_matmul_precision`` ("high": TF32 on NVIDIA GPUs);
"default" leaves torch's own settings (float32 matmuls, TF32 convolutions)."""


def apply_torch_precision(precision: str) -> None:
    """Set this process's CUDA float32 matmul and convolution precision (torch flags are per process)."""
    import torch

    if precision in TORCH_PRECISIONS:
        torch.set_float32_matmul_precision(TORCH_PRECISIONS[precision])
        torch.backends.cudnn.allow_tf32 = precision != "highest"


def torch_device(gpus_requested: float, gpus_granted: Sequence[Any], cuda_available: bool) -> str:
    """Where the torch backend runs: ``"cuda"`` when the step asked for a GPU and torch sees one.

    ``gpus_granted``: the GPU ids the scheduler gave this process (Ray's ``get_gpu_ids()``; empty
    outside Ray or when a local run without GPUs dropped the request). A GPU that was granted but
    that torch cannot use (a CPU-only torch build, a driver problem) is an error, never a silent
    fall-back to CPU; a request that was dropped runs on CPU, saying so.
    """
    import torch

    if gpus_requested <= 0:
        return "cpu"
    if cuda_available:
        return "cuda"
    if gpus_granted:
        raise RuntimeError(
            f"this task was given GPU(s) {list(gpus_granted)} but torch {torch.__version__} sees no CUDA device "
            f"(a CPU-only torch build? torch.version.cuda={torch.version.cuda})"
        )
    logger.warning("%s GPU(s) asked for, none given to this process: the torch codec runs on CPU", gpus_requested)
    return "cpu"


def _hub_snapshot(repo_id: str) -> str:
    """The local snapshot directory of a hub id (set HF_HUB_OFFLINE=1 to never download)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, allow_patterns=[HF_CONFIG_FILE, "*.safetensors"])


def batches_by_length(lengths: Sequence[int], max_batch_samples: int) -> list[list[int]]:
    """Group item indices into batches of similar length whose padded size fits the budget.

    Items are sorted by length, so padding waste is small; an item longer than the budget gets a
    batch of its own (the codec chunks it). Returns index lists; every index appears once.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newest item is the longest: padded size = count x its length.
        if current and (len(current) + 1) * lengths[i] > max_batch_samples:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
