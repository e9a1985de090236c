"""``lerobot-diffrl-merge``: join generated datasets (shards of a run, or several runs) into one LeRobotDataset.

Example::

    lerobot-diffrl-merge --inputs='[outputs/rl.shard0,outputs/rl.shard1]' --output_dir=outputs/datasets/rl

Inputs must share fps, robot type and features (checked first, one clear error otherwise); lerobot's
``aggregate_datasets`` does the join; the output appears only when complete.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_diffrl.data.merge import merge_datasets
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts.cli import parse_config, run_cli, show_project_logs


@dataclass
class MergeConfig:
    #: Dataset folders to join, in order (their episodes keep that order).
    inputs: list[str] = field(default_factory=list)
    output_dir: str = ""
    #: Dataset id written into the merged metadata (default local/<output folder name>).
    repo_id: str | None = None


def run(cfg: MergeConfig) -> int:
    show_project_logs()
    if not cfg.inputs:
        raise ConfigError("--inputs is empty: give the dataset folders to merge, e.g. --inputs='[a,b]'")
    if not cfg.output_dir:
        raise ConfigError("--output_dir is required")
    out = Path(cfg.output_dir)
    merge_datasets(cfg.inputs, out, repo_id=cfg.repo_id or f"local/{out.name}")
    info = json.loads((out / "meta" / "info.json").read_text())
    print(
        f"merged {len(cfg.inputs)} datasets into {out}: {info['total_episodes']} episodes, {info['total_frames']} frames"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(MergeConfig, argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
