"""``lerobot-diffrl-train-state``: ``lerobot-train`` for a state expert, with the dataset held in memory.

Takes ``lerobot-train``'s own flags and writes the same checkpoint (see :mod:`lerobot_diffrl.data.state_bc` for
why: lerobot's loader costs ~0.45 s per step of 128 samples here, the state model ~0.03 s)::

    lerobot-diffrl-train-state --policy.type=diffrl --policy.use_images=false --policy.denoiser=mlp \\
        --dataset.repo_id=local/object0_state --dataset.root=outputs/demos_state --output_dir=outputs/bc_state \\
        --steps=5000 --batch_size=128 --policy.push_to_hub=false
"""

from __future__ import annotations

import sys

from lerobot_diffrl.scripts.cli import parse_config, run_cli


def main(argv: list[str] | None = None) -> int:
    from lerobot.configs.train import TrainPipelineConfig

    import lerobot_diffrl.policies  # noqa: F401  (registers --policy.type=diffrl|gaussrl)
    from lerobot_diffrl.data.state_bc import train_state_bc

    cfg = parse_config(TrainPipelineConfig, argv)
    return run_cli(lambda: print(f"wrote {train_state_bc(cfg)}"))


if __name__ == "__main__":
    sys.exit(main())
