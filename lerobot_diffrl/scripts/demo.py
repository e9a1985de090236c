"""``lerobot-diffrl-demo``: a LIBERO smoke demo, one task driven a few steps (see :mod:`lerobot_diffrl.envs.demo`).

lerobot-diffrl-demo --suite=libero_object --task_id=0 --steps=30 --render=false
"""

from __future__ import annotations

import sys

from lerobot_diffrl.envs.demo import DemoConfig, run_demo
from lerobot_diffrl.scripts.cli import parse_config, run_cli


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DemoConfig, argv)
    return run_cli(lambda: run_demo(cfg))


if __name__ == "__main__":
    sys.exit(main())
