"""Load a LeRobotDataset v3 (local folder or Hub repo id) into per-episode NumPy arrays, without decoding video.

The quality report needs, per episode, the action sequence, the end-effector path (``observation.state[:3]``
in LIBERO's 8-d state: eef position, axis-angle, two gripper joints), the task string and, when recorded, a
success flag. Loading goes through :class:`~lerobot.datasets.lerobot_dataset.LeRobotDataset` so Hub datasets
are fetched and checked by LeRobot itself (videos are not downloaded: ``download_videos=False``), and the tabular
columns are read from its Arrow table, never from decoded frames.

This module also holds the file-level finalization check shared by the report and publishing code: a dataset
whose writer was never ``finalize()``-d or that lost files is refused with one :class:`DatasetError` instead of
LeRobot silently trying to download the missing files from the Hub.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_diffrl.data.provenance import PROVENANCE_FILE, read_provenance
from lerobot_diffrl.errors import DatasetError
from lerobot_diffrl.hub import hub_offline

#: Frame-level columns read as a per-episode success flag, first hit wins (``next.success`` is lerobot-eval's).
SUCCESS_COLUMNS = ("next.success", "success", "is_success")
#: Where the generation stage records how a dataset was made (see :mod:`lerobot_diffrl.data.card`).
PROVENANCE_PATH = Path(PROVENANCE_FILE)
#: Number of leading ``observation.state`` dimensions that are the end-effector position.
EEF_DIMS = 3

_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Episode:
    """One episode's arrays: ``actions`` (T, A) and ``eef`` (T, 3) as float64."""

    index: int
    task: str
    actions: np.ndarray
    eef: np.ndarray
    success: bool | None = None

    @property
    def length(self) -> int:
        return len(self.actions)


@dataclass
class EpisodeSet:
    """All episodes of one dataset, with where they came from."""

    label: str
    source: str
    root: Path
    repo_id: str | None
    fps: int
    episodes: list[Episode]
    provenance: dict[str, Any] | None = None
    success_column: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        """Task strings in order of first appearance."""
        return list(dict.fromkeys(ep.task for ep in self.episodes))

    def by_task(self) -> dict[str, list[Episode]]:
        groups: dict[str, list[Episode]] = {}
        for ep in self.episodes:
            groups.setdefault(ep.task, []).append(ep)
        return groups


def _read_info(root: Path) -> dict[str, Any]:
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{root} is not a LeRobotDataset: {info_path.relative_to(root)} is missing")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{info_path} is not valid JSON: {err}") from None
    for key in ("codebase_version", "total_episodes", "total_frames", "features", "data_path"):
        if key not in info:
            raise DatasetError(f"{info_path} has no '{key}' entry; not a LeRobotDataset v3.0")
    if info["codebase_version"] != "v3.0":
        raise DatasetError(
            f"{root} is a LeRobotDataset {info['codebase_version']}, this package reads v3.0 "
            "(convert it with lerobot's lerobot/datasets/v30/convert_dataset_v21_to_v30.py)"
        )
    return info


def _read_parquet_dir(root: Path, sub: str) -> pa.Table:
    paths = sorted((root / sub).glob("*/*.parquet"))
    if not paths:
        raise DatasetError(f"{root} is not finalized: no parquet files under {sub}/")
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowException, OSError) as err:
            raise DatasetError(
                f"{root} is not finalized: {path.relative_to(root)} cannot be read ({err}); "
                "the writer must call LeRobotDataset.finalize()"
            ) from None
    return pa.concat_tables(tables, promote_options="default")


