"""A tiny Mimi whose codes stand for sounds, built on CPU in minutes: the CPU learning demo's codec.

A random Mimi's encoder works on the raw waveform, so its codes follow the waveform's phase more
than what is said (docs/audio.md). Real Mimi distils its first (semantic) codebook's latent to WavLM;
this does the same with a cheap, phase-invariant teacher: mel-frequency cepstra (`teacher_features`:
log-mel power of short windows averaged over each 80 ms Mimi frame, then its cepstral coefficients
1..`TEACHER_CEPSTRA`: a smooth spectral envelope without the overall level, coefficient 0, and with little of
the waveform's phase or the pitch's harmonics). Then:

1. `distil_encoder`: the tiny Mimi's encoder, encoder transformer and downsample (everything before
   the quantizer) are trained so that a linear head on the quantizer's input regresses the teacher,
   on random crops at any sample offset of the given recordings; the head is discarded.
2. `fit_codebooks`: the first `DistilledMimiConfig.num_codebooks` codebooks are fitted by k-means
   (`kmeans`) on the latents each sees when the recordings are encoded (each quantizer's projected
   input, and layer by layer its residual), with `DistilledMimiConfig.active_codes` centroids; the
   other entries are placed far outside the latents (`UNUSED_CODE_DISTANCE`), so encoding never picks
   them and every backend agrees on that.

`build_distilled_mimi` does both from a seed and a list of recordings, deterministically (same seed,
recordings and torch thread count: same weights); `save_distilled_mimi` writes a transformers-format
directory (``config.json`` + ``model.safetensors``) that ``MimiCodec.from_pretrained`` loads with
either backend. The decoder stays random: decoded speech is not intelligible.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import MimiConfig, MimiModel

from soda_jax import fileio
from soda_jax.audio.codec import quantizer_inputs, set_codebooks, tiny_mimi_config
from soda_jax.contracts import HF_CONFIG_FILE

TEACHER_MELS = 40
"""Mel bands of the teacher's filterbank."""
TEACHER_CEPSTRA = 13
"""Cepstral coefficients the teacher keeps (1..13; coefficient 0, the loudness, is dropped)."""
TEACHER_SUBFRAMES = 4
"""Windows per Mimi frame (20 ms hops at 24 kHz), whose log-mel powers are averaged."""
TEACHER_FMIN_HZ = 50.0
"""Lowest frequency of the mel filterbank."""
TEACHER_FMAX_HZ = 8000.0
"""Highest frequency of the mel filterbank (the synthesisers' speech is band-limited to 8 kHz)."""
TEACHER_POWER_FLOOR = 1e-5
"""Added to the mel power before the log: silence gives a flat spectrum (zero cepstra)."""
GRADIENT_CLIP = 1.0
"""Largest gradient norm of a distillation step."""
FINAL_LR_FRACTION = 0.1
"""The learning rate decays (cosine) to this fraction of `DistilledMimiConfig.learning_rate`."""
UNUSED_CODE_DISTANCE = 10.0
"""Codebook entries beyond the active codes sit this many times the latents' largest distance from
their mean away from it, in random directions: nearer to no latent than any active centroid."""
CONFIG_FILE = "distilled_mimi.json"
"""Written next to the weights: how they were made (`DistilledMimiConfig`, frames, losses)."""


