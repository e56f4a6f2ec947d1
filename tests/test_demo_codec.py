"""The learning demo's codec step (`soda_jax.data.demo_codec`), under the executor: a tiny Mimi distilled on
synthesised readings, written where ``CodecConfig(pretrained=step / CODEC_DIR)`` finds it, and taken from there
by a tokenize step through the executor's own path resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
from system_deps import needs

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig, MimiCodec
from soda_jax.audio.distilled_mimi import CONFIG_FILE, DistilledMimiConfig
from soda_jax.contracts import CODEC_DIR, HF_CONFIG_FILE
from soda_jax.data.demo_codec import DemoCodecConfig, distil_demo_codec
from soda_jax.data.synth import Voice, synthesize
from soda_jax.execution import ExecutorStep, executor_main, this_output_path, versioned

SENTENCES = ("set the red lamp to two", "move the blue door to nine", "turn the green fan to four")
VOICE = Voice("flite", "kal16")
TINY = DistilledMimiConfig(steps=3, batch_size=2, crop_frames=5, active_codes=4, num_codebooks=1)


@needs("flite")
def test_the_step_writes_a_mimi_both_backends_load_with_only_active_codes(tmp_path):
    facts = distil_demo_codec(DemoCodecConfig(str(tmp_path), SENTENCES, (VOICE,), recordings=2, distil=TINY))
    mimi = tmp_path / CODEC_DIR
    assert (mimi / HF_CONFIG_FILE).exists() and (mimi / "model.safetensors").exists()
    assert json.loads((mimi / CONFIG_FILE).read_text())["recordings"] == facts["recordings"] == 2
    wave = synthesize(SENTENCES[2], VOICE)
    codes = {
        backend: MimiCodec.from_pretrained(str(mimi), backend=backend, num_codebooks=1).encode([wave])[0]
        for backend in ("torch", "jax")
    }
    np.testing.assert_array_equal(codes["torch"], codes["jax"])
    assert len(np.unique(codes["torch"])) <= TINY.active_codes


def test_no_sentences_is_an_error_naming_the_step(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        distil_demo_codec(DemoCodecConfig(str(tmp_path), (), (VOICE,), distil=TINY))


@needs("flite")
def test_a_codec_config_can_name_the_step_and_the_executor_resolves_it(tmp_path):
    codec_step = ExecutorStep(
        "codecs/tiny",
        distil_demo_codec,
        DemoCodecConfig(this_output_path(), versioned(SENTENCES), (VOICE,), recordings=2, distil=TINY),
    )
    seen = tmp_path / "seen.json"

    def record_codec(config: CodecConfig) -> None:
        fileio.atomic_write_json(str(seen), {"pretrained": config.pretrained})

    user = ExecutorStep(
        "test/uses-codec", record_codec, CodecConfig(pretrained=codec_step / CODEC_DIR, num_codebooks=1)
    )
    report = executor_main([user], args=["--prefix", str(tmp_path / "prefix"), "--local"])
    assert report is not None
    resolved = json.loads(seen.read_text())["pretrained"]
    assert resolved == fileio.join(report.output_paths["codecs/tiny"], CODEC_DIR)
    assert MimiCodec.from_pretrained(resolved, num_codebooks=1).codebook_size == 2048
