"""``lerobot-diffrl-pipeline``: the tiny embedded recipe end to end, then again (every stage skipped), and bad input.

The end-to-end run is the README's main job: scripted demos on two libero_object tasks, ``lerobot-train`` BC of a
small pixel ``diffrl``, two DPPO iterations on LIBERO, generation with the fine-tuned expert, the quality report,
a SmolVLA fine-tuned under ``accelerate launch`` (two processes) on a tiny local SmolVLM, and ``lerobot-eval``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from lerobot_diffrl.recipes.pipeline_config import STAGES, PipelineConfig
from lerobot_diffrl.scripts.pipeline import main as pipeline_main

REPO = Path(__file__).resolve().parents[1]
TASK0 = "pick up the alphabet soup and place it in the basket"
TASK1 = "pick up the cream cheese and place it in the basket"


def run_pipeline(*args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    return subprocess.run(
        [sys.executable, "-m", "lerobot_diffrl.scripts.pipeline", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The tiny recipe run twice in one folder."""
    out = tmp_path_factory.mktemp("pipeline") / "tiny"
    first = run_pipeline(f"--output_dir={out}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    second = run_pipeline(f"--output_dir={out}")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    return out, first, second


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the tiny recipe runs twice in the fixture (~10 min alone on 2 cores)
def test_tiny_recipe_runs_every_stage_and_leaves_every_artefact(tiny_run) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import get_policy_class

    import lerobot_diffrl.policies  # noqa: F401  (registers diffrl in this process)

    out, first, _ = tiny_run
    assert set(_summary(out)["stages"]) == set(STAGES)
    # the second run rewrote summary.json: what the first one did is read from its printed summary
    ran = [line for line in first.stdout.splitlines() if line.startswith("| ") and "| ran |" in line]
    assert {line.split("|")[1].strip() for line in ran} == set(STAGES)

    # 1. scripted demos: 8 successful episodes, LIBERO conventions, 64x64 cameras and the object state
    demos = LeRobotDataset("local/demos", root=out / "demos" / "libero_object")
    assert demos.num_episodes == 8
    assert list(demos.meta.tasks.index) == [TASK0]
    assert tuple(demos.meta.features["observation.images.image"]["shape"][:2]) == (64, 64)
    assert "observation.environment_state" in demos.meta.features
    demo_prov = json.loads((out / "demos" / "libero_object" / "meta" / "provenance.json").read_text())
    assert demo_prov["actor"]["kind"] == "scripted"

    # 2. BC: a state diffrl expert made by lerobot-train on the camera-free copy of the demos
    state_demos = LeRobotDataset("local/state", root=out / "demos" / "state" / "libero_object")
    assert state_demos.num_episodes == 8 and not state_demos.meta.video_keys
    bc = get_policy_class("diffrl").from_pretrained(
        out / "bc" / "libero_object" / "checkpoints" / "last" / "pretrained_model"
    )
    assert bc.config.tasks == [TASK0]
    assert set(bc.config.input_features) == {"observation.state", "observation.environment_state"}
    assert (out / "bc" / "libero_object" / "checkpoints" / "last" / "training_state").is_dir()

    # 3. RL: three DPPO iterations in state mode; the expert succeeds before and after (10 init states)
    rl = json.loads((out / "rl" / "libero_object" / "summary.json").read_text())
    assert rl["iterations"] == 3 and rl["policy_type"] == "diffrl"
    assert 3 * 16 * 8 <= rl["env_steps"] <= 3 * 16 * 8 * 8  # iterations x envs x chunks (x actions per chunk)
    assert rl["success_before"] > 0.0 and rl["success_after"] > 0.0

    # 4. generation with the fine-tuned expert: 2 episodes (all kept, with the success column)
    data = LeRobotDataset("local/tiny", root=out / "dataset")
    assert data.num_episodes == 2
    assert {"next.success", "next.reward", "next.done", "observation.state", "action"} <= set(
        data.meta.features
    )
    prov = json.loads((out / "dataset" / "meta" / "provenance.json").read_text())
    assert prov["actor"]["kind"] == "policy" and prov["actor"]["policy_type"] == "diffrl"
    rl_checkpoints = (out / "rl" / "libero_object" / "checkpoints").resolve()
    assert Path(prov["actor"]["path"]).resolve().parent.parent == rl_checkpoints
    bc_last = out / "bc" / "libero_object" / "checkpoints" / "last" / "pretrained_model"
    assert Path(prov["actor"]["train_config"]["policy_path"]).resolve() == bc_last.resolve()

    # 5. report: the generated data side by side with the demos, plots and the dataset card
    report = json.loads((out / "report" / "report.json").read_text())
    assert [d["n_episodes"] for d in report["datasets"]] == [2, 8]
    generated, demo_figures = (d["overall"] for d in report["datasets"])
    for key in (
        "jerk",
        "sparc",
        "ldlj",
        "jerk_adj",
        "sparc_adj",
    ):  # the standard smoothness figures, both sides
        assert np.isfinite(generated[key]) and np.isfinite(demo_figures[key]), key
    assert demo_figures["sparc"] < 0 and demo_figures["jerk"] < generated["jerk"]
    assert report["datasets"][1]["overall"]["success_rate"] == 1.0
    assert list((out / "report").glob("*.png"))
    assert "lerobot-diffrl" in (out / "dataset" / "README.md").read_text()

    # 6. VLA: SmolVLA fine-tuned by accelerate with two processes on the generated dataset
    vla_log = (out / "logs" / "vla-train.log").read_text()
    assert "Effective batch size: 4 x 2 = 8" in vla_log
    vla_dir = out / "vla" / "train" / "checkpoints" / "last" / "pretrained_model"
    assert json.loads((vla_dir / "config.json").read_text())["type"] == "smolvla"

    # 7. evaluation under the pinned protocol: one episode of the task
    results = json.loads((out / "eval" / "libero_object" / "results.json").read_text())
    assert results["overall"]["episodes"] == 1 and results["overall"]["tasks"] == 1
    assert (out / "eval" / "libero_object" / "results.md").is_file()

    summary_md = (out / "summary.md").read_text()
    assert "# Pipeline run `tiny_libero_object`" in summary_md
    ratio = generated["jerk"] / demo_figures["jerk"]
    assert f"success {100 * rl['success_before']:.0f}% after BC" in summary_md
    assert f"({ratio:.2f}x)" in summary_md


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the tiny recipe runs twice in the fixture (~10 min alone on 2 cores)
def test_second_run_skips_every_stage_and_changes_nothing(tiny_run) -> None:
    out, first, second = tiny_run
    summary = _summary(out)
    assert {stage: entry["status"] for stage, entry in summary["stages"].items()} == dict.fromkeys(
        STAGES, "skipped"
    )
    assert "[bc/" not in second.stderr  # no command was started
    assert second.stdout.count("| skipped |") == sum(len(e["jobs"]) for e in summary["stages"].values())


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the tiny recipe runs twice in the fixture (~10 min alone on 2 cores)
def test_a_removed_artefact_is_made_again_and_only_it(tiny_run, tmp_path: Path) -> None:
    out, *_ = tiny_run
    results = out / "eval" / "libero_object"
    (out / "stages" / "eval" / "libero_object.json").unlink()
    again = run_pipeline(f"--output_dir={out}", "--stages=[eval]")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = _summary(out)
    assert list(summary["stages"]) == ["eval"] and summary["stages"]["eval"]["status"] == "ran"
    assert json.loads((results / "results.json").read_text())["overall"]["episodes"] == 1


def test_embedded_default_is_the_tiny_recipe_file() -> None:
    stored = json.loads((REPO / "recipes" / "pipeline" / "tiny.json").read_text())
    defaults = asdict(PipelineConfig())
    assert stored == {k: v for k, v in defaults.items() if k not in ("output_dir", "libero_assets")}


@pytest.mark.parametrize("name", ["paper_libero.json", "paper_libero_gaussrl.json", "tiny.json"])
def test_recipe_files_parse_and_validate(name: str) -> None:
    import draccus

    with draccus.config_type("json"):
        cfg = draccus.parse(PipelineConfig, str(REPO / "recipes" / "pipeline" / name), args=[])
    cfg.validate()
    if name.startswith("paper"):
        assert cfg.bc.per_task and sum(len(v) for v in cfg.suite_tasks().values()) == 40


@pytest.mark.parametrize(
    ("vla", "policy_flags", "tiny_flags", "env"),
    [
        ({}, ["--config_path=", "smolvla_libero.json"], ["smolvla_base", "--policy.vlm_model_name="], {}),
        (
            {"recipe": "recipes/pi0_libero.json"},
            ["--config_path=", "pi0_libero.json"],
            ["pi0_base", "--policy.paligemma_variant=diffrl_tiny_vlm"],
            {"LEROBOT_DIFFRL_SMALL_PI": "1"},
        ),
        (
            {"recipe": "recipes/pi05_libero.json", "policy_type": "pi05"},
            ["--config_path=", "pi05_libero.json"],
            ["pi05_base", "--policy.action_expert_variant=diffrl_tiny_expert"],
            {"LEROBOT_DIFFRL_SMALL_PI": "1"},
        ),
        (
            {"recipe": None, "policy_type": "hfvla"},
            ["--policy.type=hfvla"],
            ["--policy.vlm_path=", "smolvlm"],
            {},
        ),
    ],
)
def test_vla_stage_builds_the_command_of_the_chosen_vla(vla, policy_flags, tiny_flags, env, tmp_path) -> None:
    """The VLA stage trains pi0, pi05, smolvla or hfvla (by recipe or ``vla.policy_type``) with a tiny base
    of the same type; pi0/pi05 training and evaluation get the small-backbone switch."""
    from dataclasses import replace

    from lerobot_diffrl.recipes.pipeline_stages import RunLayout, eval_jobs, vla_jobs

    cfg = PipelineConfig(output_dir=str(tmp_path / "run"))
    cfg.vla = replace(cfg.vla, **vla)
    cfg.validate()
    layout = RunLayout(tmp_path / "run")
    backbone, train = vla_jobs(cfg, layout)
    assert backbone.name == "vla/backbone" and backbone.action is not None
    command = " ".join(train.command())
    assert "lerobot-diffrl-train-vla" in command and "--num_processes=2" in command
    for flag in (*policy_flags, *tiny_flags, f"--dataset.root={layout.dataset}", "--policy.device=cpu"):
        assert flag in command, (flag, command)
    assert command.count("--policy.device=") == 1
    assert train.env == env and all(job.env == env for job in eval_jobs(cfg, layout))


def test_vla_stage_refuses_a_type_its_recipe_does_not_train(tmp_path: Path) -> None:
    from dataclasses import replace

    from lerobot_diffrl.errors import ConfigError
    from lerobot_diffrl.recipes.pipeline_stages import RunLayout, vla_jobs

    cfg = PipelineConfig(output_dir=str(tmp_path / "run"))
    cfg.vla = replace(cfg.vla, recipe="recipes/pi0_libero.json", policy_type="pi05")
    with pytest.raises(
        ConfigError, match="vla.policy_type='pi05' but the recipe recipes/pi0_libero.json trains 'pi0'"
    ):
        vla_jobs(cfg, RunLayout(tmp_path / "run"))
    cfg.vla = replace(cfg.vla, recipe=None, policy_type=None)
    with pytest.raises(ConfigError, match="needs vla.recipe"):
        cfg.validate()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stages=[demos,finetune]"], "unknown stage(s) 'finetune'"),
        (["--stages=[rl,bc]"], "must keep the pipeline order"),
        (["--tasks=[libero_nowhere:0]"], "unknown LIBERO suite"),
        (["--tasks=[libero_object:12]"], "valid ids: 0..9"),
        (["--bc.policy_type=act"], "bc.policy_type must be one of diffrl, gaussrl"),
        (["--demos.source=dataset"], "needs demos.repo_id"),
        (["--bc.trainer=accelerate"], "bc.trainer must be one of lerobot-train, lerobot-diffrl-train-state"),
        (["--bc.args=[--steps=10]"], "bc.strip_cameras trains on demos without cameras"),
        (["--stages=[vla,eval]"], "needs the artefact of stage 'generate'"),
    ],
)
def test_bad_recipes_are_one_error_and_write_nothing(args, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert pipeline_main([f"--output_dir={out}", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()


def test_a_run_folder_of_another_recipe_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    cfg = PipelineConfig(output_dir=str(out))
    started = {**asdict(cfg), "seed": 7, "launcher": {**asdict(cfg.launcher), "type": "ray"}}
    (out / "recipe.json").write_text(json.dumps(started))
    assert pipeline_main([f"--output_dir={out}", "--stages=[demos]", "--launcher.type=serial"]) == 2
    err = capsys.readouterr().err
    assert "holds a run of another recipe, started by the ray launcher (it differs in seed)" in err
    assert sorted(p.name for p in out.iterdir()) == ["recipe.json"]
    # the same recipe on another launcher continues the run: the launcher is not part of the recipe
    from lerobot_diffrl.recipes.pipeline_runner import check_recipe
    from lerobot_diffrl.recipes.pipeline_stages import RunLayout

    (out / "recipe.json").write_text(json.dumps({**started, "seed": 0}))
    check_recipe(RunLayout(out), PipelineConfig(output_dir=str(out)))


@pytest.mark.slow
def test_a_failing_stage_names_itself_and_its_log_and_marks_nothing_done(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_pipeline(
        f"--output_dir={out}", "--stages=[demos]", "--demos.args=[--image_size=0]", timeout=300
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stage demos (demos/libero_object) failed with exit status 2: error:")
    assert "image_size" in last and str(out / "logs" / "demos-libero_object.log") in last
    assert not (out / "stages").exists() and not (out / "demos").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_its_stage_with_the_commands_own_resume(tmp_path: Path) -> None:
    """SIGKILL to the whole process group in the middle of the demos stage; the next run resumes the generation
    (``--resume=true``) instead of starting it over, and the stage ends with exactly the target episodes."""
    import signal
    import time

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_diffrl.data.generation import work_dir
    from lerobot_diffrl.data.staging import EPISODE_FILE, EPISODES_DIR, TMP_PREFIX

    out = tmp_path / "run"
    args = [
        f"--output_dir={out}",
        "--stages=[demos]",
        '--tasks=["libero_object:0,1"]',
        "--demos.episodes_per_task=2",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lerobot_diffrl.scripts.pipeline", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    log = out / "logs" / "demos-libero_object.log"
    # Killed once an episode is durable (committed to the shard's staging), not when the progress bar moves: the
    # bar counts an episode when it is queued for encoding, which can be before its commit.
    staged = work_dir(out / "demos" / "libero_object")
    committed = f"*/staging/{EPISODES_DIR}/[!{TMP_PREFIX[0]}]*/{EPISODE_FILE}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any(staged.glob(committed)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "stages" / "demos.json").exists() and not (out / "demos" / "libero_object").exists()

    again = run_pipeline(*args, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    text = log.read_text(errors="replace")
    assert text.count("\n$ ") == 2 and "--resume=true" in text.split("\n$ ")[2].splitlines()[0]
    resumed = text.split("\n$ ")[2]
    finished = re.search(r"resume: (\d+) attempts already finished", resumed)
    assert finished and int(finished.group(1)) >= 1, resumed[-2000:]
    assert LeRobotDataset("local/demos", root=out / "demos" / "libero_object").num_episodes == 4


@pytest.mark.slow
def test_per_task_experts_from_an_existing_demo_dataset_each_see_only_their_task(tmp_path: Path) -> None:
    """The paper's layout: ``demos.source=dataset`` (here a local LIBERO-layout dataset standing where
    ``lerobot/libero`` would) and ``bc.per_task=true``: one ``lerobot-train`` per task, on that task's episodes."""
    from lerobot.policies.factory import get_policy_class

    import lerobot_diffrl.policies  # noqa: F401

    sys.path.insert(0, str(REPO / "tests" / "recipes"))
    from tiny_models import write_tiny_libero_dataset

    demos = write_tiny_libero_dataset(tmp_path / "human", episodes=4, frames=24)
    out = tmp_path / "run"
    recipe = [a for a in PipelineConfig().bc.args if not a.startswith(("--steps=", "--batch_size="))]
    bc_args = json.dumps(["--steps=2", "--batch_size=2", *recipe])
    args = [
        f"--output_dir={out}",
        '--tasks=["libero_object:0,1"]',
        "--stages=[demos,bc]",
        "--demos.source=dataset",
        "--demos.repo_id=local/tiny_libero",
        f"--demos.root={demos}",
        "--bc.per_task=true",
        f"--bc.args={bc_args}",
    ]
    proc = run_pipeline(*args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    for task_id, language in ((0, TASK0), (1, TASK1)):
        group = f"libero_object_task{task_id:02d}"
        demos_of_task = LeRobotDataset("local/x", root=out / "demos" / "per_group" / group)
        assert demos_of_task.num_episodes == 2 and list(demos_of_task.meta.tasks.index) == [language]
        bc_dir = out / "bc" / group / "checkpoints" / "last" / "pretrained_model"
        policy = get_policy_class("diffrl").from_pretrained(bc_dir)
        assert policy.config.tasks == [language]
        train_config = json.loads((bc_dir / "train_config.json").read_text())
        # a state expert trains on the camera-free copy of its task's demos
        assert Path(train_config["dataset"]["root"]) == out / "demos" / "state" / group
        state_copy = LeRobotDataset("local/x", root=out / "demos" / "state" / group)
        assert state_copy.num_episodes == 2 and not state_copy.meta.camera_keys

    missing = run_pipeline(
        f"--output_dir={tmp_path / 'run2'}", "--tasks=[libero_object:5]", *args[2:], timeout=300
    )
    assert missing.returncode == 2
    assert (
        "the demo dataset local/tiny_libero has no episode of: pick up the"
        in missing.stderr.strip().splitlines()[-1]
    )
