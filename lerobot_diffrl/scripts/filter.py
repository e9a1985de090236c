"""``lerobot-diffrl-filter``: rank a dataset's episodes by a quality figure and keep all but the worst.

Example (drop the least smooth 20% of a generated dataset by SPARC)::

    lerobot-diffrl-filter --dataset.root=outputs/gen/diffrl --output_dir=outputs/gen/diffrl-top80 \\
        --repo_id=local/diffrl-top80 --metric=sparc --drop_fraction=0.2

``--metric`` is one of length, jerk, abs_delta_action, path_length, sparc, ldlj (ranked in its better
direction: SPARC and LDLJ higher, the others lower). The figures are the dataset's stored ``quality/<name>``
episode columns, or computed from ``action`` and ``observation.state`` when it has none (a Hub dataset:
``--dataset.repo_id=lerobot/libero``). ``--dry_run=true`` prints the ranking and writes nothing. The output is a
LeRobotDataset v3 with its videos, written aside and renamed into place when complete.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_diffrl.data.filtering import FilterResult, check_drop_fraction, check_metric, filter_dataset
from lerobot_diffrl.data.metrics import LIBERO_CONTROL_HZ
from lerobot_diffrl.data.quality import DEFAULT_ACTION_DIMS
from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.scripts.cli import parse_config, run_cli, show_project_logs


@dataclass
class SourceConfig:
    #: Local dataset folder.
    root: str | None = None
    #: Hub repo id (through LeRobot's cache), used when --dataset.root is not given.
    repo_id: str | None = None


@dataclass
class FilterConfig:
    dataset: SourceConfig = field(default_factory=SourceConfig)
    #: Where the filtered dataset is written; must not exist.
    output_dir: str = ""
    #: Dataset id of the output (default local/<output folder name>).
    repo_id: str | None = None
    #: Quality figure to rank by: length, jerk, abs_delta_action, path_length, sparc, ldlj.
    metric: str = "sparc"
    #: Fraction of episodes to drop, in [0, 1): floor(fraction * episodes) of the worst are dropped.
    drop_fraction: float | None = None
    #: Control rate (Hz) SPARC and LDLJ differentiate at (LIBERO: 20, whatever the fps metadata says).
    fs: float = LIBERO_CONTROL_HZ
    #: Leading action dimensions of the action metrics (LIBERO: 6 arm dims, gripper excluded); null: all.
    action_dims: int | None = DEFAULT_ACTION_DIMS
    #: Compute the figures from the frames even when the dataset stores them.
    recompute: bool = False
    #: Print the ranking and the episodes that would be dropped; write nothing.
    dry_run: bool = False


def _source(cfg: FilterConfig) -> str:
    if cfg.dataset.root:
        root = Path(cfg.dataset.root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"dataset folder {cfg.dataset.root} does not exist")
        return str(root)
    if cfg.dataset.repo_id:
        return cfg.dataset.repo_id
    raise ConfigError("--dataset.root (a local folder) or --dataset.repo_id (a Hub dataset) is required")


def _score(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "n/a (undefined)"


def report(result: FilterResult, dry_run: bool) -> None:
    """Print which episodes go (with their scores and tasks) and what was written."""
    source = "stored quality/ columns" if result.figures == "stored" else "computed from the frames"
    print(
        f"ranked {result.n_episodes} episodes of {result.source} by {result.metric} "
        f"({result.better} is better; figures {source})"
    )
    rows = result.ranking if dry_run else result.dropped
    verb = "would drop" if dry_run else "dropped"
    print(f"{verb} {len(result.dropped)} of {result.n_episodes} episodes (worst first):")
    for rank, (episode, score) in enumerate(rows):
        mark = "  drop" if rank < len(result.dropped) else "  keep"
        print(
            f"{mark} episode {episode:>6}  {result.metric} {_score(score):>16}  {result.tasks.get(episode, '')}"
        )
    if result.output is not None:
        print(f"wrote {result.output}: {len(result.kept)} episodes kept")


def run(cfg: FilterConfig) -> int:
    show_project_logs(logging.WARNING)
    check_metric(cfg.metric)
    check_drop_fraction(cfg.drop_fraction)
    if not cfg.output_dir and not cfg.dry_run:
        raise ConfigError("--output_dir is required (or --dry_run=true to print the ranking only)")
    result = filter_dataset(
        _source(cfg),
        None if cfg.dry_run else cfg.output_dir,
        metric=cfg.metric,
        drop_fraction=cfg.drop_fraction,
        repo_id=cfg.repo_id,
        fs=cfg.fs,
        action_dims=cfg.action_dims,
        recompute=cfg.recompute,
    )
    report(result, cfg.dry_run)
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(FilterConfig, argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
