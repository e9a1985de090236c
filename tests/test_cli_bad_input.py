"""Every entry point answers bad input with one ``error:`` line and exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(command: list[str], **env_overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_overrides)
    for key, value in env_overrides.items():
        if value == "":
            env.pop(key)
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_unknown_suite():
    proc = run(["lerobot-diffrl-demo", "--suite=libero_foo"])
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: unknown LIBERO suite 'libero_foo'; known suites: "
        "libero_spatial, libero_object, libero_goal, libero_10, libero_90"
    ]


def test_unknown_task_id():
    proc = run(["lerobot-diffrl-demo", "--suite=libero_object", "--task_id=10", "--render=false"])
    assert proc.returncode == 2
    assert error_lines(proc) == ["error: task id 10 is not in libero_object (valid ids: 0..9)"]


def test_init_state_out_of_range():
    proc = run(["lerobot-diffrl-demo", "--init_state=50", "--render=false"])
    assert proc.returncode == 2
    assert error_lines(proc) == ["error: --init_state must be in 0..49 for libero_object/0"]


def test_missing_asset_folder(tmp_path):
    proc = run(["lerobot-diffrl-demo", f"--libero_assets={tmp_path / 'nowhere'}"])
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert "is not a LIBERO asset folder" in line


def test_missing_assets_offline_from_setup_command(tmp_path):
    proc = run(
        ["lerobot-diffrl-setup-libero", "--check_gl=false"],
        LEROBOT_DIFFRL_LIBERO_ASSETS=str(tmp_path / "missing"),
        HF_HUB_OFFLINE="1",
    )
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert "LEROBOT_DIFFRL_LIBERO_ASSETS" in line


def test_gl_backend_that_cannot_start():
    proc = run(["lerobot-diffrl-demo", "--steps=1"], MUJOCO_GL="glfw", DISPLAY="", WAYLAND_DISPLAY="")
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert line.startswith("error: MUJOCO_GL=glfw: cannot start an OpenGL context")
    assert "MUJOCO_GL=egl" in line


def test_unknown_gl_backend_name():
    proc = run(["lerobot-diffrl-setup-libero"], MUJOCO_GL="directx")
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: MUJOCO_GL='directx' is not a MuJoCo GL backend; use MUJOCO_GL=egl (GPU or Mesa) or "
        "MUJOCO_GL=osmesa (CPU, needs libosmesa6)"
    ]


@pytest.mark.parametrize("argument", ["--no_such_flag=1", "--steps=many"])
def test_malformed_arguments_exit_2(argument):
    proc = run(["lerobot-diffrl-demo", argument])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
