"""The pipeline's scheduler and launchers on real commands (small Python processes), and their bad input.

The end-to-end runs of the tiny recipe on a local Ray cluster are in ``tests/test_pipeline_ray.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.recipes.launchers import LocalLauncher, SerialLauncher
from lerobot_diffrl.recipes.pipeline_config import LauncherConfig, PipelineConfig
from lerobot_diffrl.recipes.pipeline_runner import check_prerequisites
from lerobot_diffrl.recipes.pipeline_schedule import Scheduler, StageFailed, marker_path
from lerobot_diffrl.recipes.pipeline_stages import STAGE_JOBS, Job, RunLayout

REPO = Path(__file__).resolve().parents[1]


def _sleeper(out: Path, seconds: float, code: int = 0) -> list[str]:
    """A command that takes ``seconds``, writes the GPUs it was given into ``out``, and exits with ``code``."""
    body = (
        "import os, sys, time\n"
        f"time.sleep({seconds})\n"
        f"os.makedirs({str(out)!r}, exist_ok=True)\n"
        f"open(os.path.join({str(out)!r}, 'gpus'), 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', '-'))\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", body]


def _job(stage: str, name: str, root: Path, seconds: float = 1.0, needs=(), devices=0, code=0) -> Job:
    out = root / "artefacts" / name.replace("/", "_")
    return Job(stage, name, out, command=lambda: _sleeper(out, seconds, code), needs=needs, devices=devices)


def _run(jobs: list[Job], launcher, layout: RunLayout, cfg: PipelineConfig) -> dict:
    try:
        with tqdm(total=len(jobs), disable=True) as bar:
            return Scheduler(jobs, launcher, layout, cfg).run(bar)
    finally:
        launcher.shutdown()


def _overlap(a: dict, b: dict) -> bool:
    return a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]


def test_independent_jobs_run_at_once_and_a_job_waits_for_what_it_needs(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    cfg = PipelineConfig(launcher=LauncherConfig(cpu_slots=2))
    jobs = [
        _job("rl", "rl/a", tmp_path, 2.0),
        _job("rl", "rl/b", tmp_path, 2.0),
        _job("generate", "generate/a", tmp_path, 0.2, needs=("rl/a",)),
        _job("report", "report", tmp_path, 0.2, needs=("generate", "demos")),  # demos: not in this run
    ]
    records = _run(jobs, LocalLauncher(cfg), layout, cfg)
    assert _overlap(records["rl/a"], records["rl/b"])
    assert records["generate/a"]["started_at"] >= records["rl/a"]["finished_at"]
    assert records["report"]["started_at"] >= records["generate/a"]["finished_at"]
    for job in jobs:
        marker = json.loads(marker_path(layout, job).read_text())
        assert marker["launcher"] == "local" and marker["attempts"] == 1
    assert json.loads((layout.markers / "rl.json").read_text())["jobs"] == ["rl/a", "rl/b"]


def test_the_serial_launcher_runs_one_job_at_a_time_in_pipeline_order(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    cfg = PipelineConfig(launcher=LauncherConfig(type="serial"))
    jobs = [_job("rl", "rl/a", tmp_path, 0.5), _job("rl", "rl/b", tmp_path, 0.5)]
    records = _run(jobs, SerialLauncher(cfg), layout, cfg)
    assert records["rl/b"]["started_at"] >= records["rl/a"]["finished_at"]


def test_gpu_jobs_get_their_own_gpus_and_wait_for_a_free_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    layout = RunLayout(tmp_path / "run")
    cfg = PipelineConfig(device="cuda")
    jobs = [_job("rl", f"rl/{g}", tmp_path, 1.5, devices=1) for g in "abc"]
    records = _run(jobs, LocalLauncher(cfg), layout, cfg)
    gpus = {name: (Path(j.output) / "gpus").read_text() for name, j in zip("abc", jobs, strict=True)}
    assert sorted([gpus["a"], gpus["b"]]) == ["3", "5"]  # the first two at once, one GPU each
    assert _overlap(records["rl/a"], records["rl/b"])
    assert gpus["c"] in ("3", "5")
    assert records["rl/c"]["started_at"] >= min(
        records["rl/a"]["finished_at"], records["rl/b"]["finished_at"]
    )


def test_a_job_asking_for_more_gpus_than_the_machine_has_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cfg = PipelineConfig(device="cuda")
    job = _job("vla", "vla/train", tmp_path, devices=2)
    with pytest.raises(ConfigError, match="job vla/train asks for 2 GPU\\(s\\) and this machine has 1"):
        LocalLauncher(cfg).check([job])


def test_a_failed_job_stops_the_run_its_neighbour_saves_and_nothing_is_marked(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    cfg = PipelineConfig(launcher=LauncherConfig(cpu_slots=2))
    saver = tmp_path / "saved"
    slow = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(saver)!r}, 'w').write('saved'), sys.exit(143)))\n"
        "time.sleep(60)\n"
    )
    jobs = [
        Job("rl", "rl/slow", tmp_path / "slow", command=lambda: [sys.executable, "-c", slow]),
        _job("rl", "rl/bad", tmp_path, 0.5, code=3),
    ]
    with pytest.raises(StageFailed, match=r"stage rl \(rl/bad\) failed with exit status 3"):
        _run(jobs, LocalLauncher(cfg), layout, cfg)
    assert saver.read_text() == "saved"  # the running neighbour got SIGTERM and saved
    assert not (layout.markers / "rl").exists() and not (layout.markers / "rl.json").exists()


def test_jobs_of_a_two_group_recipe_need_exactly_their_own_group(tmp_path: Path) -> None:
    cfg = PipelineConfig(tasks=["libero_object:0,1"], output_dir=str(tmp_path / "run"))
    cfg.bc.per_task = True
    cfg.generate.shards = 2
    layout = RunLayout(cfg.run_dir())
    jobs = {job.name: job for stage in STAGE_JOBS for job in STAGE_JOBS[stage](cfg, layout)}
    g0, g1 = "libero_object_task00", "libero_object_task01"
    assert jobs["bc/demos_per_group"].needs == ("demos",)
    assert jobs[f"bc/state_demos_{g0}"].needs == ("bc/demos_per_group",)
    assert jobs[f"bc/{g0}"].needs == (f"bc/state_demos_{g0}",)
    assert jobs[f"rl/{g1}"].needs == (f"bc/{g1}",)
    shards = [n for n in jobs if n.startswith(f"generate/{g0}/")]
    assert shards == [f"generate/{g0}/shard-000-of-002", f"generate/{g0}/shard-001-of-002"]
    assert all(jobs[n].needs == (f"rl/{g0}",) for n in shards)
    assert "--shard_index=1" in jobs[shards[1]].command() and "--num_shards=2" in jobs[shards[1]].command()
    assert set(jobs["generate/merge"].needs) == {n for n in jobs if n.startswith("generate/libero")}
    assert jobs["eval/libero_object"].needs == ("vla/train",)
    # a stage run on its own needs the markers of the stages its jobs read
    alone = [job for job in STAGE_JOBS["rl"](cfg, layout)]
    cfg.stages = ["rl"]
    with pytest.raises(ConfigError, match="stage 'rl' needs the artefact of stage 'bc'"):
        check_prerequisites(layout, cfg, alone)


def _pipeline(*args: str, env: dict | None = None, pre: str = "") -> subprocess.CompletedProcess:
    code = (
        f"{pre}import sys\nfrom lerobot_diffrl.scripts.pipeline import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, env, pre, message",
    [
        (["--launcher.type=slurm"], {}, "", "launcher.type must be one of serial, local, ray, got 'slurm'"),
        (["--launcher.cpu_slots=0"], {}, "", "launcher.cpu_slots must be >= 1"),
        (
            ["--launcher.type=ray"],
            {},
            "sys_modules = __import__('sys').modules; sys_modules['ray'] = None\n",
            "launcher.type=ray needs Ray: pip install 'lerobot_policy_diffrl[ray]'",
        ),
        (
            ["--launcher.type=ray", "--launcher.address=127.0.0.1:9"],
            {},
            "",
            "no Ray cluster answers at 127.0.0.1:9",
        ),
        (
            ["--device=cuda"],
            {"CUDA_VISIBLE_DEVICES": ""},
            "",
            "asks for 1 GPU(s) and this machine has 0",
        ),
        (
            ["--device=cuda", "--launcher.type=ray"],
            {"CUDA_VISIBLE_DEVICES": "", "RAY_USAGE_STATS_ENABLED": "0"},
            "",
            "asks for 1 GPU(s) and the Ray cluster has 0",
        ),
    ],
)
def test_bad_launchers_are_one_error_line_and_leave_nothing(args, env, pre, message, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _pipeline(f"--output_dir={out}", "--stages=[demos,bc,rl]", *args, env=env, pre=pre)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr[-2000:]
    assert not out.exists()
