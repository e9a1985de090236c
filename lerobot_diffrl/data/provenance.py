"""``meta/provenance.json``: how a generated dataset was made, so it can be reproduced and judged.

Holds the actor (kind, checkpoint path or Hub id, SHA-256 of its ``model.safetensors``, the training/RL config
found next to it), the generation config, seeds and shard, the suites/tasks with per-task attempt and success
counts (``per_task``: what the quality report reads), one entry per episode (task, attempt, init state, seed,
success, length), the versions of the software that made it, and which LIBERO asset tree rendered the images,
including whether it holds stand-in assets (images from such a tree differ from upstream LIBERO's, so a
dataset must say so; see the README's Troubleshooting), and whether ``observation.environment_state`` was
recorded (its width, and per task the real object-state length and the objects it describes, in order). A
dataset made by ``lerobot-diffrl-filter`` also lists, under ``filtered``, what it dropped, by which figure and
with which scores. Per-episode quality figures are not here but in the episodes parquet (``quality/<name>``,
:mod:`lerobot_diffrl.data.quality`). The dataset card (:mod:`lerobot_diffrl.data.card`) is written from this
file.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lerobot_diffrl.errors import DatasetError

PROVENANCE_FILE = "meta/provenance.json"
#: Packages whose versions decide what a dataset contains.
VERSIONED_PACKAGES = (
    "lerobot",
    "lerobot_policy_diffrl",
    "hf-libero",
    "robosuite",
    "mujoco",
    "torch",
    "numpy",
    "av",
    "datasets",
)
#: Config files a checkpoint folder may carry next to the weights (lerobot-train and lerobot-diffrl-rl write
#: ``train_config.json``).
CHECKPOINT_CONFIGS = ("train_config.json", "rl_config.json")
#: Upstream LIBERO textures are photos of ~0.1-20 MB; the offline stand-in tree has flat-colour PNGs of ~80 B.
STAND_IN_TEXTURE_MAX_BYTES = 1024


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def assets_info(assets: Path) -> dict[str, Any]:
    """The asset folder and whether it holds stand-ins (flat-colour textures of a rebuilt offline tree)."""
    stand_ins = sorted(
        str(p.relative_to(assets))
        for p in assets.rglob("*.png")
        if p.stat().st_size <= STAND_IN_TEXTURE_MAX_BYTES
    )
    return {
        "path": str(assets),
        "files": sum(1 for p in assets.rglob("*") if p.is_file()),
        "stand_in_assets": bool(stand_ins),
        "stand_in_textures": stand_ins,
        "note": (
            "rendered with stand-in LIBERO assets (flat-colour textures, rebuilt meshes): images differ from "
            "upstream LIBERO; train and evaluate policies in the same asset set"
            if stand_ins
            else "upstream LIBERO assets"
        ),
    }


def checkpoint_info(checkpoint: Path, repo_id: str | None, policy_type: str) -> dict[str, Any]:
    """What identifies a policy actor: where it came from, its weights' hash and its training config."""
    info: dict[str, Any] = {
        "policy_type": policy_type,
        "path": str(checkpoint),
        "repo_id": repo_id,
        "model_sha256": sha256_file(checkpoint / "model.safetensors"),
    }
    for folder in (checkpoint, checkpoint.parent):
        for name in CHECKPOINT_CONFIGS:
            path = folder / name
            if path.is_file() and "train_config" not in info:
                try:
                    info["train_config"] = json.loads(path.read_text())
                    info["train_config_file"] = str(path)
                except ValueError:
                    info["train_config_file"] = str(path)
    return info


