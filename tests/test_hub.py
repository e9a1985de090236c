"""One reading of HF_HUB_OFFLINE for every command (datasets, preflight, LIBERO assets): huggingface_hub's own
spellings, read at call time as well as at huggingface_hub's import."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from lerobot_diffrl.hub import hub_offline


@pytest.mark.parametrize(
    ("value", "offline"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("", False), ("no", False)],
)
def test_hub_offline_reads_the_variable_now(
    monkeypatch: pytest.MonkeyPatch, value: str, offline: bool
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is offline


def test_hub_offline_follows_huggingface_hubs_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_offline()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert not hub_offline()


def test_every_layer_uses_the_one_definition() -> None:
    from lerobot_diffrl.data import dataset_io
    from lerobot_diffrl.envs import libero_setup
    from lerobot_diffrl.recipes import preflight

    assert dataset_io.hub_offline is preflight.hub_offline is libero_setup.hub_offline is hub_offline


def test_run_files_use_lerobots_layout(tmp_path) -> None:
    from lerobot.configs.train import TRAIN_CONFIG_NAME

    from lerobot_diffrl import run_files

    assert run_files.TRAIN_CONFIG_NAME == TRAIN_CONFIG_NAME
    assert run_files.last_pretrained_model(tmp_path) == tmp_path / "checkpoints" / "last" / "pretrained_model"
