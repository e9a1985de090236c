"""Asset resolution order, non-interactive config, and clear failures of the LIBERO set-up module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lerobot_diffrl.envs import libero_setup
from lerobot_diffrl.envs.libero_setup import (
    ASSET_SUBDIRS,
    ASSETS_ENV_VAR,
    check_gl_backend,
    resolve_assets_path,
    write_libero_config,
)
from lerobot_diffrl.errors import LiberoSetupError, RenderBackendError


def make_asset_tree(root: Path) -> Path:
    for sub in ASSET_SUBDIRS:
        (root / sub).mkdir(parents=True)
    return root


@pytest.fixture
def no_default_locations(monkeypatch, tmp_path):
    """Pretend hf-libero's own locations are empty, whatever this machine has."""
    monkeypatch.setattr(
        libero_setup, "hf_libero_asset_locations", lambda: [tmp_path / "none1", tmp_path / "none2"]
    )
    monkeypatch.delenv(ASSETS_ENV_VAR, raising=False)


def test_explicit_path_wins_over_environment(monkeypatch, tmp_path, no_default_locations):
    explicit = make_asset_tree(tmp_path / "explicit")
    monkeypatch.setenv(ASSETS_ENV_VAR, str(make_asset_tree(tmp_path / "from_env")))
    assert resolve_assets_path(explicit) == explicit.resolve()
    assert resolve_assets_path() == (tmp_path / "from_env").resolve()


def test_hf_libero_locations_are_searched_in_order(monkeypatch, tmp_path):
    monkeypatch.delenv(ASSETS_ENV_VAR, raising=False)
    first, second = tmp_path / "site", make_asset_tree(tmp_path / "cache")
    monkeypatch.setattr(libero_setup, "hf_libero_asset_locations", lambda: [first, second])
    assert resolve_assets_path() == second.resolve()
    make_asset_tree(first)
    assert resolve_assets_path() == first.resolve()


def test_missing_assets_offline_names_the_fix(monkeypatch, no_default_locations):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LiberoSetupError, match=ASSETS_ENV_VAR) as err:
        resolve_assets_path()
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_incomplete_folder_is_rejected(tmp_path, no_default_locations, monkeypatch):
    (tmp_path / "scenes").mkdir()
    with pytest.raises(LiberoSetupError, match="not a LIBERO asset folder"):
        resolve_assets_path(tmp_path)
    monkeypatch.setenv(ASSETS_ENV_VAR, str(tmp_path / "does-not-exist"))
    with pytest.raises(LiberoSetupError, match=ASSETS_ENV_VAR):
        resolve_assets_path()


def test_config_is_written_without_prompt_and_kept_when_complete(monkeypatch, tmp_path):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    path = write_libero_config(tmp_path / "assets")
    config = yaml.safe_load(path.read_text())
    assert set(config) == set(libero_setup.CONFIG_KEYS)
    assert Path(config["bddl_files"]).is_dir() and Path(config["init_states"]).is_dir()
    assert config["assets"] == str(tmp_path / "assets")
    # a complete config of the user's is left as it is
    config["datasets"] = "/my/datasets"
    path.write_text(yaml.safe_dump(config))
    write_libero_config()
    assert yaml.safe_load(path.read_text())["datasets"] == "/my/datasets"


def test_incomplete_config_is_an_error_not_a_silent_rewrite(monkeypatch, tmp_path):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    (tmp_path / "config.yaml").write_text("assets: /x\n")
    with pytest.raises(LiberoSetupError, match="lacks bddl_files"):
        write_libero_config()
    assert (tmp_path / "config.yaml").read_text() == "assets: /x\n"


def test_import_has_no_side_effects_on_home(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("LIBERO_CONFIG_PATH", None)
    code = "import lerobot_diffrl, lerobot_policy_diffrl, lerobot_diffrl.envs.libero_setup"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".cache")) == []


def test_unknown_gl_backend_names_mujoco_gl():
    with pytest.raises(RenderBackendError, match="MUJOCO_GL='vulkan' is not a MuJoCo GL backend"):
        check_gl_backend("vulkan")


def test_gl_backend_that_cannot_start_names_mujoco_gl(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RenderBackendError, match="MUJOCO_GL=glfw: cannot start an OpenGL context"):
        check_gl_backend("glfw")


def test_default_backend_starts_here():
    assert check_gl_backend("egl") == "egl"


def test_stale_config_of_a_deleted_installation_is_rewritten(monkeypatch, tmp_path):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    gone = {key: str(tmp_path / "deleted-venv" / key) for key in libero_setup.CONFIG_KEYS}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(gone))
    config = yaml.safe_load(write_libero_config().read_text())
    assert Path(config["bddl_files"]).is_dir()
    assert config == libero_setup.default_libero_config()
