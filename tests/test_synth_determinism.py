"""The demo corpus is the same bytes every run, on a fresh machine too; its stats say how it was made."""

import os

from system_deps import needs

from soda_jax import fileio
from soda_jax.data.synth import SynthDemoConfig, Voice, synthesize_demo_corpus

pytestmark = needs("espeak-ng", "flite")

# espeak-ng's female variants add breath noise (libc rand()); flite for the other engine.
VOICES = (
    Voice("espeak-ng", "en-us+f2"),
    Voice("flite", "slt"),
    Voice("espeak-ng", "en+f2"),
    Voice("espeak-ng", "en+m3"),
)
SENTENCES = ("The quick brown fox jumps over the lazy dog.", "A stitch in time saves nine.")


def files_under(root) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, names in os.walk(root)
        for f in names
    }


def synthesize_on_a_fresh_machine(root, monkeypatch) -> str:
    """A run as on a new machine: a home directory no audio library has seen."""
    home = root / "home"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    config = SynthDemoConfig(
        output_path=str(root / "out"), sentences=SENTENCES, sentences_per_recording=2, voices=VOICES
    )
    synthesize_demo_corpus(config)
    return str(root / "out")


def test_synthesis_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    first = synthesize_on_a_fresh_machine(tmp_path / "a", monkeypatch)
    second = synthesize_on_a_fresh_machine(tmp_path / "b", monkeypatch)
    files, again = files_under(first), files_under(second)
    yodas2_files = [
        f"yodas2/data/en000/{name}" for name in ("audio/00000000.tar.gz", "duration/00000000.txt", "text/00000000.json")
    ]
    for name in ("emilia/EN-B000000.tar", *yodas2_files):
        assert files[name] == again[name], name
    assert sorted(files) == ["emilia/EN-B000000.tar", "stats.json", *yodas2_files]
    assert files == again
    archive = files["yodas2/data/en000/audio/00000000.tar.gz"]
    assert archive[:2] == b"\x1f\x8b" and archive[4:8] == bytes(4)  # gzip, header mtime 0
    stats = fileio.read_json(os.path.join(first, "stats.json"))
    assert sorted(stats["files"]) == sorted(name for name in files if name != "stats.json")
    tools = stats["tools"]
    assert "flite" in tools["flite"] and "eSpeak NG" in tools["espeak-ng"] and tools["libsndfile"]
    assert os.environ["HOME"] == str(tmp_path / "b" / "home")
