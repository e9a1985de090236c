"""``lerobot-diffrl-push``: validate a finalized local dataset, write its card, upload it to the Hub.

Example::

    lerobot-diffrl-push --root=outputs/gen/diffrl --repo_id=<user>/libero-diffrl --private=true
    lerobot-diffrl-push --root=outputs/gen/diffrl --repo_id=<user>/libero-diffrl --dry_run=true  # list only

The card gets the quality report stored in ``<root>/meta/report/`` (by ``lerobot-diffrl-report
--update_card=true`` or the generator); without one, ``--report=true`` computes this dataset's report first.
An interrupted upload resumes when the same command is run again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lerobot_diffrl.data.card import REPORT_DIR, write_card_with_report
from lerobot_diffrl.data.dataset_io import check_finalized
from lerobot_diffrl.data.publish import check_can_push, check_repo_id, push_dataset
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts.cli import parse_config, run_cli


@dataclass
class PushConfig:
    #: The local, finalized LeRobotDataset folder.
    root: str = ""
    #: Target dataset repo, '<user or org>/<name>'; created if missing.
    repo_id: str = ""
    private: bool = False
    #: Branch to upload to (created if missing); default: main.
    revision: str | None = None
    #: Validate and write the card, print the files that would be uploaded, upload nothing.
    dry_run: bool = False
    #: Compute this dataset's quality report (tables and plots on the card) when none is stored yet.
    report: bool = True
    license: str = "apache-2.0"
    #: Tries per Hub call on transient errors (HTTP 5xx/429, connection errors), with exponential back-off.
    max_attempts: int = 5


def run_push(cfg: PushConfig) -> int:
    if not cfg.root or not cfg.repo_id:
        raise ConfigError(
            "--root and --repo_id are required, e.g. --root=outputs/gen --repo_id=<user>/<name>"
        )
    check_repo_id(cfg.repo_id)
    if cfg.max_attempts < 1:
        raise ConfigError(f"--max_attempts must be >= 1, got {cfg.max_attempts}")
    if not cfg.dry_run:
        check_can_push(cfg.repo_id)  # offline or logged out: say so before spending time on validation
    root = Path(cfg.root).expanduser()
    if cfg.report and not (root / REPORT_DIR / "report.json").is_file():
        check_finalized(root)  # refuse a broken dataset before spending time on its report
        write_card_with_report(root, repo_id=cfg.repo_id, license=cfg.license)
    files = push_dataset(
        root,
        cfg.repo_id,
        private=cfg.private,
        dry_run=cfg.dry_run,
        revision=cfg.revision,
        license=cfg.license,
        attempts=cfg.max_attempts,
    )
    if cfg.dry_run:
        print(f"dry run: {len(files)} files would be uploaded to datasets/{cfg.repo_id}:")
        print("\n".join(f"  {f}" for f in files))
    else:
        print(f"pushed {len(files)} files to https://huggingface.co/datasets/{cfg.repo_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PushConfig, argv)
    return run_cli(lambda: run_push(cfg))


if __name__ == "__main__":
    sys.exit(main())
