"""The ``download`` step: a pinned revision of a hub repository, copied under the step's output.

    python -m soda_jax.data.download --input_path hf://datasets/espnet/yodas2@COMMIT \\
        --output_path gs://BUCKET/raw/yodas2 --include '[data/en000]'

The copy keeps the repository's layout (``{output}/data/en000/audio/00000000.tar.gz`` ...), so a
reader pointed at it sees what it would see on the hub. The revision is resolved to its commit
first (a gated repository without a granted ``$HF_TOKEN`` stops the step there, naming it:
`soda_jax.fileio.check_hub_access`); files are listed at that commit with the sizes and hashes the
hub's tree API gives (LFS sha256, else the git blob id). Each file is streamed to a temporary file
while hashed, checked against both, and only then moved into place (`fileio.atomic_write_file`), so
a file present at its listed size is complete: a restarted download copies only what is missing.

``{output}/download_manifest.json`` records the provenance, atomically: the repository, the
revision asked for and the commit it resolved to, the include patterns, and every file with its
size and hash (status ``copying`` while the copy runs, ``complete`` after). A revision that
resolves to another commit than the one a copy began with is refused: pin a commit.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from soda_jax import fileio
from soda_jax.contracts import DOWNLOAD_MANIFEST_FILE
from soda_jax.execution.provenance import now_iso

logger = logging.getLogger(__name__)

"""The copy's provenance, in the step's output beside the files."""
DEFAULT_WORKERS = 8
"""Files copied at once (each a streamed HTTP download)."""
CHUNK_BYTES = 8 << 20
"""Bytes read and hashed at a time."""
PROGRESS_EVERY = 100
"""Log progress after this many files."""
ERRORS_NAMED = 5
"""Failed files named in the step's error (all are counted)."""
COPYING, COMPLETE = "copying", "complete"


@dataclass(frozen=True)
class DownloadConfig:
    """Configuration of the download step."""

    input_path: str
    """The repository at a revision: ``hf://datasets/{namespace}/{name}@{revision}`` (a model repository:
    ``hf://{namespace}/{name}@{revision}``); a path after it copies that folder only."""
    output_path: str
    """Where the copy goes (the repository's layout below it) and its manifest."""
    include: tuple[str, ...] = ()
    """Repository paths to copy, as fnmatch patterns (``*`` also matches '/'); a pattern matching a folder
    takes everything below it (``data/en*``, ``Emilia/EN``); empty: every file."""
    max_workers: int = DEFAULT_WORKERS
    """Files copied at once."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository at the commit, as the hub lists it."""

    path: str
    """Path inside the repository."""
    size: int
    sha256: str | None
    """The LFS object id (sha256 of the content); None for a file stored in git."""
    git_oid: str
    """The git blob id (sha1 over ``blob {size}\\0`` and the content; for an LFS file, of its pointer)."""


class DownloadError(RuntimeError):
    """A file did not arrive as listed (size or hash), or the revision moved under a copy."""


def included(path: str, patterns: Sequence[str]) -> bool:
    """Whether ``path`` or a folder holding it matches one of ``patterns`` (no patterns: all)."""
    if not patterns:
        return True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(prefix, pattern) for pattern in patterns for prefix in prefixes)


def list_files(location: fileio.HubLocation, commit: str, patterns: Sequence[str]) -> list[RemoteFile]:
    """The repository's files at ``commit`` under the location's path that ``patterns`` include."""
    fs, root = fileio.filesystem(location.at(commit, ""))
    listed = fs.find(fileio.filesystem(location.at(commit))[1], detail=True)
    files = []
    for name, info in sorted(listed.items()):
        path = name.removeprefix(root.rstrip("/") + "/")
        if included(path, patterns):
            lfs = info.get("lfs")
            files.append(RemoteFile(path, int(info["size"]), lfs["sha256"] if lfs else None, info["blob_id"]))
    return files


class _Verifier:
    """Hashes bytes as they stream and checks them against the listing."""

    def __init__(self, remote: RemoteFile):
        self.remote = remote
        self.size = 0
        if remote.sha256 is not None:
            self.digest = hashlib.sha256()
        else:
            self.digest = hashlib.sha1(b"blob %d\0" % remote.size)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.digest.update(chunk)

    def check(self, source: str) -> None:
        expected = self.remote.sha256 or self.remote.git_oid
        kind = "sha256" if self.remote.sha256 else "git blob id"
        if self.size != self.remote.size:
            raise DownloadError(f"{source}: got {self.size} bytes, the hub lists {self.remote.size}")
        if self.digest.hexdigest() != expected:
            raise DownloadError(f"{source}: {kind} {self.digest.hexdigest()} does not match the listed {expected}")


