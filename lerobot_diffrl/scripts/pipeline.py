"""``lerobot-diffrl-pipeline``: the whole chain (demos, BC, RL, generation, report, VLA, evaluation) in one command.

    lerobot-diffrl-pipeline                                            # the tiny embedded recipe, CPU, minutes
    lerobot-diffrl-pipeline --config_path=recipes/pipeline/paper_libero.json --device=cuda
    lerobot-diffrl-pipeline --stages='[demos,bc,rl]'                   # stop after RL; run again for the rest

Every stage is the project's (or lerobot's) own command, run with the recipe's arguments; every artefact goes to
one run folder (``outputs/pipeline/<name>``), and ``summary.md`` / ``summary.json`` at its top say what each stage
made. Run it again and finished stages are skipped, an interrupted one resumes. See
:mod:`lerobot_diffrl.recipes.pipeline_config` for the recipe format.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lerobot_diffrl.recipes.pipeline_config import PipelineConfig
from lerobot_diffrl.recipes.pipeline_runner import SUMMARY_MD, run_pipeline
from lerobot_diffrl.scripts.cli import parse_config, run_cli


def run(cfg: PipelineConfig) -> int:
    summary = run_pipeline(cfg)
    print()
    print((Path(summary["run_dir"]) / SUMMARY_MD).read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PipelineConfig, argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    sys.exit(main())