@dataclass(frozen=True)
class DistilledMimiConfig:
    """How `build_distilled_mimi` trains and fits the tiny Mimi."""

    seed: int = 0
    """Seed of the initial weights (as `MimiCodec.random`'s), the crops and the k-means starts."""
    steps: int = 240
    """Distillation steps (Adam)."""
    batch_size: int = 8
    """Crops per step."""
    crop_frames: int = 25
    """Length of a crop in Mimi frames (25: 2 s); shorter recordings are padded with silence."""
    learning_rate: float = 3e-3
    """Peak learning rate (cosine decay to `FINAL_LR_FRACTION` of it)."""
    active_codes: int = 64
    """Centroids fitted per codebook (at most the codebook size); fewer codes, each seen more often."""
    kmeans_iterations: int = 10
    """Lloyd iterations per codebook."""
    num_codebooks: int = 8
    """Codebooks fitted (the first K; the rest keep random centroids and are not meant to be used)."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "crop_frames", "active_codes", "kmeans_iterations", "num_codebooks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------ the teacher
@functools.cache
def mel_filterbank(num_fft: int, sample_rate: int) -> np.ndarray:
    """``[TEACHER_MELS, num_fft // 2 + 1]`` triangular filters, equally spaced on the HTK mel scale."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    freqs = np.fft.rfftfreq(num_fft, 1 / sample_rate)
    low_mel, high_mel = (float(m) for m in to_mel(np.array([TEACHER_FMIN_HZ, min(TEACHER_FMAX_HZ, sample_rate / 2)])))
    mels = np.linspace(low_mel, high_mel, TEACHER_MELS + 2)
    points = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bank = np.zeros((TEACHER_MELS, len(freqs)))
    for i, (low, centre, high) in enumerate(zip(points, points[1:], points[2:])):
        bank[i] = np.clip(np.minimum((freqs - low) / (centre - low), (high - freqs) / (high - centre)), 0, None)
    return bank


@functools.cache
def dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II rows ``[size, size]`` (row k: cepstral coefficient k)."""
    n = np.arange(size)
    rows = np.cos(np.pi * (n[None] + 0.5) * n[:, None] / size) * math.sqrt(2 / size)
    rows[0] /= math.sqrt(2)
    return rows


def teacher_features(wave: np.ndarray, sample_rate: int, frame_samples: int) -> np.ndarray:
    """``[ceil(len / frame_samples), TEACHER_CEPSTRA]`` float32: the distillation target of each frame.

    Each frame's `TEACHER_SUBFRAMES` hops are analysed with a Hann window of two hops ending at the
    hop's end (causal: a frame's features use its own samples and one hop before), mel-filtered,
    logged and averaged; the cepstra 1..`TEACHER_CEPSTRA` of that mean log-mel spectrum are returned.
    """
    frames = -(-len(wave) // frame_samples)
    hop = frame_samples // TEACHER_SUBFRAMES
    window = 2 * hop
    padded = np.zeros(frames * frame_samples + hop)
    padded[hop : hop + len(wave)] = wave
    starts = np.arange(frames * TEACHER_SUBFRAMES)[:, None] * hop
    segments = padded[starts + np.arange(window)[None]] * np.hanning(window)[None]
    power = np.abs(np.fft.rfft(segments, n=window)) ** 2
    log_mel = np.log(power @ mel_filterbank(window, sample_rate).T + TEACHER_POWER_FLOOR)
    mean_log_mel = log_mel.reshape(frames, TEACHER_SUBFRAMES, TEACHER_MELS).mean(axis=1)
    return (mean_log_mel @ dct_matrix(TEACHER_MELS)[1 : TEACHER_CEPSTRA + 1].T).astype(np.float32)


# ----------------------------------------------------------------------------------- the encoder
def frame_samples_of(model: MimiModel) -> int:
    return round(model.config.sampling_rate / model.config.frame_rate)


def random_crops(waves: Sequence[np.ndarray], count: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` crops of ``samples`` from random recordings at random sample offsets (zero-padded)."""
    crops = np.zeros((count, samples), dtype=np.float32)
    for row, index in enumerate(rng.integers(len(waves), size=count)):
        wave = waves[index]
        start = int(rng.integers(max(len(wave) - samples, 0) + 1))
        piece = wave[start : start + samples]
        crops[row, : len(piece)] = piece
    return crops


def distil_encoder(model: MimiModel, waves: Sequence[np.ndarray], config: DistilledMimiConfig) -> list[float]:
    """Train everything before ``model``'s quantizer to regress `teacher_features` (standardised over
    ``waves``) through a linear head (then discarded); returns the loss of every step."""
    rate, frame = int(model.config.sampling_rate), frame_samples_of(model)
    reference = np.concatenate([teacher_features(w, rate, frame) for w in waves])
    mean, scale = reference.mean(axis=0), reference.std(axis=0) + 1e-6
    rng = np.random.default_rng(config.seed)
    head = torch.nn.Linear(model.config.hidden_size, TEACHER_CEPSTRA)
    parts = [model.encoder, model.encoder_transformer, model.downsample]
    params = [p for part in parts for p in part.parameters()] + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * step / config.steps)),
    )
    model.train()
    losses = []
    for _ in tqdm(range(config.steps), desc="distil the demo Mimi", unit="step", mininterval=10):
        crops = random_crops(waves, config.batch_size, config.crop_frames * frame, rng)
        target = np.stack([(teacher_features(c, rate, frame) - mean) / scale for c in crops])
        prediction = head(quantizer_inputs(model, torch.from_numpy(crops)))
        loss = torch.nn.functional.mse_loss(prediction, torch.from_numpy(target))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRADIENT_CLIP)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


