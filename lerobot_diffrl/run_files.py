"""Where a training run keeps its checkpoints: lerobot's layout, named with lerobot's own constants.

``<run>/checkpoints/<step>/{pretrained_model,training_state}`` and the ``checkpoints/last`` link to the newest
one, as ``lerobot-train`` writes them. Every command of this package (BC, RL, generation, the pipeline, the
benchmarks) finds a run's policy through :func:`last_pretrained_model`, so the layout is spelled once.
"""

from __future__ import annotations

from pathlib import Path

from lerobot.utils.constants import (
    CHECKPOINTS_DIR,
    LAST_CHECKPOINT_LINK,
    PRETRAINED_MODEL_DIR,
    TRAINING_STATE_DIR,
)

#: ``lerobot.configs.train.TRAIN_CONFIG_NAME`` (that module imports torch and every policy config; a test checks
#: the two agree).
TRAIN_CONFIG_NAME = "train_config.json"

__all__ = [
    "CHECKPOINTS_DIR",
    "LAST_CHECKPOINT_LINK",
    "PRETRAINED_MODEL_DIR",
    "TRAINING_STATE_DIR",
    "TRAIN_CONFIG_NAME",
    "last_checkpoint_link",
    "last_pretrained_model",
]


def last_checkpoint_link(run_dir: Path) -> Path:
    """``<run>/checkpoints/last``: the link to the run's newest checkpoint (it may not exist yet)."""
    return Path(run_dir) / CHECKPOINTS_DIR / LAST_CHECKPOINT_LINK


def last_pretrained_model(run_dir: Path) -> Path:
    """``<run>/checkpoints/last/pretrained_model``: the policy a later stage loads from a run."""
    return last_checkpoint_link(run_dir) / PRETRAINED_MODEL_DIR
