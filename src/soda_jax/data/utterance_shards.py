"""Reading one shard of tokenized utterances (data contract section 1) into flat numpy arrays.

A shard is read whole with pyarrow: the ``codes`` list column becomes one flat int16 array plus row
offsets (no per-row Python objects), so audio ids for the whole shard are one vectorised pass.
Segments that cannot be used are skipped and counted by reason; a shard that breaks the contract's
structure (missing columns, a recording's rows not contiguous or not in time order) is an error
naming the file and the recording.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from soda_jax import fileio

COLUMNS = ("recording_id", "segment_id", "segment_index", "text", "speaker", "num_frames", "codes")
"""The section-1 columns the interleaver reads (start, end, language are not needed)."""
SKIP_CODES_LENGTH = "codes_length_not_num_codebooks_x_num_frames"
SKIP_CODES_RANGE = "codes_out_of_range"
SKIP_NO_AUDIO = "no_audio_frames"


class ShardFormatError(ValueError):
    """A shard that does not follow data contract section 1."""


@dataclass
class UtteranceShard:
    """One shard's usable segments, grouped by recording, audio as flat frame-major codes."""

    path: str
    recording_ids: list[str]
    """Recording of each group, in file order."""
    recording_rows: list[np.ndarray]
    """Kept row indices of each recording (time order)."""
    texts: list[str]
    speakers: list[str]
    num_frames: np.ndarray
    codes: np.ndarray
    """All rows' codes back to back (int16); rows skipped for their length hold none."""
    code_offsets: np.ndarray
    """Row i's codes are ``codes[code_offsets[i]:code_offsets[i+1]]`` (every offset a multiple of K)."""
    skipped: Counter = field(default_factory=Counter)
    """Segments skipped, by reason."""


def read_utterance_shard(path: str, num_codebooks: int, codebook_size: int) -> UtteranceShard:
    """Read and check one parquet shard of tokenized utterances."""
    fs, fs_path = fileio.filesystem(path)
    with fs.open(fs_path, "rb") as f:
        schema_names = set(pq.read_schema(f).names)
        missing = [c for c in COLUMNS if c not in schema_names]
        if missing:
            raise ShardFormatError(f"{path}: missing columns {missing} (data contract section 1)")
        f.seek(0)
        table = pq.read_table(f, columns=list(COLUMNS))

    codes_col = table.column("codes").combine_chunks() if table.num_rows else pa.array([], pa.list_(pa.int16()))
    offsets = codes_col.offsets.to_numpy().astype(np.int64)
    codes = codes_col.values.to_numpy(zero_copy_only=False).astype(np.int16, copy=False)
    offsets = offsets - offsets[0]
    num_frames = table.column("num_frames").to_numpy().astype(np.int64)
    lengths = np.diff(offsets)
    skipped: Counter = Counter()

    usable = np.ones(table.num_rows, dtype=bool)
    wrong_length = lengths != num_frames * num_codebooks
    if wrong_length.any():
        skipped[SKIP_CODES_LENGTH] += int(wrong_length.sum())
        usable &= ~wrong_length
        keep_codes = np.repeat(~wrong_length, lengths)  # keep frame alignment of the flat array
        codes = codes[keep_codes]
        offsets = np.concatenate([[0], np.cumsum(np.where(wrong_length, 0, lengths))])
    bad_positions = np.flatnonzero((codes < 0) | (codes >= codebook_size))
    if bad_positions.size:
        bad_rows = np.unique(np.searchsorted(offsets, bad_positions, side="right") - 1)
        skipped[SKIP_CODES_RANGE] += int(bad_rows.size)
        usable[bad_rows] = False
    no_audio = usable & (num_frames == 0)
    if no_audio.any():
        skipped[SKIP_NO_AUDIO] += int(no_audio.sum())
        usable &= ~no_audio

    recording_ids, recording_rows = _group_recordings(path, table, usable)
    return UtteranceShard(
        path=path,
        recording_ids=recording_ids,
        recording_rows=recording_rows,
        texts=table.column("text").to_pylist(),
        speakers=table.column("speaker").to_pylist(),
        num_frames=num_frames,
        codes=codes,
        code_offsets=offsets,
        skipped=skipped,
    )


def _group_recordings(path: str, table: pa.Table, usable: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Runs of equal recording_id; each recording must be one run with increasing segment_index."""
    ids = np.asarray(table.column("recording_id").to_pylist(), dtype=object)
    if ids.size == 0:
        return [], []
    index = table.column("segment_index").to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1])
    ends = np.append(starts[1:], ids.size)
    names = [str(ids[s]) for s in starts]
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise ShardFormatError(f"{path}: rows of recording {repeated!r} are not contiguous (data contract section 1)")
    rows = []
    for name, s, e in zip(names, starts, ends):
        order = index[s:e]
        if (np.diff(order) <= 0).any():
            bad = s + 1 + int(np.argmax(np.diff(order) <= 0))
            raise ShardFormatError(
                f"{path}: recording {name!r} row {bad} (segment_id {table.column('segment_id')[bad].as_py()!r}) "
                f"has segment_index {int(index[bad])} after {int(index[bad - 1])}: rows must be in time order"
            )
        kept = np.arange(s, e)[usable[s:e]]
        rows.append(kept)
    keep = [i for i, r in enumerate(rows) if r.size]
    return [names[i] for i in keep], [rows[i] for i in keep]
