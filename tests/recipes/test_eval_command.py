"""``lerobot-diffrl-eval``: a real short LIBERO evaluation of a tiny SmolVLA, resumption, and bad input.

The real run is the session fixture ``smolvla_eval`` (one 10-step episode of libero_object task 0 with the
fine-tuned tiny SmolVLA); the other tests resume it or feed the command bad input in this process (the checks
that reject bad input run before any ``lerobot-eval`` starts).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from recipe_helpers import run_module

pytestmark = pytest.mark.slow


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    from lerobot_diffrl.scripts.eval import main

    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _single_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def test_one_run_per_task_with_every_protocol_flag_and_tables(smolvla_eval) -> None:
    out = smolvla_eval.output_dir
    run_dir = out / "runs" / "libero_object" / "task_00" / "seed_0"
    record = json.loads((run_dir / "run.json").read_text())
    cmd = record["command"]
    for flag in (
        "--env.type=diffrl_env",
        "--env.task=libero_object",
        "--env.task_ids=[0]",
        "--env.observation_height=32",
        "--env.observation_width=32",
        "--env.episode_length=10",
        "--env.init_states=true",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        "--seed=0",
        f"--output_dir={run_dir}",
    ):
        assert flag in cmd
    info = json.loads((run_dir / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 1
    # video paths were rewritten from the temporary folder to the final one
    assert all(str(run_dir) in p for p in info["overall"]["video_paths"])
    assert not list(run_dir.parent.glob(".*"))  # no temporary folder or log left behind

    results = json.loads((out / "results.json").read_text())
    assert results["per_suite"][0]["suite"] == "libero_object" and results["per_suite"][0]["episodes"] == 1
    task = results["per_task"][0]
    assert task["successes"] == int(info["per_task"][0]["metrics"]["successes"][0])
    if task["successes"] == 0:  # a 10-step episode of a barely trained model: Wilson interval of 0/1
        assert task["ci95"] == [0.0, pytest.approx(0.7935, abs=1e-4)]
    md = (out / "results.md").read_text()
    assert "| libero_object | 1 | 1 |" in md and "pick up the alphabet soup" in md
    assert "episodes_per_task=1" in md and "fps=20" in md


def test_second_run_resumes_without_evaluating_again(smolvla_eval, tmp_path: Path, capsys) -> None:
    out = tmp_path / "copy"
    shutil.copytree(smolvla_eval.output_dir, out)
    args = [a if not a.startswith("--output_dir=") else f"--output_dir={out}" for a in smolvla_eval.args]
    args = [a for a in args if a != "--update_card=true"]
    info = out / "runs" / "libero_object" / "task_00" / "seed_0" / "eval_info.json"
    before = info.stat().st_mtime_ns
    code, stdout, err = _main(args, capsys)
    assert code == 0, err
    assert "resuming: 1 of 1 runs already complete" in err
    assert info.stat().st_mtime_ns == before
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (smolvla_eval.output_dir / "results.json").read_text()
    )
    assert "| libero_object | 1 | 1 |" in stdout

    # Another protocol in the same folder is refused rather than mixed in.
    other = [a for a in args if not a.startswith("--protocol.episodes_per_task=")]
    code, _, err = _main([*other, "--protocol.episodes_per_task=2"], capsys)
    assert code == 2
    assert "holds runs of another protocol" in _single_error(err) and "episodes_per_task" in err


def test_missing_checkpoint_is_one_clear_error(tmp_path: Path, capsys) -> None:
    code, _, err = _main([f"--policy.path={tmp_path / 'none'}", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2
    assert "policy checkpoint not found" in _single_error(err)
    code, _, err = _main(["--policy.path=someone/uncached-model", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2
    assert "HF_HUB_OFFLINE" in _single_error(err)
    assert not (tmp_path / "out").exists()


def test_unknown_suite_and_incompatible_policy_are_clear_errors(
    trained_smolvla, tmp_path: Path, capsys
) -> None:
    ckpt = trained_smolvla.checkpoint
    code, _, err = _main([f"--policy.path={ckpt}", "--suites=libero_object,libero_foo"], capsys)
    assert code == 2
    assert "unknown LIBERO suite 'libero_foo'" in _single_error(err)
    code, _, err = _main(
        [f"--policy.path={ckpt}", "--suites=libero_object", "--protocol.task_ids=[12]"], capsys
    )
    assert code == 2 and "task id 12 is not in libero_object" in _single_error(err)
    code, _, err = _main([f"--policy.path={ckpt}", "--protocol.n_action_steps=8"], capsys)
    assert code == 2 and "exceeds the checkpoint's chunk_size=4" in _single_error(err)
    code, _, err = _main([f"--policy.path={ckpt}", "--protocol.fps=30"], capsys)
    assert code == 2 and "20 Hz" in _single_error(err)

    # A policy trained on other camera keys cannot be fed by LIBERO.
    other = tmp_path / "other_cameras"
    shutil.copytree(ckpt, other)
    config = json.loads((other / "config.json").read_text())
    config["input_features"]["observation.images.top"] = config["input_features"].pop(
        "observation.images.image"
    )
    (other / "config.json").write_text(json.dumps(config))
    code, _, err = _main([f"--policy.path={other}", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and "observation.images.top" in _single_error(err)
    assert not (tmp_path / "out").exists()


def test_failed_lerobot_eval_leaves_no_partial_run(trained_smolvla, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_smolvla.checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    proc = run_module(
        "lerobot_diffrl.scripts.eval",
        [
            f"--policy.path={broken}",
            "--policy.device=cpu",
            "--suites=libero_object",
            "--protocol.task_ids=[0]",
            "--protocol.episodes_per_task=1",
            "--protocol.episode_length=5",
            f"--output_dir={out}",
        ],
    )
    assert proc.returncode == 2
    assert "lerobot-eval failed on libero_object task 0 seed 0" in _single_error(proc.stderr)
    task_dir = out / "runs" / "libero_object" / "task_00"
    assert not task_dir.exists() or not any(task_dir.iterdir())  # neither the run nor its temporary folder
    logs = list((out / "logs").glob("*.failed.log"))
    assert len(logs) == 1 and logs[0].read_text()
    assert not (out / "results.json").exists()
