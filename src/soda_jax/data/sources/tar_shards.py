"""Streaming tar reading over fsspec (local, gs://): archive order, one member in memory at a time."""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from collections.abc import Iterator

from soda_jax import fileio

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
CORRUPT_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
"""What a truncated or garbled (gzipped) tar raises while streaming."""


def split_member_name(name: str) -> tuple[str, str]:
    """``dir/abc.def.mp3`` -> (``abc.def``, ``.mp3``): the webdataset key and its extension."""
    base = posixpath.basename(name)
    stem, dot, ext = base.rpartition(".")
    return (stem, f".{ext.lower()}") if dot else (base, "")


def strip_tar_suffix(name: str) -> str:
    for suffix in TAR_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def iter_tar(url: str) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for each regular file of a (possibly gzipped) tar.

    Raises `tarfile.TarError` (or EOFError / OSError) when the archive is corrupt; members
    before the corruption have already been yielded, so callers can keep them.
    """
    fs, path = fileio.filesystem(url)
    with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                yield member.name, handle.read()
