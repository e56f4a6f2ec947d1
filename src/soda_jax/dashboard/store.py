"""What the dashboard shows, read from an executor prefix (a local path or any fsspec URL).

Only what the executor and the steps wrote is read (see README "What every step leaves behind"),
only under the prefix (`PrefixPaths`), and every file through `load_json`, so one malformed file
becomes an error on its item instead of a failed page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import EXPERIMENTS_DIR, INFO_FILE, LEASE_FILE, PROVENANCE_FILE, STATUS_FILE
from soda_jax.dashboard.files import Item, load_json
from soda_jax.dashboard.paths import OutsidePrefix, PrefixPaths, Resolved
from soda_jax.execution.status import STATUS_UNKNOWN, STATUS_WAITING, LeaseTiming, read_status

STATUSES = ("WAITING", "RUNNING", "SUCCESS", "FAILED", "DEP_FAILED", "UNKNOWN")


@dataclass(frozen=True)
class LeaseView:
    owner: str | None
    heartbeat: float | None
    """Unix time of the holder's last refresh."""

    @property
    def age_s(self) -> float | None:
        return None if self.heartbeat is None else max(0.0, time.time() - self.heartbeat)

    @property
    def stale(self) -> bool:
        return self.age_s is not None and self.age_s > LeaseTiming().stale_after_s


@dataclass
class StepView:
    name: str
    rel: str | None
    """Output directory relative to the prefix; None when the recorded path is outside it."""
    status: str = STATUS_WAITING
    status_time: float | None = None
    info: Item = field(default_factory=Item)
    provenance: Item = field(default_factory=Item)
    lease: LeaseView | None = None
    errors: list[str] = field(default_factory=list)
    """What could not be read about this step (status, info, provenance, lease)."""
    depends_on: list[int] = field(default_factory=list)
    """Indices (in the experiment's step list) of the steps this one reads."""

    @property
    def prov(self) -> dict[str, Any]:
        return self.provenance.value if isinstance(self.provenance.value, dict) else {}


@dataclass
class ExperimentView:
    key: str
    record: Item
    steps: list[StepView] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return self.record.value if isinstance(self.record.value, dict) else {}

    @property
    def created_at(self) -> str:
        value = self.data.get("created_at")
        return value if isinstance(value, str) else ""

    @property
    def description(self) -> str:
        value = self.data.get("description")
        return value if isinstance(value, str) else ""

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.status] = counts.get(step.status, 0) + 1
        return counts

    def wall_seconds(self) -> float | None:
        """From the first step's start to the last one's end (now, while one is running)."""
        starts, ends = [], []
        for step in self.steps:
            start, end = parse_time(step.prov.get("started_at")), parse_time(step.prov.get("ended_at"))
            if start is not None:
                starts.append(start)
                ends.append(end if end is not None else (time.time() if step.status == "RUNNING" else start))
        return max(ends) - min(starts) if starts else None


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def read_lease(url: str) -> tuple[LeaseView | None, str | None]:
    item = load_json(fileio.join(url, LEASE_FILE))
    if item.error and item.error.endswith("empty (half-written?)"):
        return None, None  # mid-rewrite under flock; the executor's own reader sees no lease too
    if item.error or item.value is None:
        return None, item.error
    owner, beat = item.value.get("owner"), item.value.get("heartbeat")
    if beat is not None and not isinstance(beat, (int, float)):
        return None, f"{LEASE_FILE}: 'heartbeat' is not a number"
    return LeaseView(owner if isinstance(owner, str) else None, beat), None


