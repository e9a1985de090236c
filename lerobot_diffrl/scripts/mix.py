"""``lerobot-diffrl-mix``: a training dataset from the project's data mixed with another dataset at a frame ratio.

    lerobot-diffrl-mix --dataset.repo_id=<user>/diffrl-libero --mix_with.repo_id=lerobot/libero \\
        --ratio=0.5 --suites=libero_object --repo_id=<user>/diffrl-libero-object-mix50

``--ratio`` is the share of ``--dataset``'s frames in the result (lerobot-train samples frames uniformly, so it is
also its share of the training batches). Without ``--mix_with`` it writes the ``--suites`` subset of ``--dataset``.
See :mod:`lerobot_diffrl.recipes.mixing` for how episodes are chosen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts.cli import parse_config, run_cli


@dataclass
class DatasetRef:
    repo_id: str | None = None
    root: str | None = None


@dataclass
class MixConfig:
    #: The project's dataset (its share of the frames is ``ratio``).
    dataset: DatasetRef = field(default_factory=DatasetRef)
    #: The dataset to mix in, e.g. LIBERO human demonstrations (``lerobot/libero``); optional.
    mix_with: DatasetRef = field(default_factory=DatasetRef)
    ratio: float | None = None
    #: Comma-separated LIBERO suites to keep (``libero_object,libero_spatial``); default: everything.
    suites: str | None = None
    #: Output dataset id and folder (default folder: ``$HF_LEROBOT_HOME/<repo_id>``).
    repo_id: str | None = None
    root: str | None = None
    seed: int = 0
    #: Drop features only one dataset has (e.g. the RL columns next.reward/done/success) and give the second
    #: dataset the first's feature labels and robot type; fps, dtypes and shapes must still match.
    harmonize: bool = False


def mix(cfg: MixConfig) -> int:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    from lerobot_diffrl.recipes.eval_protocol import parse_suites
    from lerobot_diffrl.recipes.mixing import MixSource, build_mixed_dataset

    if not cfg.dataset.repo_id:
        raise ConfigError("--dataset.repo_id is required")
    if not cfg.repo_id:
        raise ConfigError("--repo_id (the mixed dataset's id) is required")
    suites = parse_suites(cfg.suites) if cfg.suites else None
    mix_with = MixSource(cfg.mix_with.repo_id, cfg.mix_with.root) if cfg.mix_with.repo_id else None
    out_root = Path(cfg.root) if cfg.root else HF_LEROBOT_HOME / cfg.repo_id
    out = build_mixed_dataset(
        MixSource(cfg.dataset.repo_id, cfg.dataset.root),
        cfg.repo_id,
        out_root,
        mix_with=mix_with,
        ratio=cfg.ratio,
        suites=suites,
        seed=cfg.seed,
        harmonize=cfg.harmonize,
    )
    print(f"wrote {out} ({(out / 'meta' / 'mixing.json')})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: mix(parse_config(MixConfig, argv)))


if __name__ == "__main__":
    sys.exit(main())
