"""``lerobot-diffrl-eval``: LIBERO success tables for any LeRobot checkpoint under the pinned protocol.

    lerobot-diffrl-eval --policy.path=outputs/train/smolvla/checkpoints/last/pretrained_model \\
        --suites=libero_object,libero_spatial --protocol.episodes_per_task=50 --output_dir=outputs/eval/smolvla

It runs ``lerobot-eval --env.type=diffrl_env`` once per (suite, task, seed): one task per run is the unit of
resumption, so a run whose ``eval_info.json`` is complete (and reports that very suite and task) is skipped when
the command is started again with the same protocol. Runs are written to a temporary folder and renamed when complete. At the end it
writes ``results.json`` and ``results.md`` (per-task and per-suite success with Wilson 95% intervals, protocol
embedded) and, with ``--update_card=true``, the checkpoint's model card.
"""

from __future__ import annotations

import sys

from lerobot_diffrl.recipes.eval_run import EvalCommandConfig, evaluate
from lerobot_diffrl.scripts.cli import parse_config, run_cli


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        evaluate(parse_config(EvalCommandConfig, argv))
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