class PrefixStore:
    def __init__(self, prefix: str):
        self.paths = PrefixPaths(prefix)
        self.prefix = self.paths.prefix

    # ------------------------------------------------------------------------------- steps
    def step(self, rel: str | None, name: str = "") -> StepView:
        view = StepView(name=name, rel=rel)
        if rel is None:
            view.status = STATUS_UNKNOWN
            view.errors.append("output path is outside this dashboard's prefix")
            return view
        url = self.paths.resolve(rel).url
        view.status, view.status_time, error = read_status(url, tolerant=True)
        view.info = load_json(fileio.join(url, INFO_FILE))
        view.provenance = load_json(fileio.join(url, PROVENANCE_FILE))
        view.lease, lease_error = read_lease(url)
        view.errors += [e for e in (error, view.info.error, view.provenance.error, lease_error) if e]
        if not view.name:
            info_name = view.info.value.get("name") if view.info.ok else None
            view.name = info_name if isinstance(info_name, str) else rel
        return view

    def resolve_step(self, requested: str) -> Resolved:
        """A step page's path: inside the prefix and holding executor metadata, else `OutsidePrefix`."""
        resolved = self.paths.resolve(requested)
        if not any(fileio.exists(fileio.join(resolved.url, f)) for f in (INFO_FILE, STATUS_FILE)):
            raise OutsidePrefix(f"no step output at {requested!r}")
        return resolved

    def recorded_rel(self, path: Any, recorded_prefix: str | None) -> str | None:
        if not isinstance(path, str):
            return None
        try:
            return self.paths.recorded(path, recorded_prefix).rel
        except OutsidePrefix:
            return None

    def recorded_prefix_of(self, view: StepView) -> str | None:
        """The prefix the step ran under, from its recorded output path (the prefix may have moved)."""
        recorded = view.info.value.get("output_path") if view.info.ok else None
        if isinstance(recorded, str) and view.rel and recorded.endswith("/" + view.rel):
            return recorded[: -len(view.rel) - 1]
        return None

    # -------------------------------------------------------------------------- experiments
    def experiment_keys(self) -> list[str]:
        directory = self.paths.resolve(EXPERIMENTS_DIR).url
        fs, path = fileio.filesystem(directory)
        try:
            names = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []
        keys = sorted(n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith("."))
        return [key for key in keys if self._inside(key)]

    def _inside(self, key: str) -> bool:
        """False for a name the prefix cannot serve (a symlink out of it, an odd file name)."""
        try:
            self.paths.experiment_file(key)
        except OutsidePrefix:
            return False
        return True

    def experiment(self, key: str, with_steps: bool = True) -> ExperimentView:
        view = ExperimentView(key, load_json(self.paths.experiment_file(key).url))
        if view.record.value is None and view.record.error is None:
            raise OutsidePrefix(f"no experiment {key!r}")
        steps = view.data.get("steps")
        if not isinstance(steps, list):
            if view.record.ok:
                view.record = Item(view.record.value, f"{key}.json: no 'steps' list")
            return view
        recorded_prefix = view.data.get("prefix") if isinstance(view.data.get("prefix"), str) else None
        index_of: dict[str, int] = {}
        for i, step in enumerate(s for s in steps if isinstance(s, dict)):
            rel = self.recorded_rel(step.get("output_path"), recorded_prefix)
            name = named if isinstance(named := step.get("name"), str) else f"step {i}"
            view.steps.append(self.step(rel, name) if with_steps else StepView(name, rel))
            if isinstance(step.get("output_path"), str):
                index_of[step["output_path"]] = i
        for i, step in enumerate(s for s in steps if isinstance(s, dict)):
            deps = listed if isinstance(listed := step.get("dependencies"), list) else []
            view.steps[i].depends_on = [index_of[d] for d in deps if isinstance(d, str) and d in index_of]
        return view

    def experiments(self) -> list[ExperimentView]:
        """Every experiment with its steps' status, newest first."""
        views = [self.experiment(key) for key in self.experiment_keys()]
        return sorted(views, key=lambda v: v.created_at, reverse=True)

    def experiments_of_step(self, rel: str) -> list[str]:
        """Keys of the experiments that include the step at ``rel``."""
        return [
            k for k in self.experiment_keys() if any(s.rel == rel for s in self.experiment(k, with_steps=False).steps)
        ]