def check_finalized(root: Path, *, videos: bool = True) -> dict[str, Any]:
    """Check that ``root`` holds a complete, finalized LeRobotDataset v3.0; return its ``info.json``.

    Checks: ``meta/info.json`` (v3.0), ``meta/tasks.parquet``, readable episode metadata (a parquet file without
    its footer means ``finalize()`` was not called) with ``total_episodes`` rows whose lengths sum to
    ``total_frames``, every data file they reference present and together holding ``total_frames`` rows, and
    (with ``videos``) every referenced video file present.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    info = _read_info(root)
    if not (root / "meta" / "tasks.parquet").is_file():
        raise DatasetError(f"{root} is not finalized: meta/tasks.parquet is missing")
    episodes = _read_parquet_dir(root, "meta/episodes")
    n_eps, n_frames = info["total_episodes"], info["total_frames"]
    if episodes.num_rows != n_eps:
        raise DatasetError(
            f"{root} is not finalized: meta/episodes lists {episodes.num_rows} episodes, info.json says {n_eps}"
        )
    if n_eps == 0:
        raise DatasetError(f"{root} has no episodes")
    lengths = episodes.column("length").to_pylist()
    if sum(lengths) != n_frames:
        raise DatasetError(
            f"{root} is not finalized: episode lengths sum to {sum(lengths)} frames, info.json says {n_frames}"
        )

    def referenced(template: str, prefix: str, **fmt: str) -> list[str]:
        chunks = episodes.column(f"{prefix}/chunk_index").to_pylist()
        files = episodes.column(f"{prefix}/file_index").to_pylist()
        pairs = sorted(set(zip(chunks, files, strict=True)))
        return [template.format(chunk_index=c, file_index=f, **fmt) for c, f in pairs]

    data_files = referenced(info["data_path"], "data")
    missing = [f for f in data_files if not (root / f).is_file()]
    if missing:
        raise DatasetError(f"{root} is incomplete: data file(s) missing: {', '.join(missing)}")
    rows = 0
    for rel in data_files:
        try:
            rows += pq.read_metadata(root / rel).num_rows
        except (pa.ArrowException, OSError) as err:
            raise DatasetError(f"{root} is not finalized: {rel} cannot be read ({err})") from None
    if rows != n_frames:
        raise DatasetError(f"{root} is incomplete: data files hold {rows} frames, info.json says {n_frames}")

    if videos:
        video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
        for key in video_keys:
            if f"videos/{key}/chunk_index" not in episodes.column_names:
                raise DatasetError(f"{root} is not finalized: meta/episodes has no video index for '{key}'")
            files = referenced(info["video_path"], f"videos/{key}", video_key=key)
            missing = [f for f in files if not (root / f).is_file()]
            if missing:
                raise DatasetError(f"{root} is incomplete: video file(s) missing: {', '.join(missing)}")
    return info


def looks_like_repo_id(source: str) -> bool:
    return bool(_REPO_ID_RE.match(source)) and not source.startswith((".", "/", "~"))


def open_lerobot_dataset(repo_id: str, root: Path | None, source: str, *, videos: bool = False) -> Any:
    """``LeRobotDataset(repo_id, root)`` (videos fetched only with ``videos``: the metrics never decode them),
    with LeRobot's and the Hub's errors made readable."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.utils import CompatibilityError

    try:
        return LeRobotDataset(repo_id, root=root, download_videos=videos)
    except OfflineModeIsEnabled:
        raise DatasetError(
            f"dataset '{source}' is not in the local cache and HF_HUB_OFFLINE is set; "
            "pass a local dataset folder or unset HF_HUB_OFFLINE"
        ) from None
    except (HfHubHTTPError, CompatibilityError, OSError, ValueError, KeyError, pa.ArrowException) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatasetError(f"cannot load dataset '{source}': {type(err).__name__}: {reason}") from None