# --------------------------------------------------------------------------------- the codebooks
def kmeans(points: torch.Tensor, clusters: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means from ``clusters`` distinct random points; a cluster left empty keeps its centroid."""
    if len(points) < clusters:
        raise ValueError(f"k-means of {clusters} clusters needs as many frames, got {len(points)}")
    centroids = points[torch.randperm(len(points), generator=generator)[:clusters]].clone()
    for _ in range(iterations):
        nearest = torch.cdist(points, centroids).argmin(dim=-1)
        sums = torch.zeros_like(centroids).index_add_(0, nearest, points)
        counts = torch.bincount(nearest, minlength=clusters)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(points.dtype)
    return centroids


def with_unused_codes(
    centroids: torch.Tensor, points: torch.Tensor, size: int, generator: torch.Generator
) -> torch.Tensor:
    """``centroids`` followed by ``size - len(centroids)`` entries no point is near (`UNUSED_CODE_DISTANCE`)."""
    extra = size - len(centroids)
    if extra <= 0:
        return centroids
    centre = points.mean(dim=0)
    radius = float((points - centre).norm(dim=-1).max())
    directions = torch.randn((extra, points.shape[1]), generator=generator)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return torch.cat([centroids, centre + UNUSED_CODE_DISTANCE * radius * directions])


def fit_codebooks(model: MimiModel, waves: Sequence[np.ndarray], config: DistilledMimiConfig) -> None:
    """k-means every used codebook of ``model`` on the latents its layer sees when ``waves`` are encoded
    (`set_codebooks`), with `with_unused_codes` after the active centroids."""
    generator = torch.Generator().manual_seed(config.seed)
    frame = frame_samples_of(model)

    def fitted(inputs: torch.Tensor, size: int) -> torch.Tensor:
        centroids = kmeans(inputs, min(config.active_codes, size), config.kmeans_iterations, generator)
        return with_unused_codes(centroids, inputs, size, generator)

    with torch.no_grad():
        padded = [np.pad(w, (0, -len(w) % frame)).astype(np.float32) for w in waves]
        latents = torch.cat([quantizer_inputs(model, torch.from_numpy(w)[None])[0] for w in padded])
    set_codebooks(model, latents, fitted, config.num_codebooks)


# ----------------------------------------------------------------------------------------- build
def build_distilled_mimi(
    waves: Sequence[np.ndarray], config: DistilledMimiConfig, mimi_config: MimiConfig | None = None
) -> tuple[MimiModel, list[float]]:
    """A Mimi (default `tiny_mimi_config`, initialised as `MimiCodec.random` with ``config.seed``)
    distilled on ``waves`` (24 kHz float32) and with k-means codebooks; returns it and the losses."""
    if not waves:
        raise ValueError("build_distilled_mimi needs recordings to distil on")
    mimi_config = mimi_config or tiny_mimi_config()
    if config.num_codebooks > mimi_config.num_quantizers:
        raise ValueError(f"{config.num_codebooks} codebooks asked, the Mimi has {mimi_config.num_quantizers}")
    with torch.random.fork_rng():  # seed the init and the head without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = MimiModel(mimi_config)
        losses = distil_encoder(model, waves, config)
    fit_codebooks(model, waves, config)
    return model, losses


def save_distilled_mimi(model: MimiModel, path: str, facts: dict) -> None:
    """Write ``model`` as ``config.json`` + ``model.safetensors`` (and ``facts`` as `CONFIG_FILE`) to the
    directory ``path`` (local or any fsspec URL), each file written atomically, the weights before the
    config that marks the directory as a model."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        names = sorted(os.listdir(tmp), key=lambda name: name == HF_CONFIG_FILE)
        for name in names:
            with open(os.path.join(tmp, name), "rb") as f:
                fileio.atomic_write_bytes(fileio.join(path, name), f.read())
    fileio.atomic_write_json(fileio.join(path, CONFIG_FILE), facts)


def describe(
    config: DistilledMimiConfig, waves: Sequence[np.ndarray], losses: Sequence[float], sample_rate: int
) -> dict:
    """The facts `save_distilled_mimi` records: the config, what it was distilled on, first and last loss."""
    return {
        "config": dataclasses.asdict(config),
        "teacher": {"mels": TEACHER_MELS, "cepstra": TEACHER_CEPSTRA, "subframes": TEACHER_SUBFRAMES},
        "recordings": len(waves),
        "seconds": round(sum(len(w) for w in waves) / sample_rate, 1),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }
