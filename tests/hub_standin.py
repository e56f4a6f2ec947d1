"""A stand-in for the Hugging Face Hub on 127.0.0.1: the endpoints huggingface_hub 0.36 calls.

Serves model and dataset repositories held in memory, each with commits and branches, over the
routes ``HfApi`` and ``HfFileSystem`` build (``{kind}``: ``models`` or ``datasets``; ``{repo}``:
``namespace/name``; revisions and tree paths percent-encoded as huggingface_hub encodes them)::

    GET       /api/{kind}/{repo}[/revision/{rev}]         repo_info: id, sha, siblings, gated
    GET       /api/{kind}/{repo}/auth-check               200, or 401/403 with X-Error-Code: GatedRepo
    GET       /api/{kind}/{repo}/tree/{rev}[/{path}]      ?recursive=&expand=&cursor= (Link: rel="next")
    POST      /api/{kind}/{repo}/paths-info/{rev}         form fields ``paths``
    GET|HEAD  /[datasets/]{repo}/resolve/{rev}/{path}     the bytes (Range honoured), ETag, X-Repo-Commit

Files are LFS files (tree entries with ``lfs: {oid: sha256, size, pointerSize}``) when their
suffix is one the hub's default ``.gitattributes`` tracks; every file has its git blob id as ``oid``.
Errors carry the hub's ``X-Error-Code`` headers (RepoNotFound, RevisionNotFound, EntryNotFound,
GatedRepo), so huggingface_hub raises the same exceptions it raises against the real hub. A gated
repository lists its files to anyone but serves them only to a token granted access (401 without
a token, 403 with another); a token the server does not know is refused everywhere (401).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".tar", ".tar.gz", ".gz", ".zst", ".zstd", ".parquet", ".safetensors", ".flac", ".mp3", ".wav", ".bin")
"""Suffixes the hub's default ``.gitattributes`` stores in LFS."""
LFS_POINTER_SIZE = 134
"""Size of a git-lfs pointer file, as the hub reports it."""
KINDS = {"models": "model", "datasets": "dataset"}
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"


