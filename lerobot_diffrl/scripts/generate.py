"""``lerobot-diffrl-generate``: drive the LIBERO env pool with an actor and write a LeRobotDataset v3.

Examples::

    lerobot-diffrl-generate --suite=libero_object --episodes_per_task=50 --actor.type=scripted \\
        --output_dir=outputs/datasets/object_expert
    lerobot-diffrl-generate --actor.type=diffrl --actor.path=outputs/rl/checkpoints/last/pretrained_model \\
        --suite=libero_object --task_ids=0-4 --episodes_per_task=100 --keep=all --output_dir=outputs/datasets/rl
    # killed? continue where it was:
    lerobot-diffrl-generate ... --resume=true
    # several GPUs / processes: each process one shard, the main one merges them
    accelerate launch --num_processes=4 $(which lerobot-diffrl-generate) ...
    # job array: shard k of n into its own folder, then lerobot-diffrl-merge
    lerobot-diffrl-generate ... --shard_index=$K --num_shards=8 --output_dir=outputs/datasets/rl.shard$K

See :mod:`lerobot_diffrl.data.generation` for what is written where.
"""

from __future__ import annotations

import sys

from lerobot_diffrl.data.generation import GenerateConfig, GenerationResult, generate
from lerobot_diffrl.scripts.cli import parse_config, run_cli, show_project_logs


def summarize(result: GenerationResult) -> str:
    lines = []
    for key, entry in result.per_task.items():
        rate = entry["successes"] / entry["attempts"] if entry["attempts"] else float("nan")
        lines.append(
            f"  {key:<22} kept {entry['kept']:>4}/{entry['target']:<4} attempts {entry['attempts']:>4} "
            f"success {rate:6.1%}  {entry['task']!r}"
        )
    state = "dataset" if result.complete else "shard"
    lines.append(
        f"{state} {result.output}: {result.episodes} episodes, {result.frames} frames "
        f"({result.seconds:.0f} s)"
    )
    if result.pushed:
        lines.append(f"pushed {len(result.pushed)} files to the Hub")
    return "\n".join(lines)


def run(cfg: GenerateConfig) -> int:
    show_project_logs()
    result = generate(cfg)
    print(summarize(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GenerateConfig, argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
