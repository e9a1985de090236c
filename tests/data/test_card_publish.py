"""Dataset card and publishing, offline: the exact files and card a push would upload, refusals, retries."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import DatasetCard
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from quality_helpers import TASKS, line_episode, make_dataset, smooth_and_noisy

from lerobot_diffrl.data.card import write_dataset_card
from lerobot_diffrl.data.dataset_io import load_episode_set
from lerobot_diffrl.data.plots import make_plots
from lerobot_diffrl.data.publish import push_dataset, with_retries
from lerobot_diffrl.data.report import compute_report
from lerobot_diffrl.errors import DatasetError
from lerobot_diffrl.scripts import push as push_cli

# lerobot 0.4.4's stats code warns about every bool column (next.done, next.success) it histograms.
pytestmark = pytest.mark.filterwarnings("ignore:Converting input from bool:RuntimeWarning")
REPO_ID = "someone/libero-diffrl"
SHA = "3f" * 32
TRAIN_CONFIG = {"algorithm": "dppo", "ft_denoising_steps": 10, "gamma": 0.999}
CHECKPOINT = "outputs/rl/libero_object/checkpoints/last/pretrained_model"


def generator_provenance(assets: Path) -> dict:
    """Provenance exactly as the generation stage writes it (its own builder), for 2 tasks and 7 attempts."""
    from lerobot_diffrl.data.provenance import build_provenance

    per_task = {
        f"libero_object/{i}": {
            "suite": "libero_object",
            "task_id": i,
            "task": task,
            "attempts": a,
            "successes": s,
        }
        for i, (task, a, s) in enumerate([(TASKS[0], 4, 3), (TASKS[1], 3, 3)])
    }
    return build_provenance(
        actor={
            "policy_type": "diffrl",
            "path": CHECKPOINT,
            "repo_id": None,
            "model_sha256": SHA,
            "train_config": TRAIN_CONFIG,
        },
        config={"keep": "success", "seed": 7, "episodes_per_task": 2},
        shard={"index": 0, "count": 1},
        per_task=per_task,
        episodes=[{"episode_index": i, "task": TASKS[i // 2], "success": True} for i in range(4)],
        assets=assets,
    )


DATASET_FILES = [
    "data/chunk-000/file-000.parquet",
    "meta/episodes/chunk-000/file-000.parquet",
    "meta/info.json",
    "meta/provenance.json",
    "meta/stats.json",
    "meta/tasks.parquet",
    "videos/observation.images.image/chunk-000/file-000.mp4",
    "videos/observation.images.image2/chunk-000/file-000.mp4",
]
REPORT_FILES = [
    "meta/report/distributions.png",
    "meta/report/eef_paths.png",
    "meta/report/report.json",
    "meta/report/task_metrics.png",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("publish")
    smooth, noisy = smooth_and_noisy(base, per_task=2, steps=12)
    assets = base / "assets"  # a stand-in tree: one flat-colour texture of a few bytes
    (assets / "textures").mkdir(parents=True)
    (assets / "textures" / "plate.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(60))
    (assets / "scene.xml").write_text("<mujoco/>" * 200)
    provenance = generator_provenance(assets)
    (smooth / "meta" / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return {"dataset": smooth, "noisy": noisy, "assets": assets}


@pytest.fixture
def dataset(built, tmp_path) -> Path:
    """A fresh copy of the finalized dataset (with provenance, without card) that a test may modify."""
    root = tmp_path / "libero-diffrl"
    shutil.copytree(built["dataset"], root)
    return root


def report_and_plots(root: Path, other: Path, out: Path):
    sets = [load_episode_set(str(root), "diffusion-RL"), load_episode_set(str(other), "human")]
    report = compute_report(sets)
    return report, make_plots(report, sets, out)


def test_card_states_provenance_metrics_and_plots(dataset, built, tmp_path):
    report, plots = report_and_plots(dataset, built["noisy"], tmp_path / "plots")
    card_path = write_dataset_card(dataset, report, plots)
    assert card_path == dataset / "README.md"

    card = DatasetCard.load(card_path)
    assert card.data.license == "apache-2.0"
    assert card.data.task_categories == ["robotics"]
    assert card.data.tags == ["LeRobot", "LIBERO", "lerobot-diffrl", "diffrl"]
    assert card.data.configs == [{"config_name": "default", "data_files": "data/*/*.parquet"}]
    text = card.text
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("lerobot", "lerobot_policy_diffrl", "hf-libero", "robosuite", "mujoco")
    )
    for line in [
        "| Generator | lerobot-diffrl-generate |",
        "| Actor | diffrl |",
        f"| Actor checkpoint | `{CHECKPOINT}` |",
        f"| Checkpoint sha256 | `{SHA}` |",
        "| Seeds | 7 |",
        "| Suites | libero_object |",
        "| Generation success | 6 successes / 7 attempts (85.7%) |",
        f"| Versions | {versions}, ",
        f"| LIBERO assets | `{built['assets']}` |",
        "**Rendered with stand-in LIBERO assets.** 1 asset file(s) were rebuilt",
        "because the original ones were unavailable: textures/plate.png. Images differ",
        '"algorithm": "dppo"',  # the actor's RL config
        '"keep": "success"',  # the generation config
        '"episodes": "<4 records, see meta/provenance.json>"',
        "a diffusion policy (`diffrl`) warm-started by behaviour cloning and fine-tuned by reinforcement",
        report.comparison_table(),
        report.per_task_table("diffusion-RL"),
        "### Claim check: diffusion-RL against the others\n\n" + report.claim_table("diffusion-RL"),
        "This dataset (**diffusion-RL**) side by side with human",
    ]:
        assert line in text, line
    # the success rate on the card is the generator's (6 of 7 attempts), not the kept episodes' (100%)
    assert report.dataset("diffusion-RL").overall["success_rate"] == pytest.approx(6 / 7)
    links = re.findall(r"!\[\w+\]\((meta/report/[\w.]+\.png)\)", text)
    assert sorted(links) == [f for f in REPORT_FILES if f.endswith(".png")]
    for link in links:
        assert (dataset / link).read_bytes() == (tmp_path / "plots" / Path(link).name).read_bytes()


def test_card_without_provenance_or_report(dataset):
    (dataset / "meta" / "provenance.json").unlink()
    text = write_dataset_card(dataset).read_text()
    assert "No `meta/provenance.json` was recorded with this dataset" in text
    assert (
        f"No quality report yet: run `lerobot-diffrl-report --datasets='[{dataset}]' --update_card=true`"
        in text
    )
    assert "stand-in" not in text and "by an unrecorded actor" in text
    assert DatasetCard.load(dataset / "README.md").data.tags == ["LeRobot", "LIBERO", "lerobot-diffrl"]


def test_dry_run_returns_the_exact_upload_and_writes_the_card(dataset, built, tmp_path):
    report, plots = report_and_plots(dataset, built["noisy"], tmp_path / "plots")
    write_dataset_card(dataset, report, plots)
    junk = [
        "images/observation.images.image/episode-000000/frame-000000.png",  # LeRobot's temporary frames
        ".cache/huggingface/upload/meta/info.json.metadata",  # upload_large_folder's resume state
        "data/chunk-000/file-001.parquet.tmp",
        "videos/observation.images.image/chunk-000/file-001.mp4.part",
        "meta/.info.json.swp",
        "meta/episodes/chunk-000/file-000.parquet.lock",
    ]
    for rel in junk:
        (dataset / rel).parent.mkdir(parents=True, exist_ok=True)
        (dataset / rel).write_bytes(b"x")

    files = push_dataset(dataset, REPO_ID, dry_run=True)

    assert files == sorted(["README.md", *DATASET_FILES, *REPORT_FILES])
    card = (dataset / "README.md").read_text()
    assert f"visualize_dataset?path={REPO_ID}" in card  # re-rendered for the target repo
    assert report.comparison_table() in card  # ... keeping the stored report
    assert all((dataset / rel).exists() for rel in junk)  # a dry run deletes nothing


def test_cli_dry_run_computes_the_report_for_the_card(dataset, capsys):
    rc = push_cli.main([f"--root={dataset}", f"--repo_id={REPO_ID}", "--dry_run=true"])
    assert rc == 0
    out = capsys.readouterr().out
    expected = sorted(["README.md", *DATASET_FILES, *REPORT_FILES])
    assert f"dry run: {len(expected)} files would be uploaded to datasets/{REPO_ID}:" in out
    assert [line.strip() for line in out.splitlines() if line.startswith("  ")] == expected
    card = (dataset / "README.md").read_text()
    assert "| mean squared jerk [(a.u./step^3)^2] (lower is better) | 0 |" in card


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bump_frames(root: Path) -> None:
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] += 1
    info_path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda r: shutil.rmtree(r / "meta" / "episodes"),
            "is not finalized: no parquet files under meta/episodes/",
        ),
        (
            lambda r: _truncate(r / "meta/episodes/chunk-000/file-000.parquet"),
            r"is not finalized: meta/episodes/chunk-000/file-000.parquet cannot be read",
        ),
        (
            lambda r: (r / "videos/observation.images.image2/chunk-000/file-000.mp4").unlink(),
            r"is incomplete: video file\(s\) missing: videos/observation.images.image2/chunk-000/file-000.mp4",
        ),
        (
            lambda r: (r / "data/chunk-000/file-000.parquet").unlink(),
            r"is incomplete: data file\(s\) missing: data/chunk-000/file-000.parquet",
        ),
        (_bump_frames, "is not finalized: episode lengths sum to 48 frames, info.json says 49"),
        (lambda r: (r / "meta/info.json").unlink(), r"is not a LeRobotDataset: meta/info.json is missing"),
    ],
    ids=["no-episodes", "truncated-episodes", "missing-video", "missing-data", "frame-count", "no-info"],
)
def test_a_damaged_dataset_is_refused(dataset, damage, message):
    damage(dataset)
    with pytest.raises(DatasetError, match=message):
        push_dataset(dataset, REPO_ID, dry_run=True)
    assert not (dataset / "README.md").exists()  # refused before anything is written


def test_a_dataset_whose_writer_was_not_finalized_is_refused(tmp_path):
    root = tmp_path / "open"
    writer = make_dataset(root, [(TASKS[0], *line_episode([0, 0, 1], [0.2, 0.1, 0.9], 8))], finalize=False)
    with pytest.raises(DatasetError, match="is not finalized"):
        push_dataset(root, REPO_ID, dry_run=True)
    writer.finalize()  # the same folder, finalized, passes
    assert "data/chunk-000/file-000.parquet" in push_dataset(root, REPO_ID, dry_run=True)


def test_an_invalid_repo_id_is_refused(dataset):
    from lerobot_diffrl.errors import ConfigError

    with pytest.raises(ConfigError, match="must be '<user or org>/<name>'"):
        push_dataset(dataset, "no-namespace", dry_run=True)


def test_a_real_push_offline_fails_with_one_clear_error(dataset):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(DatasetError, match=f"cannot push to '{REPO_ID}': HF_HUB_OFFLINE is set; unset it"):
        push_dataset(dataset, REPO_ID)


@pytest.mark.slow
def test_push_console_script_offline_prints_one_error_line(built, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(built["dataset"], root)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-diffrl-push"),
            f"--root={root}",
            f"--repo_id={REPO_ID}",
            "--private=true",
            "--report=false",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: cannot push to '{REPO_ID}': HF_HUB_OFFLINE is set; unset it to publish"
    ]


@pytest.mark.slow
def test_push_with_the_hub_unreachable_fails_with_one_error_line(built, tmp_path):
    """Online mode, a token, but nothing listening at the Hub endpoint: a clear error, not a traceback."""
    root = tmp_path / "ds"
    shutil.copytree(built["dataset"], root)
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_TOKEN="hf_" + "x" * 34, HF_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-diffrl-push"),
            f"--root={root}",
            f"--repo_id={REPO_ID}",
            "--report=false",
            "--max_attempts=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: cannot reach the Hugging Face Hub to push '{REPO_ID}' (ConnectError: ")
    assert line.endswith(
        "check the network, then run the same command again: the upload resumes where it stopped"
    )
    assert "create_repo failed" in proc.stderr  # the transient error was retried once before giving up


def http_error(status: int) -> HfHubHTTPError:
    url = "https://huggingface.co/api/repos/create"
    response = httpx.Response(status, request=httpx.Request("POST", url))
    return HfHubHTTPError(f"{status} Server Error for url: {url}", response=response)


def test_retry_recovers_from_two_server_errors():
    calls, delays = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise http_error(503)
        return "created"

    assert with_retries(flaky, what="create_repo", sleep=delays.append) == "created"
    assert len(calls) == 3 and delays == [2.0, 4.0]  # exponential back-off


def test_retry_gives_up_after_the_bounded_number_of_attempts():
    calls, delays = [], []

    def down() -> None:
        calls.append(1)
        raise httpx.ConnectError("connection reset")  # what huggingface_hub 1.x raises offline

    with pytest.raises(httpx.ConnectError):
        with_retries(down, what="upload", attempts=4, base_delay_s=10, max_delay_s=15, sleep=delays.append)
    assert len(calls) == 4 and delays == [10, 15, 15]


@pytest.mark.parametrize("error", [http_error(404), http_error(401), OfflineModeIsEnabled("offline")])
def test_retry_does_not_repeat_permanent_errors(error):
    calls, delays = [], []

    def fails() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        with_retries(fails, what="create_repo", sleep=delays.append)
    assert len(calls) == 1 and delays == []