def copy_file(source: str, target: str, remote: RemoteFile) -> None:
    """Stream ``source`` to ``target``, committing it only when its size and hash match ``remote``."""
    fs, path = fileio.filesystem(source)

    def fill(out: BinaryIO) -> None:
        verifier = _Verifier(remote)
        with fs.open(path, "rb", block_size=0) as stream:  # block_size 0: one streamed GET
            while chunk := stream.read(CHUNK_BYTES):
                verifier.update(chunk)
                out.write(chunk)
        verifier.check(source)

    fileio.atomic_write_file(target, fill)


def present_sizes(output_path: str) -> dict[str, int]:
    """Repository path -> size of every file already under ``output_path``."""
    fs, root = fileio.filesystem(output_path)
    if not fs.exists(root):
        return {}
    prefix = root.rstrip("/") + "/"
    return {name.removeprefix(prefix): int(info["size"]) for name, info in fs.find(root, detail=True).items()}


def write_manifest(config: DownloadConfig, record: dict[str, Any]) -> None:
    fileio.atomic_write_json(fileio.join(config.output_path, DOWNLOAD_MANIFEST_FILE), record)


def download(config: DownloadConfig) -> dict[str, Any]:
    """Run the step (resuming past complete files); returns the manifest it writes."""
    location = fileio.hub_location(config.input_path)
    if location is None:
        raise ValueError(f"{config.input_path}: the download step copies a hub repository (hf://...)")
    commit = fileio.check_hub_access(config.input_path)
    previous = fileio.read_json_or_none(fileio.join(config.output_path, DOWNLOAD_MANIFEST_FILE))
    if previous is not None and previous.get("commit") != commit:
        raise DownloadError(
            f"{config.input_path}: revision {location.revision or 'main'} now resolves to commit {commit}, but "
            f"{config.output_path} holds a copy of commit {previous.get('commit')}: pin the revision to a commit"
        )
    if not location.pinned:
        logger.warning(
            "%s: revision %s is not a commit; copying commit %s (pin it for a reproducible copy)",
            config.input_path,
            location.revision or "main",
            commit,
        )
    record: dict[str, Any] = {
        "source": config.input_path,
        "repo_type": location.repo_type,
        "repo_id": location.repo_id,
        "revision": location.revision,
        "commit": commit,
        "path_in_repo": location.path_in_repo,
        "include": list(config.include),
        "status": COPYING,
        "started_at": now_iso(),
    }
    write_manifest(config, record)
    files = list_files(location, commit, config.include)
    if not files:
        raise FileNotFoundError(f"{config.input_path}: no file at commit {commit} matches {list(config.include)}")
    present = present_sizes(config.output_path)
    todo = [f for f in files if present.get(f.path) != f.size]
    logger.info(
        "%s@%s: %d files (%.2f GB), %d already copied, %d to copy",
        location.repo_id,
        commit[:8],
        len(files),
        sum(f.size for f in files) / 1e9,
        len(files) - len(todo),
        len(todo),
    )
    errors: dict[str, str] = {}

    def copy(remote: RemoteFile) -> None:
        try:
            copy_file(location.at(commit, remote.path), fileio.join(config.output_path, remote.path), remote)
        except Exception as e:  # counted and named below; the other files go on
            errors[remote.path] = f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=max(1, config.max_workers), thread_name_prefix="download") as pool:
        for done, _ in enumerate(pool.map(copy, todo), start=1):
            if done % PROGRESS_EVERY == 0:
                logger.info("copied %d of %d files", done, len(todo))
    if errors:
        named = "\n".join(f"  {path}: {error}" for path, error in sorted(errors.items())[:ERRORS_NAMED])
        raise DownloadError(
            f"{config.input_path}: {len(errors)} of {len(todo)} files did not copy (re-run to resume):\n{named}"
        )
    record.update(
        status=COMPLETE,
        completed_at=now_iso(),
        num_files=len(files),
        total_bytes=sum(f.size for f in files),
        copied=len(todo),
        already_present=len(files) - len(todo),
        files=[asdict(f) for f in files],
    )
    write_manifest(config, record)
    return record


def main() -> None:
    import draccus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    download(draccus.parse(DownloadConfig))


if __name__ == "__main__":
    main()
