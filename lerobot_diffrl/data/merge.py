"""Join generated datasets (shards of one run, or runs to combine) into one LeRobotDataset v3.

The join itself is lerobot's ``aggregate_datasets`` (episode, frame and task indices re-numbered, videos joined by
stream copy, stats aggregated). Before it runs, every input is checked to be a finalized v3 dataset with the same
fps, robot type and features (dtype, shape, video codec and pixel format) as the first, so a mismatch is one
clear :class:`DatasetError` instead of lerobot's dict dump, and the output is written to a temporary sibling and
renamed into place, so a failed merge leaves nothing at the output path. ``meta/provenance.json`` of the inputs
is merged too (per-task counts summed, episodes re-indexed, sources listed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from lerobot_diffrl.data.features import check_same_features
from lerobot_diffrl.data.provenance import merge_provenance, read_provenance, write_provenance
from lerobot_diffrl.errors import DatasetError

log = logging.getLogger(__name__)


def read_info(root: Path) -> dict:
    """``meta/info.json`` of a finalized v3 dataset, or a :class:`DatasetError` saying what is wrong."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not root.is_dir():
        raise DatasetError(f"dataset {root} does not exist")
    if not info_path.is_file():
        raise DatasetError(f"{root} is not a LeRobotDataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    if info.get("codebase_version") != "v3.0":
        raise DatasetError(f"{root} is a {info.get('codebase_version')} dataset; merging needs v3.0")
    if not any((root / "meta" / "episodes").glob("*/*.parquet")) or not any(
        (root / "data").glob("*/*.parquet")
    ):
        raise DatasetError(f"{root} has no episodes (empty or not finalized)")
    return info


def check_compatible(roots: Sequence[Path]) -> list[dict]:
    """Infos of ``roots``; raises :class:`DatasetError` on the first input that cannot join the first one."""
    infos = [read_info(r) for r in roots]
    first, name0 = infos[0], str(roots[0])
    for root, info in zip(roots[1:], infos[1:], strict=True):
        if info["fps"] != first["fps"]:
            raise DatasetError(f"{root} has fps {info['fps']}, {name0} has {first['fps']}")
        if info.get("robot_type") != first.get("robot_type"):
            raise DatasetError(
                f"{root} has robot_type {info.get('robot_type')!r}, {name0} {first.get('robot_type')!r}"
            )
        check_same_features(first["features"], info["features"], name0, str(root))
    return infos


def merge_datasets(inputs: Sequence[Path | str], output: Path | str, repo_id: str = "local/merged") -> Path:
    """Aggregate ``inputs`` (in order) into a new dataset at ``output`` (which must not exist)."""
    from lerobot.datasets.aggregate import aggregate_datasets

    roots = [Path(p) for p in inputs]
    output = Path(output)
    if len(roots) < 1:
        raise DatasetError("nothing to merge: give at least one input dataset")
    if len(set(r.resolve() for r in roots)) != len(roots):
        raise DatasetError("the same dataset is listed twice")
    if output.exists():
        raise DatasetError(f"{output} already exists; choose a new output folder")
    if any(output.resolve() == r.resolve() for r in roots):
        raise DatasetError("the output folder cannot be one of the inputs")
    infos = check_compatible(roots)
    tmp = output.parent / f".{output.name}.merging-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            aggregate_datasets(
                repo_ids=[f"local/input-{i}" for i in range(len(roots))],
                aggr_repo_id=repo_id,
                roots=roots,
                aggr_root=tmp,
            )
        except ValueError as err:  # lerobot's own consistency checks (e.g. video info) beyond ours
            raise DatasetError(f"lerobot cannot aggregate these datasets: {str(err)[:500]}") from err
        offsets, total = [], 0
        for info in infos:
            offsets.append(total)
            total += int(info["total_episodes"])
        parts = [read_provenance(r) for r in roots]
        if any(p is not None for p in parts):
            write_provenance(tmp, merge_provenance(parts, offsets))
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("merged %d datasets (%d episodes) into %s", len(roots), total, output)
    return output
