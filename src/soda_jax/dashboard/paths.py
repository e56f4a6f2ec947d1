"""Confinement: every path the dashboard reads is resolved under its prefix, or refused.

A request names a path relative to the prefix (or, as the executor records them, absolute). It is
refused (`OutsidePrefix`, a 404) when, after normalisation, it is not inside the prefix:
``..`` segments, absolute paths elsewhere, a URL of another bucket or filesystem, percent-encoded
forms that decode to any of these, and (on a local disk) symlinks whose target lies outside.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

import fsspec.utils

from soda_jax import fileio
from soda_jax.contracts import EXPERIMENT_KEY, EXPERIMENTS_DIR


class OutsidePrefix(LookupError):
    """The path is not inside the dashboard's prefix (answered as 404, like a missing file)."""


@dataclass(frozen=True)
class Resolved:
    rel: str
    """Path relative to the prefix, '/'-separated ("" is the prefix itself)."""
    url: str
    """The same as a local path or fsspec URL, for `soda_jax.fileio`."""


class PrefixPaths:
    """Normalises request paths against one prefix (a local directory or an fsspec URL)."""

    def __init__(self, prefix: str):
        # from the URL alone: instantiating a cloud filesystem may look for credentials
        self.local = fsspec.utils.get_protocol(prefix) in ("file", "local")
        if self.local:
            prefix = os.path.realpath(prefix.removeprefix("file://"))
        self.prefix = prefix.rstrip("/") or "/"
        self._scheme, self._root = self._split(self.prefix)

    @staticmethod
    def _split(url: str) -> tuple[str, str]:
        scheme, sep, rest = url.partition("://")
        return (scheme, rest) if sep else ("", url)

    def resolve(self, requested: str) -> Resolved:
        """The location of ``requested`` (relative to the prefix, or absolute) inside the prefix."""
        if "\x00" in requested or "%" in requested or "\\" in requested:
            # Starlette has already decoded the request once; a '%' left over is a second encoding
            # layer (%252e%252e%252f), and no file the executor writes has one in its name.
            raise OutsidePrefix(requested)
        scheme, path = self._split(requested)
        if scheme or requested.startswith("/"):
            rel = self._relative_to_prefix(scheme, path)
        else:
            rel = requested
        rel = posixpath.normpath(rel) if rel else ""
        if rel == ".":
            rel = ""
        if any(part == ".." for part in rel.split("/")):
            raise OutsidePrefix(requested)
        url = fileio.join(self.prefix, rel) if rel else self.prefix
        if self.local:
            real = os.path.realpath(url)
            if os.path.commonpath([real, self.prefix]) != self.prefix:
                raise OutsidePrefix(requested)  # a symlink (somewhere on the way) points out
        return Resolved(rel, url)

    def _relative_to_prefix(self, scheme: str, path: str) -> str:
        if scheme != self._scheme and not (self.local and scheme == "file"):
            raise OutsidePrefix(f"{scheme}://{path}")
        normalised = posixpath.normpath(path if path.startswith("/") or scheme else "/" + path)
        root = posixpath.normpath(self._root)
        if self.local:
            # The executor records the prefix as it was given; compare real paths.
            normalised = os.path.realpath(normalised)
        if normalised == root:
            return ""
        if not normalised.startswith(root.rstrip("/") + "/"):
            raise OutsidePrefix(path)
        return normalised[len(root.rstrip("/")) + 1 :]

    def recorded(self, path: str, recorded_prefix: str | None) -> Resolved:
        """A path an experiment file recorded (absolute, under the prefix it ran with), here.

        The prefix may since have moved (a copied ``demo-output``): a path under the recorded
        prefix is re-rooted onto this one; anything else must already be inside this prefix.
        """
        if recorded_prefix:
            base = recorded_prefix.rstrip("/")
            if path == base:
                return self.resolve("")
            if path.startswith(base + "/"):
                return self.resolve(path[len(base) + 1 :])
        return self.resolve(path)

    def experiment_file(self, key: str) -> Resolved:
        if not EXPERIMENT_KEY.match(key):
            raise OutsidePrefix(key)
        return self.resolve(f"{EXPERIMENTS_DIR}/{key}.json")
