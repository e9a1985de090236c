"""hfvla through every LeRobot 0.6 factory path, as a built-in policy: ``get_policy_class``, ``make_policy_config``,
``make_policy(cfg, ds_meta=...)``, ``make_pre_post_processors`` and ``save_pretrained``/``from_pretrained``
(``make_policy`` with ``pretrained_path``), on an SO-100-style dataset whose cameras are ``laptop`` and ``phone``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from tiny_vlm import TASKS, write_tiny_vla_dataset

from lerobot_diffrl.policies.hfvla.configuration_hfvla import HFVLAConfig
from lerobot_diffrl.policies.hfvla.modeling_hfvla import HFVLAPolicy

SO100_CAMERAS = ("laptop", "phone")


@pytest.fixture(scope="module")
def so100_meta(tmp_path_factory):
    """Metadata of a tiny finalised dataset with SO-100's camera names (and lerobot-computed q01/q99 stats)."""
    from lerobot.datasets import LeRobotDatasetMetadata

    root = write_tiny_vla_dataset(
        tmp_path_factory.mktemp("so100") / "tiny_so100", episodes=2, frames=6, cameras=SO100_CAMERAS
    )
    return LeRobotDatasetMetadata("local/tiny_vla", root=root)


def _frame(meta) -> dict:
    """One dataset-like observation (CHW images in [0, 1], the state, the task) as lerobot-eval feeds it."""
    obs = {f"observation.images.{cam}": torch.rand(3, 32, 32) for cam in SO100_CAMERAS}
    return {**obs, "observation.state": torch.zeros(8), "task": TASKS[0]}


def test_lerobot_resolves_the_plugin_classes(tiny_vlms):
    from lerobot.policies.factory import get_policy_class, make_policy_config

    assert get_policy_class("hfvla") is HFVLAPolicy
    cfg = make_policy_config("hfvla", vlm_path=str(tiny_vlms["idefics3"]), device="cpu")
    assert type(cfg) is HFVLAConfig and cfg.type == "hfvla"
    assert cfg.image_keys is None  # resolved from the dataset's cameras when the policy is built
    # As LeRobot's own policies: the constructor's `config` is annotated with the config class itself.
    assert inspect.signature(HFVLAPolicy.__init__).parameters["config"].annotation is HFVLAConfig


@pytest.mark.parametrize("kind", ["idefics3", "qwen2_5_vl"])
def test_make_policy_on_so100_cameras_trains_saves_and_reloads(tiny_vlms, so100_meta, tmp_path, kind):
    from lerobot.policies.factory import make_policy, make_policy_config, make_pre_post_processors

    cfg = make_policy_config("hfvla", vlm_path=str(tiny_vlms[kind]), device="cpu", push_to_hub=False)
    policy = make_policy(cfg, ds_meta=so100_meta)
    assert isinstance(policy, HFVLAPolicy)
    assert policy.config.image_keys == ["observation.images.laptop"]  # the dataset's first camera
    assert policy.config.dataset_repo_id == "local/tiny_vla"  # from dataset_meta
    pre, post = make_pre_post_processors(
        policy.config, dataset_stats=so100_meta.stats, dataset_meta=so100_meta
    )
    batch = pre({**_frame(so100_meta), "action": torch.zeros(7)})
    policy.train()
    loss, _ = policy.forward({**batch, "action": batch["action"][:, None]})
    loss.backward()
    assert torch.isfinite(loss)
    policy.eval()
    policy.reset()
    action = post(policy.select_action(pre(_frame(so100_meta))))
    assert action.shape == (1, 7)

    # LeRobot 0.6's push_model_to_hub passes the train config and the dataset metadata to the card.
    card = policy.generate_model_card(None, "hfvla", None, None, cfg=None, dataset_meta=so100_meta)
    assert "local/tiny_vla" in str(card)

    saved = tmp_path / "pretrained_model"
    policy.save_pretrained(saved)
    pre.save_pretrained(saved)
    post.save_pretrained(saved)
    assert json.loads((saved / "config.json").read_text())["image_keys"] == ["observation.images.laptop"]
    reload_cfg = HFVLAConfig.from_pretrained(saved)
    reload_cfg.pretrained_path = saved
    loaded = make_policy(reload_cfg, ds_meta=so100_meta)  # LeRobot's pretrained path: from_pretrained
    reference = policy.state_dict()
    assert all(torch.equal(t, reference[n]) for n, t in loaded.state_dict().items())
    pre2, post2 = make_pre_post_processors(loaded.config, pretrained_path=str(saved))
    obs = _frame(so100_meta)
    policy.reset()
    loaded.reset()
    assert torch.equal(post2(loaded.select_action(pre2(obs))), post(policy.select_action(pre(obs))))


def test_both_so100_cameras_and_a_gathered_state_dict(tiny_vlms, so100_meta, tmp_path):
    """Explicit ``image_keys`` with both cameras; ``save_pretrained(state_dict=...)`` (what LeRobot 0.6 passes
    after gathering FSDP shards) writes those tensors, and the checkpoint reloads strictly."""
    from lerobot.policies.factory import make_policy, make_policy_config

    cameras = [f"observation.images.{cam}" for cam in SO100_CAMERAS]
    cfg = make_policy_config(
        "hfvla", vlm_path=str(tiny_vlms["paligemma"]), device="cpu", push_to_hub=False, image_keys=cameras
    )
    policy = make_policy(cfg, ds_meta=so100_meta)
    assert policy.config.image_keys == cameras
    assert policy.prompts(_frame(so100_meta))[0].startswith("<image><image>In: ")
    gathered = {k: v.clone() + 1 for k, v in policy.state_dict().items()}  # distinct from the module's own
    policy.save_pretrained(tmp_path / "ckpt", state_dict=gathered)
    loaded = HFVLAPolicy.from_pretrained(tmp_path / "ckpt")
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, gathered[name]), name


def test_a_dataset_without_cameras_is_refused(tiny_vlms):
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_diffrl.errors import ConfigError

    cfg = HFVLAConfig(
        vlm_path=str(tiny_vlms["idefics3"]),
        device="cpu",
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))},
    )
    with pytest.raises(ConfigError, match="needs at least one camera but the dataset/environment has none"):
        HFVLAPolicy(cfg)
    with pytest.raises(ConfigError, match="image_keys must name at least one camera"):
        HFVLAConfig(vlm_path=str(Path(tiny_vlms["idefics3"])), image_keys=[])