def build_provenance(
    *,
    actor: dict[str, Any],
    config: dict[str, Any],
    shard: dict[str, int],
    per_task: dict[str, dict[str, Any]],
    episodes: list[dict[str, Any]],
    assets: Path | None,
    env_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``env_state``: what :func:`env_state_provenance` returns (None: not recorded)."""
    return {
        "generator": "lerobot-diffrl-generate",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "config": config,
        "seed": config.get("seed"),
        "shard": shard,
        "suites": sorted({v["suite"] for v in per_task.values()}),
        "per_task": per_task,
        "episodes": episodes,
        "versions": package_versions(),
        "python": platform.python_version(),
        "libero_assets": assets_info(assets) if assets is not None else None,
        "env_state": env_state or {"recorded": False},
    }


def env_state_provenance(dim: int, per_task: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How ``observation.environment_state`` was recorded: its width, the per-object layout, and per task
    (``per_task`` from :func:`lerobot_diffrl.data.features.env_state_layout`) the real length and objects."""
    from lerobot_diffrl.data.features import OBJECT_STATE_FIELDS

    return {
        "recorded": True,
        "key": "observation.environment_state",
        "dim": int(dim),
        "source": "robosuite object-state (privileged simulator state)",
        "per_object": [{"field": name, "size": size} for name, size in OBJECT_STATE_FIELDS],
        "padding": "values beyond a task's length are 0; a task longer than dim is cut to dim",
        "per_task": per_task,
    }


def write_provenance(root: Path, provenance: dict[str, Any]) -> Path:
    path = Path(root) / PROVENANCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(provenance, indent=2, sort_keys=False) + "\n")
    return path


def read_provenance(root: Path) -> dict[str, Any] | None:
    """``<root>/meta/provenance.json`` as a dict, or ``None`` when absent."""
    path = Path(root) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def merge_provenance(parts: list[dict[str, Any] | None], episode_offsets: list[int]) -> dict[str, Any]:
    """Provenance of a merged dataset: per-task counts summed, episodes re-indexed, sources kept."""
    per_task: dict[str, dict[str, Any]] = {}
    episodes: list[dict[str, Any]] = []
    for part, offset in zip(parts, episode_offsets, strict=True):
        if part is None:
            continue
        for key, entry in part.get("per_task", {}).items():
            total = per_task.setdefault(key, {**entry, "target": 0, "attempts": 0, "successes": 0, "kept": 0})
            for field in ("target", "attempts", "successes", "kept"):
                total[field] += int(entry.get(field, 0))
        for ep in part.get("episodes", []):
            episodes.append({**ep, "episode_index": int(ep["episode_index"]) + offset})
    known = [p for p in parts if p is not None]
    first = known[0] if known else {}
    return {
        "generator": "lerobot-diffrl-merge",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": first.get("actor"),
        "config": first.get("config"),
        "seed": first.get("seed"),
        "suites": sorted({v["suite"] for v in per_task.values() if "suite" in v}),
        "per_task": per_task,
        "episodes": episodes,
        "versions": package_versions(),
        "python": platform.python_version(),
        "libero_assets": first.get("libero_assets"),
        "env_state": _merged_env_state(known),
        "merged_from": [
            {k: p.get(k) for k in ("created", "shard", "actor", "config", "libero_assets")} for p in known
        ],
    }


def _merged_env_state(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The inputs' env-state records joined (merge refuses inputs of different widths beforehand)."""
    records = [p.get("env_state") for p in parts if p.get("env_state") is not None]
    if not records:
        return None
    if not records[0].get("recorded"):
        return records[0]
    per_task: dict[str, Any] = {}
    for record in records:
        per_task.update(record.get("per_task", {}))
    return {**records[0], "per_task": per_task}


def filter_provenance(
    provenance: dict[str, Any] | None, kept: list[int], record: dict[str, Any]
) -> dict[str, Any]:
    """Provenance of a dataset keeping the source episodes ``kept`` (source indices, in their new order).

    The per-episode entries are kept and re-indexed, each task's ``kept`` count is reduced by its dropped
    episodes (attempts and successes still describe the generation), and ``record`` (what was filtered, how)
    is appended to ``filtered``. A source without provenance gets one that records only the filtering.
    """
    base = dict(provenance) if provenance else {"generator": "lerobot-diffrl-filter"}
    new_index = {old: new for new, old in enumerate(kept)}
    episodes, per_task = [], {k: dict(v) for k, v in (base.get("per_task") or {}).items()}
    for ep in base.get("episodes") or []:
        old = int(ep.get("episode_index", -1))
        if old in new_index:
            episodes.append({**ep, "episode_index": new_index[old]})
            continue
        task = per_task.get(f"{ep.get('suite')}/{ep.get('task_id')}")
        if task is not None and "kept" in task:
            task["kept"] = int(task["kept"]) - 1
    if "episodes" in base:
        base["episodes"] = sorted(episodes, key=lambda e: e["episode_index"])
    if per_task:
        base["per_task"] = per_task
    stamped = {"created": datetime.now(UTC).isoformat(timespec="seconds"), **record}
    base["filtered"] = [*(base.get("filtered") or []), stamped]
    return base
