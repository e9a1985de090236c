"""Mix the project's RL-generated dataset with another LeRobot dataset (e.g. LIBERO human demos) at a given ratio.

Why a new dataset rather than a flag: lerobot 0.4.4's ``lerobot-train`` trains on one dataset. A list of
``--dataset.repo_id`` is rejected (``NotImplementedError: LeRobotMultiDataset is not currently implemented`` in
``TrainPipelineConfig.validate``), ``MultiLeRobotDataset`` is not wired into ``make_dataset``, and there is no
sampling weight. ``lerobot-train`` samples frames uniformly, so the share of a source in training batches is its
share of the frames. This module therefore picks whole episodes (seeded) from the source that is over-represented
until the frame ratio is as close to the target as whole episodes allow, cuts those sources with lerobot's
``split_dataset``, concatenates them with lerobot's ``aggregate_datasets`` (which recomputes the statistics,
quantiles included), and records what was taken in ``meta/mixing.json``. Nothing is oversampled: every frame of
the mixed dataset is a real frame of one source.

``suites`` restricts both sources to episodes whose task instruction belongs to those LIBERO suites, which is also
how to train on one suite of a dataset that holds several.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_diffrl.errors import ConfigError, DatasetError

#: Provenance file written into the mixed dataset's ``meta/`` folder (read by the model card).
MIXING_FILE = "mixing.json"


@dataclass(frozen=True)
class MixSource:
    """A LeRobotDataset by Hub id and optional local root (as ``--dataset.repo_id`` / ``--dataset.root``)."""

    repo_id: str
    root: Path | None = None


def _normalize(text: str) -> str:
    return " ".join(str(text).lower().split())


def suite_instructions(suites: list[str]) -> set[str]:
    """Normalised language instructions of every task of ``suites``."""
    from lerobot_diffrl.envs.suites import num_tasks, task_spec

    return {_normalize(task_spec(suite, i).language) for suite in suites for i in range(num_tasks(suite))}


def episode_table(meta: Any) -> tuple[np.ndarray, list[list[str]]]:
    """(frames per episode, task strings per episode) from a ``LeRobotDatasetMetadata``."""
    episodes = meta.episodes
    lengths = np.asarray(episodes["length"], dtype=np.int64)
    tasks = [list(t) if not isinstance(t, str) else [t] for t in episodes["tasks"]]
    return lengths, tasks


def select_suite_episodes(tasks: list[list[str]], instructions: set[str] | None) -> list[int]:
    """Episodes whose every task is one of ``instructions`` (all episodes when ``instructions`` is None)."""
    if instructions is None:
        return list(range(len(tasks)))
    return [
        i
        for i, ep_tasks in enumerate(tasks)
        if ep_tasks and all(_normalize(t) in instructions for t in ep_tasks)
    ]


def subsample_to_frames(candidates: list[int], lengths: np.ndarray, target: float, seed: int) -> list[int]:
    """Whole episodes, in a seeded random order, whose frame total is closest to ``target`` (at least one)."""
    order = np.random.default_rng(seed).permutation(len(candidates))
    chosen: list[int] = []
    total = 0
    for idx in order:
        episode = candidates[int(idx)]
        n = int(lengths[episode])
        if chosen and abs(total + n - target) >= abs(total - target):
            break
        chosen.append(episode)
        total += n
    return sorted(chosen)


def plan_mix(
    lengths: list[np.ndarray], candidates: list[list[int]], ratio: float, seed: int = 0
) -> list[list[int]]:
    """Episodes to keep from two sources so that source 0 holds ``ratio`` of the frames (as close as possible).

    Only the over-represented source is cut; the other keeps all its candidate episodes.
    """
    if len(lengths) != 2 or len(candidates) != 2:
        raise ConfigError("a mix has exactly two sources")
    if not 0.0 < ratio < 1.0:
        raise ConfigError(
            f"ratio must be strictly between 0 and 1 (the share of the first dataset), got {ratio}"
        )
    for i, cand in enumerate(candidates):
        if not cand:
            raise DatasetError(f"source {i} has no episode to mix (check --suites)")
    frames = [float(sum(int(lengths[i][e]) for e in cand)) for i, cand in enumerate(candidates)]
    if frames[0] / (frames[0] + frames[1]) > ratio:
        target = ratio / (1.0 - ratio) * frames[1]
        return [subsample_to_frames(candidates[0], lengths[0], target, seed), sorted(candidates[1])]
    target = (1.0 - ratio) / ratio * frames[0]
    return [sorted(candidates[0]), subsample_to_frames(candidates[1], lengths[1], target, seed + 1)]


def feature_differences(meta_a: Any, meta_b: Any) -> tuple[list[str], list[str]]:
    """What stops two datasets from being concatenated by lerobot's aggregation (equal fps, robot type and
    features required), split into (blocking, fixable): fps, dtype and shape differences block; features present
    in one dataset only and label-only differences (``names``, robot type) are fixed by ``harmonize=True``."""
    blocking, fixable = [], []
    if meta_a.fps != meta_b.fps:
        blocking.append(f"fps {meta_a.fps} vs {meta_b.fps}")
    if meta_a.robot_type != meta_b.robot_type:
        fixable.append(f"robot_type {meta_a.robot_type!r} vs {meta_b.robot_type!r}")
    fa, fb = meta_a.features, meta_b.features
    for key in sorted(set(fa) - set(fb)):
        fixable.append(f"{key} only in the first")
    for key in sorted(set(fb) - set(fa)):
        fixable.append(f"{key} only in the second")
    for key in sorted(set(fa) & set(fb)):
        a, b = fa[key], fb[key]
        shape_a, shape_b = list(a.get("shape", [])), list(b.get("shape", []))
        if a.get("dtype") != b.get("dtype") or shape_a != shape_b:
            blocking.append(f"{key}: {a.get('dtype')} {shape_a} vs {b.get('dtype')} {shape_b}")
        elif a != b:
            fixable.append(f"{key}: labels differ ({a.get('names')} vs {b.get('names')})")
    return blocking, fixable


def _relabel(root: Path, features: dict[str, Any], robot_type: str | None) -> None:
    """Give a temporary copy the first dataset's feature labels and robot type (same dtypes and shapes)."""
    path = Path(root) / "meta" / "info.json"
    info = json.loads(path.read_text())
    for key in info["features"]:
        if key in features:
            info["features"][key] = features[key]
    info["robot_type"] = robot_type
    path.write_text(json.dumps(info, indent=4))


