"""``lerobot-diffrl-rl``: fine-tune a BC-pretrained ``diffrl`` (DPPO) or ``gaussrl`` (PPO) policy with RL.

Examples::

    lerobot-diffrl-rl --policy_path=outputs/bc/checkpoints/last/pretrained_model \\
        --env.suites=libero_object --env.tasks=0 --env.n_envs=50 --output_dir=outputs/rl/object0
    lerobot-diffrl-rl --output_dir=outputs/rl/object0 --resume=true      # continue after Ctrl-C or a kill
    lerobot-diffrl-rl --config_path=outputs/rl/object0/train_config.json --output_dir=outputs/rl/other

On resume the run's saved ``train_config.json`` is the base and flags given now override it (e.g. a larger
``--iterations`` extends a finished run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import draccus

from lerobot_diffrl.errors import CheckpointError
from lerobot_diffrl.rl.checkpoint import PRETRAINED, TRAIN_CONFIG, check_resumable
from lerobot_diffrl.rl.config import RLConfig
from lerobot_diffrl.scripts.cli import parse_config, run_cli


def _resume_config(cfg: RLConfig, argv: list[str]) -> RLConfig:
    """The interrupted run's config, with this command's flags applied on top."""
    ckpt = check_resumable(Path(cfg.output_dir))
    saved = ckpt / PRETRAINED / TRAIN_CONFIG
    try:
        resumed = draccus.parse(config_class=RLConfig, config_path=str(saved), args=argv)
    except Exception as err:
        raise CheckpointError(f"cannot read {saved}: {err}") from err
    resumed.resume = True
    resumed.output_dir = cfg.output_dir
    return resumed


def run(cfg: RLConfig, argv: list[str]) -> int:
    from lerobot_diffrl.rl.trainer import RLTrainer

    if cfg.resume and cfg.output_dir:
        cfg = _resume_config(cfg, [a for a in argv if not a.startswith("--config_path")])
    summary = RLTrainer(cfg).train()
    print(json.dumps(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(RLConfig, args)
    return run_cli(lambda: run(cfg, args))


if __name__ == "__main__":
    sys.exit(main())
