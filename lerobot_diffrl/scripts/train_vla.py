"""``lerobot-diffrl-train-vla``: check a VLA recipe against its data and models, then launch it with accelerate.

    lerobot-diffrl-train-vla --accelerate_config=recipes/accelerate/multi_gpu_ddp.yaml \\
        --config_path=recipes/pi05_libero.json --dataset.repo_id=<user>/diffrl-libero --output_dir=outputs/train/pi05

Everything except the launcher's own flags is passed unchanged to ``accelerate launch $(which lerobot-train)``, so
the run is exactly the documented one. Before launching, the recipe is parsed the way lerobot-train parses it and
checked (see :mod:`lerobot_diffrl.recipes.preflight`): the dataset exists and fits the model, the base model and
the VLM backbone (SmolVLA) or the prompt tokenizer (pi0/pi05) are reachable (offline: cached), a small pi backbone
is installed (``LEROBOT_DIFFRL_SMALL_PI=1``, see :mod:`lerobot_diffrl.recipes.pi_backbone`), the output folder is
new. A failure is one ``error:`` line, exit status 2, and nothing written. If the training itself fails,
checkpoint folders it left incomplete are removed (and the output folder, if it holds no complete checkpoint).

Launcher flags: ``--accelerate_config=FILE`` (an accelerate config, e.g. ``recipes/accelerate/*.yaml``),
``--num_processes=N`` (overrides the config's), ``--dry_run=true`` (check and print the command, do not train).
"""

from __future__ import annotations

import sys

from lerobot_diffrl.recipes.vla_launch import launch
from lerobot_diffrl.scripts.cli import run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: launch(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