def git_blob_id(data: bytes) -> str:
    """Git's object id of a file: sha1 over ``blob {size}\\0`` and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


@dataclass
class StandinRepo:
    """One repository: commits (sha -> files), branches, and who may read it."""

    repo_id: str
    repo_type: str = "dataset"
    gated: bool = False
    """Files are served only to ``granted`` tokens (listings stay public, as on the hub)."""
    granted: set[str] = field(default_factory=set)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    """Paths whose bytes are served with one byte flipped (the listing keeps the true hashes)."""

    def commit(self, files: Mapping[str, bytes | None], branch: str = "main") -> str:
        """A new commit on ``branch``: its files updated with ``files`` (None deletes); returns its sha."""
        parent = self.branches.get(branch)
        tree = dict(self.commits.get(parent, {})) if parent else {}
        for path, data in files.items():
            if data is None:
                tree.pop(path, None)
            else:
                tree[path] = data
        sha = hashlib.sha1(
            json.dumps([parent, sorted((p, git_blob_id(d)) for p, d in tree.items())]).encode()
        ).hexdigest()
        self.commits[sha] = tree
        self.branches[branch] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


def _entry(path: str, files: Mapping[str, bytes], expand: bool, commit: str) -> dict:
    """A tree / paths-info entry for a file or directory."""
    if path in files:
        data = files[path]
        entry: dict = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": LFS_POINTER_SIZE}
    else:
        below = sorted(p for p in files if p.startswith(path + "/"))
        entry = {
            "type": "directory",
            "oid": hashlib.sha1("\n".join(below).encode()).hexdigest(),
            "size": 0,
            "path": path,
        }
    if expand:
        entry["lastCommit"] = {"id": commit, "title": "stand-in commit", "date": "2024-01-01T00:00:00.000Z"}
    return entry


def _children(files: Mapping[str, bytes], directory: str, recursive: bool) -> list[str]:
    """Paths (files and directories) below ``directory`` ("" : the root), directories first per level."""
    prefix = f"{directory}/" if directory else ""
    found: set[str] = set()
    for path in files:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, min(depth, len(parts)) + 1):
            found.add(prefix + "/".join(parts[:i]))
    return sorted(found, key=lambda p: (p.count("/"), p not in files, p))


class HubStandin:
    """The server; ``url`` is what ``HF_ENDPOINT`` should say. Use as a context manager."""

    def __init__(self, *, page_size: int = 1000, valid_tokens: set[str] | None = None):
        self.repos: dict[tuple[str, str], StandinRepo] = {}
        self.page_size = page_size
        """Tree entries per page (a small value exercises the client's pagination)."""
        self.valid_tokens = set(valid_tokens or ())
        """Tokens the server knows; a request with any other token is refused (401)."""
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request served, for tests to count downloads."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add_repo(
        self, repo_id: str, files: Mapping[str, bytes], *, repo_type: str = "dataset", **options
    ) -> StandinRepo:
        repo = StandinRepo(repo_id, repo_type, **options)
        repo.commit(files)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def downloads(self) -> list[str]:
        """Paths of the file bodies served (GET on resolve URLs)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]

    def __enter__(self) -> HubStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Refused(Exception):
    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _handler_for(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet
            pass

        # ------------------------------------------------------------------------------ plumbing
        def do_GET(self):
            self._serve(head=False)

        def do_HEAD(self):
            self._serve(head=True)

        def do_POST(self):
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            url = urlsplit(self.path)
            hub.requests.append((self.command, url.path))
            try:
                self._check_token()
                if url.path.startswith("/api/"):
                    self._api(url.path[len("/api/") :], parse_qs(url.query))
                else:
                    self._resolve(url.path.lstrip("/"), head)
            except _Refused as e:
                headers = {"X-Error-Code": e.code, "X-Error-Message": e.message}
                self._reply(e.status, json.dumps({"error": e.message}).encode(), "application/json", headers)

        def _reply(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: Mapping[str, str | None] = {},
            head: bool = False,
        ):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                if value is not None:
                    self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, obj, headers: Mapping[str, str] = {}) -> None:
            self._reply(200, json.dumps(obj).encode(), "application/json", headers)

        def _token(self) -> str | None:
            auth = self.headers.get("authorization") or ""
            return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

        def _check_token(self) -> None:
            token = self._token()
            if token is not None and token not in hub.valid_tokens:
                raise _Refused(401, None, INVALID_TOKEN_MESSAGE)

        def _check_access(self, repo: StandinRepo) -> None:
            if not repo.gated or self._token() in repo.granted:
                return
            restricted = f"Access to {repo.repo_type} {repo.repo_id} is restricted"
            if self._token() is None:
                raise _Refused(
                    401, "GatedRepo", f"{restricted}. You must have access to it and be authenticated to access it."
                )
            raise _Refused(403, "GatedRepo", f"{restricted} and you are not in the authorized list.")

        # ------------------------------------------------------------------------------ routes
        def _repo(self, kind: str, parts: list[str]) -> tuple[StandinRepo, list[str]]:
            if kind not in KINDS or len(parts) < 2:
                raise _Refused(404, "RepoNotFound", "Repository not found")
            repo = hub.repos.get((KINDS[kind], f"{parts[0]}/{parts[1]}"))
            if repo is None:
                raise _Refused(404, "RepoNotFound", "Repository not found")
            return repo, parts[2:]

        def _commit(self, repo: StandinRepo, revision: str) -> str:
            commit = repo.resolve(unquote(revision))
            if commit is None:
                raise _Refused(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
            return commit

        def _api(self, path: str, query: dict[str, list[str]]) -> None:
            kind, *rest = path.split("/")
            repo, rest = self._repo(kind, rest)
            if not rest or rest[0] == "revision":
                commit = self._commit(repo, rest[1] if rest else "main")
                files = repo.commits[commit]
                siblings = [{"rfilename": p} for p in sorted(files)]
                gated = "manual" if repo.gated else False
                self._json({"id": repo.repo_id, "sha": commit, "private": False, "gated": gated, "siblings": siblings})
            elif rest[0] == "auth-check":
                self._check_access(repo)
                self._json({})
            elif rest[0] == "tree":
                self._tree(repo, rest[1], unquote("/".join(rest[2:])), query)
            elif rest[0] == "paths-info":
                commit = self._commit(repo, rest[1])
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                files = repo.commits[commit]
                expand = form.get("expand", ["False"])[0] == "True"
                wanted = [p.strip("/") for p in form.get("paths", [])]
                known = [p for p in wanted if p in files or _children(files, p, False)]
                self._json([_entry(p, files, expand, commit) for p in known])
            else:
                raise _Refused(404, None, f"no route {path}")

        def _tree(self, repo: StandinRepo, revision: str, directory: str, query: dict[str, list[str]]) -> None:
            commit = self._commit(repo, revision)
            files = repo.commits[commit]
            directory = directory.strip("/")
            if directory and (directory in files or not _children(files, directory, False)):
                raise _Refused(404, "EntryNotFound", f"{directory} does not exist on {revision}")
            recursive = query.get("recursive", ["False"])[0] == "True"
            expand = query.get("expand", ["False"])[0] == "True"
            paths = _children(files, directory, recursive)
            start = int(query.get("cursor", ["0"])[0])
            page = paths[start : start + hub.page_size]
            headers = {}
            if start + hub.page_size < len(paths):
                base = f"{hub.url}/api/{KINDS_URL[repo.repo_type]}/{repo.repo_id}/tree/{revision}"
                suffix = "/" + quote(directory, safe="") if directory else ""
                link = f"{base}{suffix}?recursive={recursive}&expand={expand}&cursor={start + hub.page_size}"
                headers["Link"] = f'<{link}>; rel="next"'
            self._json([_entry(p, files, expand, commit) for p in page], headers)

        def _resolve(self, path: str, head: bool) -> None:
            parts = path.split("/")
            kind = "datasets" if parts[0] == "datasets" else "models"
            if parts[0] == "datasets":
                parts = parts[1:]
            repo, rest = self._repo(kind, parts)
            if len(rest) < 3 or rest[0] != "resolve":
                raise _Refused(404, None, f"no route {path}")
            self._check_access(repo)
            commit = self._commit(repo, rest[1])
            file_path = unquote("/".join(rest[2:]))
            files = repo.commits[commit]
            if file_path not in files:
                raise _Refused(404, "EntryNotFound", f"{file_path} does not exist on {rest[1]}")
            data = files[file_path]
            etag = hashlib.sha256(data).hexdigest() if is_lfs(file_path) else git_blob_id(data)
            if file_path in repo.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            status, body = 200, data
            headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
            wanted = self.headers.get("range")
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[len("bytes=") :].partition("-")
                start, end = int(first), (int(last) + 1 if last else len(data))
                body = data[start:end]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
            self._reply(status, body, "application/octet-stream", headers, head=head)

    return Handler


KINDS_URL = {kind: url for url, kind in KINDS.items()}


def point_huggingface_hub_at(monkeypatch, url: str) -> None:
    """In this (test) process, what ``HF_ENDPOINT={url}`` and ``HF_HUB_OFFLINE=0`` do when huggingface_hub
    is imported (it reads both once, into these constants); subprocesses get the variables themselves.
    ``$HF_TOKEN`` is cleared: a test sets the credential it means."""
    from huggingface_hub import HfFileSystem, constants, file_download
    from huggingface_hub.utils import reset_sessions

    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reset_sessions()  # sessions made offline hold an adapter that refuses every request
    HfFileSystem.clear_instance_cache()  # an instance keeps the endpoint it was made with


def forget_huggingface_hub_state() -> None:
    """Drop sessions and filesystem instances made against a stand-in (after the test)."""
    from huggingface_hub import HfFileSystem
    from huggingface_hub.utils import reset_sessions

    reset_sessions()
    HfFileSystem.clear_instance_cache()