def open_dataset(source: str, *, videos: bool = False) -> tuple[Any, Path, str | None]:
    """Resolve ``source`` (local folder, else Hub repo id) to ``(LeRobotDataset, root, repo_id or None)``.

    ``videos``: also require (local folder) or download (Hub) the video files, for copying the dataset.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        check_finalized(path, videos=videos)
        return open_lerobot_dataset(f"local/{path.resolve().name}", path, source, videos=videos), path, None
    if not looks_like_repo_id(source):
        raise DatasetError(f"dataset '{source}' not found: no such folder, and it is not a Hub repo id")
    from lerobot.utils.constants import HF_LEROBOT_HOME

    cache = HF_LEROBOT_HOME / source
    if hub_offline() and not (cache / "meta" / "info.json").is_file():
        raise DatasetError(
            f"dataset '{source}' is neither a local folder nor in the LeRobot cache ({cache}), and "
            "HF_HUB_OFFLINE is set so the Hub cannot be asked; pass a local folder or unset HF_HUB_OFFLINE"
        )
    existed = cache.exists()
    try:
        dataset = open_lerobot_dataset(source, None, source, videos=videos)
    except DatasetError:
        if not existed:  # LeRobotDataset creates the cache folder before downloading; leave nothing behind
            shutil.rmtree(cache, ignore_errors=True)
        raise
    return dataset, Path(dataset.root), source


def column_2d(table: pa.Table, name: str) -> np.ndarray:
    """An Arrow column of vectors (or scalars) as a float64 (rows, width) array."""
    col = table.column(name).combine_chunks()
    n = len(col)
    if (
        pa.types.is_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float64).reshape(n, -1)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, 1)


def _require_features(info: dict[str, Any], source: str) -> None:
    features = info.get("features", {})
    for key, min_dim in (("action", 1), ("observation.state", EEF_DIMS)):
        if key not in features:
            raise DatasetError(
                f"dataset '{source}' has no '{key}' feature (it has: {', '.join(sorted(features))}); "
                "the quality report needs 'action' and 'observation.state' (eef position first)"
            )
        shape = tuple(features[key].get("shape") or ())
        if len(shape) != 1 or shape[0] < min_dim:
            raise DatasetError(
                f"dataset '{source}': feature '{key}' has shape {shape}, expected a vector of at least "
                f"{min_dim} values"
            )


def load_episode_set(source: str, label: str | None = None) -> EpisodeSet:
    """Load ``source`` (a local dataset folder or a Hub repo id) into an :class:`EpisodeSet`."""
    dataset, root, repo_id = open_dataset(source)
    return episode_set_from_dataset(dataset, root, repo_id, source, label)


def episode_set_from_dataset(
    dataset: Any, root: Path, repo_id: str | None, source: str, label: str | None = None
) -> EpisodeSet:
    """The :class:`EpisodeSet` of an opened ``LeRobotDataset`` (what :func:`open_dataset` returns)."""
    info = dataset.meta.info
    _require_features(info, source)
    tasks_df = dataset.meta.tasks
    task_by_index = {int(i): str(t) for t, i in zip(tasks_df.index, tasks_df["task_index"], strict=True)}
    success_column = next((c for c in SUCCESS_COLUMNS if c in info["features"]), None)
    columns = ["index", "episode_index", "task_index", "action", "observation.state"]
    columns += [success_column] if success_column else []
    table = dataset.hf_dataset.select_columns(columns).with_format("arrow")[:]
    order = np.lexsort(
        (table.column("index").to_numpy(), table.column("episode_index").to_numpy())
    )  # by episode, then by frame
    table = table.take(pa.array(order))
    ep_index = table.column("episode_index").to_numpy()
    actions = column_2d(table, "action")
    eef = column_2d(table, "observation.state")[:, :EEF_DIMS]
    task_index = table.column("task_index").to_numpy()
    success = column_2d(table, success_column)[:, 0] > 0.5 if success_column else None
    starts = np.flatnonzero(np.r_[True, ep_index[1:] != ep_index[:-1]])
    ends = np.r_[starts[1:], len(ep_index)]
    episodes = []
    for s, e in zip(starts, ends, strict=True):
        t_idx = int(task_index[s])
        if t_idx not in task_by_index:
            raise DatasetError(f"dataset '{source}': task_index {t_idx} is not in meta/tasks.parquet")
        episodes.append(
            Episode(
                index=int(ep_index[s]),
                task=task_by_index[t_idx],
                actions=actions[s:e],
                eef=eef[s:e],
                success=bool(success[s:e].any()) if success is not None else None,
            )
        )
    if not episodes:
        raise DatasetError(f"dataset '{source}' has no frames")
    return EpisodeSet(
        label=label or (repo_id or Path(source).name),
        source=source,
        root=root,
        repo_id=repo_id,
        fps=int(info["fps"]),
        episodes=episodes,
        provenance=read_provenance(root),
        success_column=success_column,
        info=info,
    )