def _load_meta(source: MixSource) -> Any:
    from lerobot_diffrl.recipes.preflight import check_dataset

    return check_dataset(source.repo_id, source.root)


def build_mixed_dataset(
    dataset: MixSource,
    out_repo_id: str,
    out_root: Path,
    mix_with: MixSource | None = None,
    ratio: float | None = None,
    suites: list[str] | None = None,
    seed: int = 0,
    harmonize: bool = False,
) -> Path:
    """Write a new LeRobotDataset at ``out_root``: ``dataset`` mixed with ``mix_with`` so that ``dataset`` holds
    ``ratio`` of the frames, both restricted to ``suites``; or, without ``mix_with``, the ``suites`` subset of
    ``dataset``. Built in a temporary folder and renamed into place; returns ``out_root``.

    ``harmonize=True`` makes two datasets that differ only in fixable ways concatenable: features present in one
    of them only (e.g. the project's ``next.reward``/``next.done``/``next.success`` columns, absent from human
    demonstrations) are dropped with lerobot's ``remove_feature``, and the second dataset's copy takes the first's
    feature labels (``names``) and robot type. Different fps, dtypes or shapes are never fixed."""
    from lerobot.datasets.aggregate import aggregate_datasets

    out_root = Path(out_root)
    if out_root.exists():
        raise DatasetError(f"output dataset folder {out_root} exists: choose another --root or remove it")
    if mix_with is None and suites is None:
        raise ConfigError("nothing to do: give a dataset to mix with (and a ratio), or suites to select")
    if mix_with is not None and ratio is None:
        raise ConfigError("a ratio (share of the first dataset's frames, in (0, 1)) is required to mix")
    sources = [dataset] if mix_with is None else [dataset, mix_with]
    metas = [_load_meta(s) for s in sources]
    drop, relabel = _harmonization(sources, metas, harmonize)
    instructions = suite_instructions(suites) if suites else None
    tables = [episode_table(m) for m in metas]
    candidates = [select_suite_episodes(tasks, instructions) for _, tasks in tables]
    for source, cand in zip(sources, candidates, strict=True):
        if not cand:
            raise DatasetError(f"dataset {source.repo_id} has no episode of the suites {suites}")
    lengths = [lengths for lengths, _ in tables]
    chosen = candidates if len(sources) == 1 else plan_mix(lengths, candidates, ratio, seed)

    tmp = out_root.with_name(f".{out_root.name}.mixing-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        parts = _prepare_parts(sources, metas, chosen, drop, relabel, tmp)
        aggregate_datasets(
            repo_ids=[repo for repo, _ in parts],
            aggr_repo_id=out_repo_id,
            roots=[root for _, root in parts],
            aggr_root=tmp / "out",
        )
        frames_used = [int(sum(int(lengths[i][e]) for e in episodes)) for i, episodes in enumerate(chosen)]
        record = _mix_record(sources, metas, chosen, frames_used, ratio, seed, suites)
        record["harmonized"] = {"dropped_features": drop, "relabelled": relabel} if harmonize else None
        (tmp / "out" / "meta" / MIXING_FILE).write_text(json.dumps(record, indent=2) + "\n")
        out_root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / "out", out_root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_root


def _harmonization(
    sources: list[MixSource], metas: list[Any], harmonize: bool
) -> tuple[list[list[str]], bool]:
    """Features to drop from each source and whether the second takes the first's labels; a DatasetError when
    the two cannot be mixed (or could only with ``harmonize``)."""
    if len(metas) < 2:
        return [[] for _ in sources], False
    blocking, fixable = feature_differences(*metas)
    if blocking or (fixable and not harmonize):
        hint = (
            "convert one to the other's features first (same fps, cameras, image sizes, state and action)"
            if blocking
            else "pass harmonize=true (--harmonize=true) to drop unshared features and relabel"
        )
        raise DatasetError(
            f"{sources[0].repo_id} and {sources[1].repo_id} cannot be mixed: "
            + "; ".join(blocking + fixable)
            + f". {hint}"
        )
    fa, fb = metas[0].features, metas[1].features
    drop = [sorted(set(fa) - set(fb)), sorted(set(fb) - set(fa))]
    relabel = metas[0].robot_type != metas[1].robot_type or any(fa[k] != fb[k] for k in set(fa) & set(fb))
    return drop, relabel


def _prepare_parts(
    sources: list[MixSource],
    metas: list[Any],
    chosen: list[list[int]],
    drop: list[list[str]],
    relabel: bool,
    tmp: Path,
) -> list[tuple[str, Path]]:
    """(repo id, root) of each source as it enters the aggregate: the source itself when used whole and
    unchanged, else a copy in ``tmp`` with only the chosen episodes, the shared features and the first's labels."""
    from lerobot.datasets.dataset_tools import remove_feature, split_dataset
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    parts: list[tuple[str, Path]] = []
    for i, (source, meta, episodes) in enumerate(zip(sources, metas, chosen, strict=True)):
        needs_copy = len(episodes) < meta.total_episodes or (i == 1 and relabel)
        if not needs_copy and not drop[i]:
            parts.append((source.repo_id, Path(meta.root)))
            continue
        part = LeRobotDataset(source.repo_id, root=meta.root)
        if needs_copy:
            part = split_dataset(part, {"part": episodes}, output_dir=tmp / f"source{i}")["part"]
        if drop[i]:
            part = remove_feature(
                part, drop[i], output_dir=tmp / f"source{i}_shared", repo_id=f"{part.repo_id}_shared"
            )
        if i == 1 and relabel:
            _relabel(Path(part.root), metas[0].features, metas[0].robot_type)
        parts.append((part.repo_id, Path(part.root)))
    return parts


def _mix_record(
    sources: list[MixSource],
    metas: list[Any],
    chosen: list[list[int]],
    frames_used: list[int],
    ratio: float | None,
    seed: int,
    suites: list[str] | None,
) -> dict[str, Any]:
    """``meta/mixing.json``: what was asked, what each source gave, and where its episodes sit in the mix."""
    total = sum(frames_used)
    record: dict[str, Any] = {
        "ratio_basis": "frames",
        "target_ratio": ratio,
        "achieved_ratio": frames_used[0] / total if total else None,
        "seed": seed,
        "suites": suites,
        "harmonized": None,
        "sources": [],
    }
    start = 0
    for source, meta, episodes, used in zip(sources, metas, chosen, frames_used, strict=True):
        record["sources"].append(
            {
                "repo_id": source.repo_id,
                "root": str(meta.root),
                "episodes_available": int(meta.total_episodes),
                "episodes_used": len(episodes),
                "frames_used": used,
                "share": used / total if total else None,
                "source_episode_indices": [int(e) for e in episodes],
                "mixed_episode_range": [start, start + len(episodes)],
            }
        )
        start += len(episodes)
    return record
