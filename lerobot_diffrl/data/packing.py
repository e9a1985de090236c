"""Staged episodes -> one LeRobotDataset v3 directory, in a single pass, written aside and renamed into place.

lerobot (0.6.1 as 0.4) builds a v3 dataset incrementally: each ``save_episode`` rewrites (re-muxes) the growing MP4 of
every camera, so writing E episodes copies O(E^2) video data, and ``aggregate_datasets`` does the same per source
dataset. Here the episodes are already encoded and committed (:mod:`lerobot_diffrl.data.staging`), so each v3
file is written once: per camera, episode MP4s are joined with lerobot's ``concatenate_video_files`` (stream copy,
no re-encoding) up to lerobot's file-size limit; tabular columns go into lerobot's parquet layout up to its limit.
All metadata (``meta/info.json``, ``meta/tasks.parquet``, ``meta/episodes/``, ``meta/stats.json``) is written by
lerobot's own :class:`LeRobotDatasetMetadata` (``create``, ``save_episode_tasks``, ``save_episode``,
``update_video_info``), so it has exactly lerobot's format, offsets and aggregated statistics (quantiles
included), and its parquet writer is always closed (what ``LeRobotDataset.finalize()`` does). Each episode's
quality figures (length, jerk, |delta a|, path length, SPARC, LDLJ; :mod:`lerobot_diffrl.data.quality`) go into
``meta/episodes/`` beside it, as ``quality/<name>`` columns, computed from its frames at the dataset's fps (the
control rate of generated data).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from lerobot_diffrl.data.features import video_keys
from lerobot_diffrl.data.quality import table_quality
from lerobot_diffrl.data.staging import FRAMES_FILE
from lerobot_diffrl.errors import DatasetError


def _groups(sizes_mb: Sequence[float], limit_mb: float) -> list[list[int]]:
    """Split items into consecutive files as lerobot does: a new file when the next item would reach the limit."""
    groups: list[list[int]] = []
    total = 0.0
    for i, size in enumerate(sizes_mb):
        if groups and total + size < limit_mb:
            groups[-1].append(i)
            total += size
        else:
            groups.append([i])
            total = size
    return groups


def _file_location(position: int, chunks_size: int) -> tuple[int, int]:
    return position // chunks_size, position % chunks_size


def _check_columns(directory: Path, table: pa.Table, features: dict[str, dict]) -> None:
    """A staged episode's columns and widths must be the dataset's: episodes staged with and without
    ``observation.environment_state`` (or with another width) cannot share a dataset."""
    expected = {k for k, ft in features.items() if ft["dtype"] not in ("video", "image")}
    expected -= {"episode_index", "index", "task_index", "frame_index", "timestamp"}  # lerobot's own columns
    columns = set(table.column_names) - {"frame_index", "timestamp"}
    missing, extra = sorted(expected - columns), sorted(columns - expected)
    if missing or extra:
        raise DatasetError(
            f"staged episode {directory} does not match the dataset's features"
            + (f"; it lacks {missing}" if missing else "")
            + (f"; it has extra {extra}" if extra else "")
            + " (staged by a run with other settings, e.g. --record_env_state?); delete it or use a new "
            "output_dir"
        )
    for key in expected:
        kind = table.schema.field(key).type
        shape = tuple(features[key]["shape"])
        width = kind.list_size if pa.types.is_fixed_size_list(kind) else 1
        if len(shape) == 1 and width != shape[0]:
            raise DatasetError(
                f"staged episode {directory}: {key} has {width} values per frame, the dataset {shape[0]} "
                "(staged with another --env_state_dim?); delete it or use a new output_dir"
            )


def _stats_from_json(stats: dict[str, dict[str, list]]) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in stats.items()}


def _write_tabular(
    staged: Sequence[tuple[Path, dict[str, Any]]],
    tmp: Path,
    meta: Any,
    features: dict[str, dict],
    fps: int,
    ep_meta: list[dict[str, Any]],
) -> None:
    """Tabular data: one parquet file per group of episodes, columns in lerobot's order and Arrow schema; each
    episode's file location, frame range and quality figures go into ``ep_meta``."""
    from lerobot.datasets.feature_utils import get_hf_features_from_features
    from lerobot.datasets.utils import DEFAULT_DATA_PATH

    hf_features = get_hf_features_from_features(meta.features)
    sizes = [(d / FRAMES_FILE).stat().st_size / 2**20 for d, _ in staged]
    frame_start = 0
    for position, group in enumerate(_groups(sizes, meta.data_files_size_in_mb)):
        chunk, file = _file_location(position, meta.chunks_size)
        tables = []
        for i in group:
            directory, m = staged[i]
            table = pq.read_table(directory / FRAMES_FILE)
            _check_columns(directory, table, features)
            n = table.num_rows
            if n != int(m["attempt"]["length"]):
                raise DatasetError(f"staged episode {directory} has {n} frames, its record says otherwise")
            table = table.append_column("episode_index", pa.array(np.full(n, i, dtype=np.int64)))
            table = table.append_column("index", pa.array(np.arange(frame_start, frame_start + n)))
            quality = table_quality(table, fps)  # the episode's figures, quality/<name> columns
            task_idx = meta.get_task_index(m["task"])
            table = table.append_column("task_index", pa.array(np.full(n, task_idx, dtype=np.int64)))
            tables.append(table)
            ep_meta[i].update(
                {
                    "data/chunk_index": chunk,
                    "data/file_index": file,
                    "dataset_from_index": frame_start,
                    "dataset_to_index": frame_start + n,
                    **quality,
                }
            )
            frame_start += n
        merged = pa.concat_tables(tables).select(list(hf_features)).cast(hf_features.arrow_schema)
        path = tmp / DEFAULT_DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(merged, path, compression="snappy")


