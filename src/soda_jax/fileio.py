"""Filesystem helpers over fsspec: one place for URL joins and atomic writes.

Every path in soda-jax may be a local path or an fsspec URL (``gs://``, ``s3://``, ``memory://``,
``hf://`` ...). Writes are atomic: a reader sees the old file or the new one, never a partial one.
On a local disk that is write-to-temp then ``os.replace``; on object stores (GCS, memory) a single
upload is already atomic.

Hugging Face Hub repositories are read through fsspec's ``HfFileSystem``:
``hf://datasets/{namespace}/{name}@{revision}/{path}`` (a model: ``hf://{namespace}/{name}@...``).
The credential is huggingface_hub's own: ``$HF_TOKEN``. `check_readable` says clearly why such a
location cannot be read (a gated repository without a granted token, a refused token, no such
revision) before any work starts.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote

import fsspec
from fsspec.implementations.local import LocalFileSystem

_commit_guards: list[Callable[[str], None]] = []


def add_commit_guard(guard: Callable[[str], None]) -> None:
    """Call ``guard(url)`` before every commit (atomic write, appended row): it raises to refuse it.

    The executor's lease fencing installs one, so an attempt that lost its step cannot commit there.
    """
    if guard not in _commit_guards:
        _commit_guards.append(guard)


def check_commit(url: str) -> None:
    """Raise if a commit guard refuses writing ``url`` now (for writers that do not use the atomic helpers)."""
    for guard in _commit_guards:
        guard(url)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path within it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def is_local(url: str) -> bool:
    return isinstance(filesystem(url)[0], LocalFileSystem)


@contextmanager
def local_directory(url: str) -> Iterator[str]:
    """A local path holding the directory ``url``: itself when local, else a temporary copy (deleted
    on exit). For libraries that read only local directories (transformers' ``from_pretrained``)."""
    if is_local(url):
        yield filesystem(url)[1]
        return
    fs, path = filesystem(url)
    with tempfile.TemporaryDirectory() as tmp:
        fs.get(path.rstrip("/") + "/", tmp + "/", recursive=True)
        yield tmp


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URL, with exactly one '/' between them."""
    out = base.rstrip("/") if base not in ("/", "") else base
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if out and not out.endswith("/") else f"{out}{part}"
    return out


def url_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URL of a path ``fs`` listed (``fs.find``, ``fs.glob``): a plain path on a local disk."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def parent(url: str) -> str:
    """The directory holding ``url``, in the filesystem's own path form (what ``invalidate_cache`` takes)."""
    fs, path = filesystem(url)
    return posixpath.dirname(path.rstrip("/"))


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def makedirs(url: str) -> None:
    fs, path = filesystem(url)
    fs.makedirs(path, exist_ok=True)


def _replace_locally(url: str, path: str, fill: Callable[[BinaryIO], Any]) -> None:
    """Write a local file through a temporary sibling and ``os.replace`` (after the commit guards)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        check_commit(url)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` so that readers never observe a partial file."""
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        _replace_locally(url, path, lambda f: f.write(data))
    else:
        directory = posixpath.dirname(path.rstrip("/"))
        if directory:
            fs.makedirs(directory, exist_ok=True)
        check_commit(url)
        fs.pipe_file(path, data)
        fs.invalidate_cache(directory)


def atomic_write_file(url: str, fill: Callable[[BinaryIO], Any]) -> None:
    """Write ``url`` from ``fill(file)``, for content too large to hold in memory (a download).

    Readers never observe a partial file, and if ``fill`` raises (a hash that does not match, say)
    nothing is written. Remote targets are staged in a local temporary file, then uploaded once.
    """
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        _replace_locally(url, path, fill)
        return
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "staged")
        with open(staged, "wb") as f:
            fill(f)
        directory = posixpath.dirname(path.rstrip("/"))
        if directory:
            fs.makedirs(directory, exist_ok=True)
        check_commit(url)
        fs.put_file(staged, path)
        fs.invalidate_cache(directory)


def atomic_write_text(url: str, text: str) -> None:
    atomic_write_bytes(url, text.encode("utf-8"))


def atomic_write_json(url: str, obj: Any) -> None:
    atomic_write_text(url, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        return f.read()


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url: str) -> Any:
    return json.loads(read_text(url))


def read_json_or_none(url: str) -> Any | None:
    """The parsed JSON at ``url``, or None if there is no file there."""
    try:
        return read_json(url)
    except FileNotFoundError:
        return None


def temporary_sibling(url: str) -> str:
    """A unique path next to ``url`` for staging a directory before it is renamed into place."""
    return f"{url.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"


# -- Hugging Face Hub locations ------------------------------------------------------------------

HUB_PROTOCOL = "hf://"
HUB_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space"}
"""The first part of an ``hf://`` path naming a repository type; none: a model repository."""
SPECIAL_REVISION = re.compile(r"^refs/(convert/\w+|pr/\d+)")
"""Revisions that contain a '/' and may be written unencoded (as ``HfFileSystem`` accepts them)."""
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
"""A revision that is a commit (pinned), not a branch or tag that may move."""
HF_TOKEN_ENV = "HF_TOKEN"
"""The environment variable huggingface_hub reads the hub credential from (on every worker)."""


