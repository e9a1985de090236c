"""A LeRobot outside the declared range gets one clear line from every command, not an import traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_diffrl.base_version import lerobot_requirement

BIN = Path(sys.executable).parent


def test_declared_range_is_the_0_6_series() -> None:
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(lerobot_requirement())
    assert "0.6.1" in spec and "0.6.9" in spec
    assert "0.4.4" not in spec and "0.5.0" not in spec and "0.7.0" not in spec


def _fake_lerobot(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment in which importlib.metadata finds lerobot ``version`` first on sys.path."""
    info = tmp_path / f"lerobot-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lerobot\nVersion: {version}\n")
    return dict(os.environ, PYTHONPATH=str(tmp_path))


@pytest.mark.parametrize("version", ["0.4.4", "0.5.1"])
@pytest.mark.parametrize(
    "command", ["lerobot-diffrl-rl", "lerobot-diffrl-pipeline", "lerobot-diffrl-generate"]
)
def test_old_lerobot_is_one_error_line(tmp_path: Path, version: str, command: str) -> None:
    proc = subprocess.run(
        [str(BIN / command), "--help"],
        capture_output=True,
        text=True,
        env=_fake_lerobot(tmp_path, version),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(
        f"error: lerobot_policy_diffrl needs lerobot>=0.6.1,<0.7, but lerobot {version} is"
    )
    assert "pip install 'lerobot[libero,pi,smolvla]>=0.6.1,<0.7'" in line
