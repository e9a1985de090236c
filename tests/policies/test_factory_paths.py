"""``diffrl`` and ``gaussrl`` through every LeRobot 0.6 factory path, as lerobot-train and lerobot-eval call them.

The dataset is an SO-100-style one (cameras ``laptop`` and ``phone``, 6-d state and action), so nothing here
leans on LIBERO's camera names: a default config must build for whatever cameras a dataset has.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import SMALL_DIFFRL, SMALL_GAUSS

import lerobot_diffrl.policies  # noqa: F401  (registers the types, as plugin discovery does)

CAMERAS = ("observation.images.laptop", "observation.images.phone")
SMALL = {"diffrl": SMALL_DIFFRL, "gaussrl": SMALL_GAUSS}
TASKS = ["grasp the cube", "stack the cubes"]


@pytest.fixture(scope="module")
def so100_meta(tmp_path_factory: pytest.TempPathFactory):
    """A finalized 2-episode LeRobotDataset with two SO-100 cameras; returns its metadata."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    root = tmp_path_factory.mktemp("so100") / "ds"
    image = {"dtype": "image", "shape": (24, 32, 3), "names": ["height", "width", "channels"]}
    features = {
        CAMERAS[0]: image,
        CAMERAS[1]: image,
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (6,), "names": None},
    }
    ds = LeRobotDataset.create("local/so100", fps=30, features=features, root=root, robot_type="so100")
    rng = np.random.default_rng(0)
    for task in TASKS:
        for _ in range(20):
            ds.add_frame(
                {
                    CAMERAS[0]: rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                    CAMERAS[1]: rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                    "observation.state": rng.normal(size=6).astype(np.float32),
                    "action": rng.uniform(-1, 1, size=6).astype(np.float32),
                    "task": task,
                }
            )
        ds.save_episode()
    ds.finalize()
    return LeRobotDatasetMetadata("local/so100", root=root)


@pytest.mark.parametrize("kind", ["diffrl", "gaussrl"])
def test_constructor_annotation_is_the_config_class(kind: str) -> None:
    from lerobot.policies.factory import get_policy_class

    cls = get_policy_class(kind)
    hints = typing.get_type_hints(cls.__init__)
    assert hints["config"] is cls.config_class
    assert list(inspect.signature(cls.__init__).parameters)[:2] == ["self", "config"]


@pytest.mark.parametrize("kind", ["diffrl", "gaussrl"])
def test_make_policy_with_dataset_meta_builds_for_any_camera_names(kind: str, so100_meta, tmp_path: Path):
    from lerobot.policies.factory import (
        get_policy_class,
        make_policy,
        make_policy_config,
        make_pre_post_processors,
    )

    cfg = make_policy_config(kind, device="cpu", push_to_hub=False, **SMALL[kind])
    assert type(cfg) is get_policy_class(kind).config_class
    policy = make_policy(cfg, ds_meta=so100_meta)
    assert type(policy) is get_policy_class(kind)
    assert set(policy.config.image_features) == set(CAMERAS)
    assert policy.config.action_dim == 6 and policy.config.robot_state_feature.shape == (6,)
    assert policy.config.tasks == TASKS  # filled from dataset_meta, as lerobot-train passes it
    assert policy.config.dataset_repo_id == "local/so100"

    pre, post = make_pre_post_processors(cfg, dataset_stats=so100_meta.stats)
    frame = {
        CAMERAS[0]: torch.rand(3, 24, 32),
        CAMERAS[1]: torch.rand(3, 24, 32),
        "observation.state": torch.randn(6),
        "task": TASKS[1],
    }
    policy.eval()
    action = post(policy.select_action(pre(frame)))
    assert action.shape == (1, 6) and torch.isfinite(action).all()
    low, high = so100_meta.stats["action"]["min"], so100_meta.stats["action"]["max"]
    assert (action >= torch.as_tensor(low) - 1e-4).all() and (action <= torch.as_tensor(high) + 1e-4).all()

    # save_pretrained -> from_pretrained (lerobot-train's path, with the state_dict it gathers under FSDP)
    out = tmp_path / "pretrained_model"
    policy.save_pretrained(out, state_dict=policy.state_dict())
    pre.save_pretrained(out)
    post.save_pretrained(out)
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    loaded = get_policy_class(kind).from_pretrained(out)
    saved, reloaded = policy.state_dict(), loaded.state_dict()
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)

    # lerobot-eval's path: make_policy from pretrained_path, processors from the checkpoint folder
    cfg2 = make_policy_config(kind, device="cpu", push_to_hub=False, **SMALL[kind])
    cfg2.pretrained_path = out
    again = make_policy(cfg2, ds_meta=so100_meta)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in saved.items())
    pre2, post2 = make_pre_post_processors(cfg2, pretrained_path=str(out))
    torch.manual_seed(0)
    loaded.eval().reset()
    a1 = post(loaded.select_action(pre(frame)))
    torch.manual_seed(0)
    again.eval().reset()
    a2 = post2(again.select_action(pre2(frame)))
    torch.testing.assert_close(a1, a2)