class HubAccessError(PermissionError):
    """A hub repository refused us: gated without a granted token, or the token was refused."""


@dataclass(frozen=True)
class HubLocation:
    """An ``hf://`` URL taken apart (no request made)."""

    repo_type: str
    """"dataset", "model" or "space"."""
    repo_id: str
    """``namespace/name``."""
    revision: str | None
    """The revision after '@' (unquoted), or None: the default branch."""
    path_in_repo: str
    """The path inside the repository ("" : its root)."""

    @property
    def pinned(self) -> bool:
        """Whether the revision is a commit sha (a branch or tag may move)."""
        return self.revision is not None and COMMIT_SHA.match(self.revision) is not None

    def describe(self) -> str:
        return f"{self.repo_type} {self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    def at(self, revision: str, path_in_repo: str | None = None) -> str:
        """The ``hf://`` URL of this repository at ``revision`` (a path inside it, else this one's)."""
        prefix = next((p for p, kind in HUB_TYPE_PREFIXES.items() if kind == self.repo_type), None)
        base = f"{HUB_PROTOCOL}{prefix + '/' if prefix else ''}{self.repo_id}@{revision.replace('/', '%2F')}"
        return join(base, self.path_in_repo if path_in_repo is None else path_in_repo)


def hub_location(url: str) -> HubLocation | None:
    """The hub repository an ``hf://`` URL names (None for any other URL or path).

    Raises ValueError when an ``hf://`` URL does not name a repository (``namespace/name``).
    """
    if not url.startswith(HUB_PROTOCOL):
        return None
    parts = url[len(HUB_PROTOCOL) :].strip("/").split("/")
    repo_type = HUB_TYPE_PREFIXES.get(parts[0], "model")
    if parts[0] in HUB_TYPE_PREFIXES:
        parts = parts[1:]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"{url}: an hf:// URL names a repository: hf://[datasets/]namespace/name[@rev][/path]")
    namespace, name, rest = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in name:
        name, after = name.split("@", 1)
        after = f"{after}/{rest}" if rest else after
        special = SPECIAL_REVISION.match(after)
        if special is not None:
            revision, rest = special.group(0), after[special.end() :].lstrip("/")
        else:
            revision, _, rest = after.partition("/")
        revision = unquote(revision)
    return HubLocation(repo_type, f"{namespace}/{name}", revision, rest)


def check_hub_access(url: str) -> str:
    """The commit an ``hf://`` URL's revision resolves to, once the hub lets us read its files.

    Raises `HubAccessError` naming the repository when it is gated and no token was given or the
    token has no access, or when the hub refuses the token; FileNotFoundError for a repository or
    revision that does not exist (or is private to others).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    location = hub_location(url)
    if location is None:
        raise ValueError(f"{url} is not an hf:// URL")
    api = HfApi()
    repo = location.describe()
    page = f"{api.endpoint}/{'' if location.repo_type == 'model' else location.repo_type + 's/'}{location.repo_id}"
    token_given = bool(os.environ.get(HF_TOKEN_ENV))
    try:
        info = api.repo_info(location.repo_id, repo_type=location.repo_type, revision=location.revision)
        api.auth_check(location.repo_id, repo_type=location.repo_type)
    except GatedRepoError as e:
        if not token_given:
            raise HubAccessError(
                f"{url}: the {repo} is gated and no credential was given: set ${HF_TOKEN_ENV} "
                f"(on every worker) to a token of an account granted access at {page}"
            ) from e
        raise HubAccessError(
            f"{url}: the {repo} is gated and refused the token in ${HF_TOKEN_ENV} (HTTP {_status(e)}): "
            f"its account has not been granted access; request it at {page}"
        ) from e
    except RevisionNotFoundError as e:
        kind = f"{location.repo_type} {location.repo_id}"
        raise FileNotFoundError(f"{url}: the {kind} has no revision {location.revision!r}") from e
    except RepositoryNotFoundError as e:
        hint = f"${HF_TOKEN_ENV} is not set"
        if token_given:
            hint = f"the token in ${HF_TOKEN_ENV} has no access to it"
        kind = f"{location.repo_type} {location.repo_id}"
        raise FileNotFoundError(f"{url}: no {kind} on {api.endpoint} (or it is private and {hint})") from e
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise HubAccessError(
                f"{url}: the hub refused the token in ${HF_TOKEN_ENV} (HTTP {_status(e)}) opening the {repo}"
            ) from e
        raise
    if info.sha is None:
        raise FileNotFoundError(f"{url}: the hub gave no commit for the {repo}")
    return info.sha


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def check_readable(url: str) -> None:
    """Raise a clear error when ``url`` cannot be read now: FileNotFoundError when nothing is
    there, `HubAccessError` when a hub repository refuses the credential (`check_hub_access`)."""
    if hub_location(url) is not None:
        check_hub_access(url)
    if not exists(url):
        raise FileNotFoundError(f"{url}: no such file or directory")
