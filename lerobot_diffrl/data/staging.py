"""A shard's staging area: one durable record per finished attempt, written atomically.

Why staging: lerobot's v3 writer appends many episodes to one parquet file and one MP4 per camera, and those files
are only valid once ``finalize()`` closes them (parquet footers), so a process killed mid-run leaves nothing
loadable, and re-opening a finalized dataset to append starts new files each time. Here every finished attempt
is committed on its own, the moment it is known, by renaming a complete temporary directory:

- ``episodes/<key>/``: a kept episode: ``frames.parquet`` (tabular columns), one MP4 per camera (already
  encoded), ``episode.json`` (attempt, task, length, success, per-episode stats);
- ``attempts/<key>.json``: an attempt that was not kept (a failure when only successes are kept).

A rename is atomic, so after a crash (SIGKILL included) an attempt is either fully committed or absent; leftovers
(``.tmp-*``) are deleted on resume and the attempt runs again. Packing (:mod:`lerobot_diffrl.data.packing`)
turns the committed episodes into a LeRobotDataset v3 in one pass.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lerobot_diffrl.data.sharding import Attempt
from lerobot_diffrl.errors import DatasetError

EPISODES_DIR = "episodes"
ATTEMPTS_DIR = "attempts"
FRAMES_FILE = "frames.parquet"
EPISODE_FILE = "episode.json"
TMP_PREFIX = ".tmp-"


@dataclass
class AttemptRecord:
    """What is known about a finished attempt (kept or not)."""

    suite: str
    task_id: int
    number: int
    init_index: int
    seed: int
    success: bool
    kept: bool
    length: int
    task: str = ""
    aborted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, attempt: Attempt, **kw: Any) -> AttemptRecord:
        return cls(
            suite=attempt.suite,
            task_id=attempt.task_id,
            number=attempt.number,
            init_index=attempt.init_index,
            seed=attempt.seed,
            **kw,
        )

    @property
    def key(self) -> str:
        from lerobot_diffrl.data.sharding import attempt_key

        return attempt_key(self.suite, self.task_id, self.number)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (not needed against SIGKILL, needed against power loss)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json_atomic(path: Path, data: dict[str, Any], sort_keys: bool = True) -> None:
    """Write ``path`` so that readers see the old content or the complete new one, never a torn file."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=sort_keys)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Staging:
    """The staging directory of one shard."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.episodes = self.root / EPISODES_DIR
        self.attempts = self.root / ATTEMPTS_DIR

    def create(self) -> None:
        self.episodes.mkdir(parents=True, exist_ok=True)
        self.attempts.mkdir(parents=True, exist_ok=True)

    def clean_partial(self) -> int:
        """Delete uncommitted leftovers of a killed run; returns how many were removed."""
        removed = 0
        for folder in (self.episodes, self.attempts):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name.startswith(TMP_PREFIX):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    removed += 1
        return removed

    # -- writing --------------------------------------------------------------------------------------
    def temp_episode_dir(self, key: str) -> Path:
        path = self.episodes / f"{TMP_PREFIX}{key}-{os.getpid()}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def commit_episode(self, tmp_dir: Path, record: AttemptRecord, info: dict[str, Any]) -> Path:
        """Write ``episode.json`` into ``tmp_dir`` and rename it into place: the commit point."""
        with open(tmp_dir / EPISODE_FILE, "w") as f:
            json.dump({"attempt": asdict(record), **info}, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        for child in tmp_dir.iterdir():
            if child.name != EPISODE_FILE:
                fsync_file(child)
        final = self.episodes / record.key
        if final.exists():  # the same attempt committed twice cannot happen within a run; keep the first
            shutil.rmtree(tmp_dir)
            return final
        os.rename(tmp_dir, final)
        fsync_dir(self.episodes)
        return final

    def record_discarded(self, record: AttemptRecord) -> None:
        write_json_atomic(self.attempts / f"{record.key}.json", asdict(record))

    # -- reading --------------------------------------------------------------------------------------
    def kept_episodes(self) -> list[tuple[Path, dict[str, Any]]]:
        """Committed episodes as (directory, episode.json), sorted by (suite, task, attempt number)."""
        out = []
        if not self.episodes.is_dir():
            return out
        for entry in self.episodes.iterdir():
            if entry.name.startswith(TMP_PREFIX) or not entry.is_dir():
                continue
            try:
                meta = json.loads((entry / EPISODE_FILE).read_text())
            except (OSError, ValueError) as err:
                raise DatasetError(
                    f"staged episode {entry} is corrupt ({err}); delete it and resume"
                ) from err
            out.append((entry, meta))
        out.sort(key=lambda item: _order(item[1]["attempt"]))
        return out

    def finished(self) -> list[AttemptRecord]:
        """Every committed attempt record, kept or discarded."""
        records = [AttemptRecord(**meta["attempt"]) for _, meta in self.kept_episodes()]
        if self.attempts.is_dir():
            for entry in self.attempts.iterdir():
                if entry.name.startswith(TMP_PREFIX) or entry.suffix != ".json":
                    continue
                records.append(AttemptRecord(**json.loads(entry.read_text())))
        records.sort(key=lambda r: _order(asdict(r)))
        return records


def _order(attempt: dict[str, Any]) -> tuple[str, int, int]:
    return (attempt["suite"], int(attempt["task_id"]), int(attempt["number"]))
