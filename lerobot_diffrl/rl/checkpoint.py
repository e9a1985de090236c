"""RL checkpoints in LeRobot's layout, written atomically.

``<run>/checkpoints/<iteration:06d>/pretrained_model/`` holds the policy (``config.json``,
``model.safetensors``, model card), its processors and ``train_config.json`` (this run's RL config), so it is
what ``lerobot-eval --policy.path``, ``lerobot-diffrl-generate`` and ``from_pretrained`` take.
``training_state/`` holds what a resumed run needs to continue exactly: both optimizers and schedulers (with
lerobot's own serialisers), the reward scaler, the RNG states and the iteration / env-step counters.
``checkpoints/last`` is a symlink to the newest one.

Atomicity: everything is written into a hidden temporary folder next to the final one and renamed into place
in one ``os.replace``; the ``last`` link is swapped the same way. A run killed while saving leaves at most a
``.tmp-*`` folder, which the next save removes, never a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import draccus
import torch
from lerobot.optim.optimizers import load_optimizer_state, save_optimizer_state
from lerobot.optim.schedulers import load_scheduler_state, save_scheduler_state
from lerobot.utils.random_utils import load_rng_state, save_rng_state

from lerobot_diffrl.errors import CheckpointError
from lerobot_diffrl.rl.config import RLConfig
from lerobot_diffrl.run_files import CHECKPOINTS_DIR as CHECKPOINTS
from lerobot_diffrl.run_files import PRETRAINED_MODEL_DIR as PRETRAINED
from lerobot_diffrl.run_files import TRAIN_CONFIG_NAME as TRAIN_CONFIG
from lerobot_diffrl.run_files import TRAINING_STATE_DIR as TRAINING_STATE
from lerobot_diffrl.run_files import last_checkpoint_link

PROGRESS = "progress.json"


def checkpoint_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / CHECKPOINTS / f"{iteration:06d}"


def last_checkpoint(run_dir: Path) -> Path | None:
    link = last_checkpoint_link(run_dir)
    return link.resolve() if link.exists() else None


def save_config(cfg: RLConfig, path: Path) -> None:
    with open(path, "w") as f, draccus.config_type("json"):
        draccus.dump(cfg, f, indent=2)


def save_checkpoint(
    run_dir: Path,
    iteration: int,
    loaded: Any,
    cfg: RLConfig,
    optimizers: dict[str, Any],
    schedulers: dict[str, Any],
    progress: dict[str, Any],
    extra_states: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``iteration`` atomically and point ``last`` at it.

    ``extra_states`` (name -> picklable state, e.g. the success replay) go to ``training_state/<name>.pt``.
    """
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = checkpoint_dir(run_dir, iteration)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    model_dir, state_dir = tmp / PRETRAINED, tmp / TRAINING_STATE
    model_dir.mkdir(parents=True)
    state_dir.mkdir()
    loaded.policy.save_pretrained(model_dir)
    loaded.preprocessor.save_pretrained(model_dir)
    loaded.postprocessor.save_pretrained(model_dir)
    save_config(cfg, model_dir / TRAIN_CONFIG)
    save_optimizer_state(optimizers, state_dir)
    for name, scheduler in schedulers.items():
        (state_dir / name).mkdir(exist_ok=True)
        save_scheduler_state(scheduler, state_dir / name)
    save_rng_state(state_dir)
    (state_dir / PROGRESS).write_text(json.dumps(progress, indent=2))
    for name, state in (extra_states or {}).items():
        torch.save(state, state_dir / f"{name}.pt")
    if final.exists():  # re-saving an iteration (e.g. Ctrl-C right after a periodic save)
        trash = root / f".tmp-old-{final.name}-{os.getpid()}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    link_tmp = root / f".tmp-link-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(final.name)
    os.replace(link_tmp, last_checkpoint_link(run_dir))
    return final


def check_resumable(run_dir: Path) -> Path:
    """The last checkpoint of ``run_dir`` with a complete training state, or a clear CheckpointError."""
    last = last_checkpoint(run_dir)
    if last is None:
        raise CheckpointError(
            f"cannot resume: {last_checkpoint_link(run_dir)} does not exist (no checkpoint was written in "
            f"{run_dir})."
        )
    state = last / TRAINING_STATE
    needed = [state / PROGRESS, last / PRETRAINED / TRAIN_CONFIG, last / PRETRAINED / "model.safetensors"]
    missing = [str(p.relative_to(last)) for p in needed if not p.exists()]
    if missing:
        raise CheckpointError(
            f"cannot resume from {last}: training state incomplete (missing {', '.join(missing)})."
        )
    return last


def load_training_state(ckpt: Path, optimizers: dict[str, Any], schedulers: dict[str, Any]) -> dict[str, Any]:
    """Restore optimizers, schedulers and RNG states from ``ckpt``; return its progress counters."""
    state = ckpt / TRAINING_STATE
    load_optimizer_state(optimizers, state)
    for name, scheduler in schedulers.items():
        load_scheduler_state(scheduler, state / name)
    load_rng_state(state)
    return json.loads((state / PROGRESS).read_text())


def load_extra_state(ckpt: Path, name: str) -> Any | None:
    """The ``extra_states[name]`` saved with ``ckpt``, or None when it has none."""
    path = ckpt / TRAINING_STATE / f"{name}.pt"
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"cannot resume from {ckpt}: {path.name} is unreadable ({exc}).") from exc


def config_dict(cfg: RLConfig) -> dict[str, Any]:
    return asdict(cfg)
