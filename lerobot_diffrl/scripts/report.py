"""``lerobot-diffrl-report``: trajectory-quality metrics of one or several datasets, side by side.

Example (generated data against LIBERO's human data and a Gaussian-RL dataset)::

    lerobot-diffrl-report --datasets='[outputs/gen/diffrl, lerobot/libero, outputs/gen/gaussrl]' \\
        --labels='[diffusion-RL, human, Gaussian-RL]' --output_dir=outputs/report

Writes ``report.json``, ``report.md`` and PNG plots to ``--output_dir`` and prints the side-by-side table and,
with several datasets, the claim check of the first one against the others (smoother: lower jerk and |delta a|,
higher SPARC and LDLJ, each also length-adjusted; more consistent: lower within-task variances and pairwise
distance; more efficient: shorter episodes). Per-episode values (SPARC, LDLJ and the length-adjusted ones
included) are in ``report.json``; to rank or drop episodes by them, see ``lerobot-diffrl-filter``.
``--update_card=true`` also writes the dataset card (with the tables and plots) into the first dataset, which
must be a local folder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from lerobot_diffrl.data.card import write_dataset_card
from lerobot_diffrl.data.dataset_io import load_episode_set
from lerobot_diffrl.data.metrics import DEFAULT_RESAMPLE_POINTS, LIBERO_CONTROL_HZ
from lerobot_diffrl.data.plots import make_plots
from lerobot_diffrl.data.report import DEFAULT_ACTION_DIMS, compute_report
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts.cli import parse_config, run_cli


@dataclass
class ReportConfig:
    #: Local dataset folders and/or Hub repo ids (loaded with LeRobotDataset, without videos).
    datasets: list[str] = field(default_factory=list)
    #: One label per dataset for tables and plots; default: the folder name or repo id.
    labels: list[str] = field(default_factory=list)
    output_dir: str = "outputs/report"
    #: Write the card (README.md with provenance, tables, plots) into the first dataset (a local folder).
    update_card: bool = False
    #: Leading action dimensions used by the action metrics (LIBERO: 6 arm dims, gripper excluded); null: all.
    action_dims: int | None = DEFAULT_ACTION_DIMS
    #: Points per time-normalised trajectory for the pairwise distance and the action variance.
    resample_points: int = DEFAULT_RESAMPLE_POINTS
    #: Control rate (Hz) SPARC and LDLJ differentiate the eef path at. LIBERO controls at 20 Hz whatever a
    #: dataset's fps metadata says (LeRobot's Hub ports say 10), so it is not read from the datasets.
    fs: float = LIBERO_CONTROL_HZ
    plots: bool = True


def run_report(cfg: ReportConfig) -> int:
    if not cfg.datasets:
        raise ConfigError("--datasets is required, e.g. --datasets='[outputs/gen/diffrl, lerobot/libero]'")
    if cfg.labels and len(cfg.labels) != len(cfg.datasets):
        raise ConfigError(
            f"--labels has {len(cfg.labels)} entries but --datasets has {len(cfg.datasets)}; give one per dataset"
        )
    if cfg.update_card and not Path(cfg.datasets[0]).expanduser().is_dir():
        raise ConfigError(
            f"--update_card needs the first dataset to be a local folder, got '{cfg.datasets[0]}'"
        )
    labels = cfg.labels or [None] * len(cfg.datasets)
    sets = []
    with tqdm(
        total=len(cfg.datasets), desc="loading datasets", unit="dataset"
    ) as bar:  # closed on errors too
        for src, lab in zip(cfg.datasets, labels, strict=True):
            sets.append(load_episode_set(src, lab))
            bar.update()
    seen: dict[str, int] = {}
    for es in sets:  # two datasets with the same folder name get distinct default labels
        if es.label in seen and not cfg.labels:
            seen[es.label] += 1
            es.label = f"{es.label} ({seen[es.label]})"
        seen.setdefault(es.label, 1)
    report = compute_report(sets, action_dims=cfg.action_dims, resample_points=cfg.resample_points, fs=cfg.fs)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots(report, sets, out) if cfg.plots else []
    report.save_json(out / "report.json")
    (out / "report.md").write_text(report.to_markdown([p.name for p in plots]))
    print(f"Side by side (over {report.comparison_scope}):\n")
    print(report.comparison_table())
    if len(sets) > 1:
        print(f"\nClaim check: {report.labels[0]} against the others:\n")
        print(report.claim_table())
    print(f"\nwrote {out / 'report.json'}, {out / 'report.md'}" + "".join(f", {p}" for p in plots))
    if cfg.update_card:
        card = write_dataset_card(sets[0].root, report, plots)
        print(f"wrote dataset card {card}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(ReportConfig, argv)
    return run_cli(lambda: run_report(cfg))


if __name__ == "__main__":
    sys.exit(main())
