"""Test-wide settings: offline Hub, headless GL, offline LIBERO assets from ../shared when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ASSETS = REPO_ROOT.parent / "shared" / "libero_assets"

# A forgotten download must fail fast instead of hanging on a machine with no network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if SHARED_ASSETS.is_dir():
    os.environ.setdefault("LEROBOT_DIFFRL_LIBERO_ASSETS", str(SHARED_ASSETS))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