def _write_videos(
    staged: Sequence[tuple[Path, dict[str, Any]]],
    tmp: Path,
    meta: Any,
    key: str,
    ep_meta: list[dict[str, Any]],
    progress: bool,
) -> None:
    """Camera ``key``: episode MP4s joined by stream copy into files of at most the size limit; each episode's
    file and time range go into ``ep_meta``."""
    from lerobot.datasets.utils import DEFAULT_VIDEO_PATH
    from lerobot.datasets.video_utils import concatenate_video_files, get_video_duration_in_s

    paths = [d / f"{key}.mp4" for d, _ in staged]
    sizes = [p.stat().st_size / 2**20 for p in paths]
    groups = _groups(sizes, meta.video_files_size_in_mb)
    bar = tqdm(groups, desc=f"joining {key} videos", unit="file", disable=not progress, leave=False)
    for position, group in enumerate(bar):
        chunk, file = _file_location(position, meta.chunks_size)
        dst = tmp / DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        dst.parent.mkdir(parents=True, exist_ok=True)
        offset = 0.0
        for i in group:
            duration = get_video_duration_in_s(paths[i])
            ep_meta[i].update(
                {
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": offset,
                    f"videos/{key}/to_timestamp": offset + duration,
                }
            )
            offset += duration
        if len(group) == 1:
            shutil.copyfile(paths[group[0]], dst)
        else:
            concatenate_video_files([paths[i] for i in group], dst)


def pack_episodes(
    staged: Sequence[tuple[Path, dict[str, Any]]],
    root: Path,
    *,
    repo_id: str,
    features: dict[str, dict],
    fps: int,
    robot_type: str | None,
    progress: bool = True,
    meta_files: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write the staged episodes (in the given order) as a finalized LeRobotDataset at ``root``.

    ``root`` must not exist; the dataset is built in a sibling temporary directory and renamed to ``root`` only
    when complete, so a crash never leaves a half-written dataset there. ``meta_files`` are extra JSON files
    written into ``meta/`` before that rename (the provenance).
    """
    from lerobot.datasets.io_utils import write_info
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    root = Path(root)
    if not staged:
        raise DatasetError("no episodes to write: the dataset would be empty")
    if root.exists():
        raise DatasetError(f"{root} already exists")
    tmp = root.parent / f".{root.name}.packing-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        meta = LeRobotDatasetMetadata.create(
            repo_id=repo_id, fps=fps, features=features, robot_type=robot_type, root=tmp, use_videos=True
        )
        tasks = [m["task"] for _, m in staged]
        meta.save_episode_tasks(list(dict.fromkeys(tasks)))
        ep_meta: list[dict[str, Any]] = [{} for _ in staged]

        _write_tabular(staged, tmp, meta, features, fps, ep_meta)
        for key in video_keys(features):
            _write_videos(staged, tmp, meta, key, ep_meta, progress)
        meta.update_video_info()
        write_info(meta.info, meta.root)

        # Episode metadata, per-episode stats and their aggregate: lerobot's own metadata writer.
        try:
            for i, (_, m) in enumerate(staged):
                meta.save_episode(
                    i, int(m["attempt"]["length"]), [m["task"]], _stats_from_json(m["stats"]), ep_meta[i]
                )
        finally:
            meta._close_writer()  # what LeRobotDataset.finalize() does for the metadata: writes the footer
        for name, content in (meta_files or {}).items():
            (tmp / "meta" / name).write_text(json.dumps(content, indent=2) + "\n")
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
