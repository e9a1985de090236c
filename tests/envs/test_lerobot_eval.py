"""``lerobot-eval`` runs the project's env type unchanged (a tiny random lerobot ``diffusion`` policy at 128x128)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _tiny_diffusion_checkpoint(out: Path) -> Path:
    """A randomly initialised lerobot diffusion policy with small dims, saved like a training checkpoint."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors

    image = PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128))
    cfg = DiffusionConfig(
        input_features={
            "observation.images.image": image,
            "observation.images.image2": image,
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))},
        down_dims=(32, 64),
        diffusion_step_embed_dim=32,
        spatial_softmax_num_keypoints=8,
        num_inference_steps=2,
        pretrained_backbone_weights=None,  # lerobot 0.6 defaults to ImageNet weights: a download
        device="cpu",
        push_to_hub=False,
    )
    policy = DiffusionPolicy(cfg)
    stats = {
        "observation.state": {
            "min": -torch.ones(8),
            "max": torch.ones(8),
            "mean": torch.zeros(8),
            "std": torch.ones(8),
        },
        "action": {"min": -torch.ones(7), "max": torch.ones(7), "mean": torch.zeros(7), "std": torch.ones(7)},
    }
    for key in ("observation.images.image", "observation.images.image2"):
        stats[key] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


@pytest.mark.parametrize("batch_size", [1, 2])
def test_lerobot_eval_runs_diffrl_env_at_128(tmp_path: Path, batch_size: int) -> None:
    """0.6's lerobot-eval defaults (async vector envs): batch 1 is downgraded to a sync env, batch 2 runs its
    sub-envs in forkserver workers, which must find the gym id without the parent's imports."""
    ckpt = _tiny_diffusion_checkpoint(tmp_path / "policy")
    out_dir = tmp_path / "eval"
    cmd = [
        str(Path(sys.executable).parent / "lerobot-eval"),
        f"--policy.path={ckpt}",
        "--env.type=diffrl_env",
        "--env.task=libero_object",
        "--env.task_ids=[0]",
        "--env.episode_length=10",
        f"--eval.batch_size={batch_size}",
        f"--eval.n_episodes={batch_size}",
        "--policy.device=cpu",
        f"--output_dir={out_dir}",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    info = json.loads((out_dir / "eval_info.json").read_text())
    assert "pc_success" in info["overall"] and info["overall"]["n_episodes"] == batch_size
    metrics = info["per_task"][0]["metrics"]
    assert info["per_task"][0]["task_group"] == "libero_object"
    assert metrics["successes"] == [False] * batch_size  # a random policy does not solve the task in 10 steps
    # lerobot-eval keeps no episode length in eval_info.json; its video holds one frame per step up to the
    # first done, so 10 frames at 20 fps at 128x128 says the episode truncated at episode_length=10.
    video = metrics["video_paths"][0]
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed: cannot count the episode's frames")
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,r_frame_rate,width,height",
            "-of",
            "json",
            video,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert int(stream["nb_read_frames"]) == 10
    assert stream["r_frame_rate"] == "20/1"
    assert (stream["width"], stream["height"]) == (128, 128)
