"""Behaviour-cloning warm start on the passage test task: the "mediocre BC policy" RL must improve.

The scripted demos are bimodal (half aim at the gap, half at the wall beside it; see
:func:`lerobot_diffrl.envs.passage.scripted_demos`), so a policy that imitates them well succeeds about as
often as they do (~50%), and RL has to move probability onto the mode that succeeds. The checkpoint written
here has the same layout as a ``lerobot-train`` one (policy + processors with the demos' statistics), so the
RL command loads it like any other.

BC runs in-process (the same ``policy.forward`` loss ``lerobot-train`` optimises) because the test task has
no LeRobotDataset; on LIBERO the warm start is ``lerobot-train --policy.type=diffrl``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lerobot.configs.types import FeatureType, PolicyFeature

from lerobot_diffrl.envs.passage import ACTION_DIM, STATE_DIM, scripted_demos
from lerobot_diffrl.policies.common.processor import make_rl_policy_pre_post_processors
from lerobot_diffrl.rl.config import PPOConfig, RLConfig, RLEnvConfig, RLEvalConfig
from lerobot_diffrl.rl.envs import PASSAGE_TASK
from lerobot_diffrl.rl.policy_io import policy_class

#: Small networks: the task is 4-d, and CI trains them on two CPU cores.
PASSAGE_POLICY = {
    "diffrl": {
        "denoiser": "mlp",
        "mlp_hidden_dim": 128,
        "mlp_num_blocks": 2,
        "time_embed_dim": 16,
        "ddim_steps": 5,
        "ft_denoising_steps": 5,
    },
    "gaussrl": {"head_hidden_dim": 128, "head_num_blocks": 2},
}
#: The demos: half of them aim at the wall above the gap and get stuck there.
DEMOS = {"bad_aim_fraction": 0.5, "bad_aim": 0.3, "two_sided": False}
COMMON = {
    "horizon": 4,
    "n_action_steps": 4,
    "drop_n_last_frames": 0,
    "state_feature_dim": 32,
    "task_embedding_dim": 8,
    "critic_hidden_dim": 64,
    "critic_num_blocks": 1,
    "use_ema": False,
}


def demo_windows(demos: list[dict], horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(state, action chunk) pairs of every step; chunks past an episode's end repeat its last action."""
    states, chunks = [], []
    for d in demos:
        acts = d["action"]
        for t in range(len(acts)):
            idx = np.minimum(np.arange(t, t + horizon), len(acts) - 1)
            states.append(d["observation.state"][t])
            chunks.append(acts[idx])
    return np.asarray(states, np.float32), np.asarray(chunks, np.float32)


def demo_stats(states: np.ndarray, chunks: np.ndarray) -> dict[str, dict[str, torch.Tensor]]:
    """Min/max/mean/std of state and action, as a LeRobotDataset's stats would give them."""
    actions = chunks.reshape(-1, chunks.shape[-1])

    def stats(x: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "min": torch.as_tensor(x.min(0)),
            "max": torch.as_tensor(x.max(0)),
            "mean": torch.as_tensor(x.mean(0)),
            "std": torch.as_tensor(x.std(0)),
        }

    return {"observation.state": stats(states), "action": stats(actions)}


def pretrain_passage_policy(
    kind: str,
    output_dir: Path,
    n_demos: int = 200,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    demo_kwargs: dict | None = None,
) -> Path:
    """Train ``kind`` (diffrl or gaussrl) by BC on scripted passage demos and save it like a checkpoint."""
    torch.manual_seed(seed)
    cls = policy_class(kind)
    config = cls.config_class(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))},
        device="cpu",
        tasks=[PASSAGE_TASK],
        **COMMON,
        **PASSAGE_POLICY[kind],
    )
    policy = cls(config)
    states, chunks = demo_windows(
        scripted_demos(n_demos, seed=seed, **{**DEMOS, **(demo_kwargs or {})}), config.horizon
    )
    stats = demo_stats(states, chunks)
    pre, post = make_rl_policy_pre_post_processors(config, stats)
    normalized = pre({"observation.state": torch.as_tensor(states), "task": [PASSAGE_TASK] * len(states)})
    state_n = normalized["observation.state"]
    lo, hi = stats["action"]["min"], stats["action"]["max"]
    action_n = (torch.as_tensor(chunks) - lo) / (hi - lo).clamp(min=1e-8) * 2 - 1
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    policy.train()
    for _ in range(steps):
        idx = torch.randint(0, len(state_n), (batch_size,), generator=g)
        loss, _ = policy.forward(
            {"observation.state": state_n[idx], "action": action_n[idx], "task": [PASSAGE_TASK] * batch_size}
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    output_dir = Path(output_dir)
    policy.save_pretrained(output_dir)
    pre.save_pretrained(output_dir)
    post.save_pretrained(output_dir)
    return output_dir


def passage_rl_config(
    policy_path: Path, output_dir: Path, iterations: int = 30, seed: int = 0, eval_episodes: int = 200
) -> RLConfig:
    """The RL settings of the passage proof: DPPO's defaults except a 10x wider clip range (0.01 -> 0.1)
    and a 6x larger actor LR (3e-4), so the policy moves within 20-30 iterations instead of DPPO's
    100-300 (with DPPO's 1e-3 -> 0.01 it gains about 27 points in 30 iterations instead of 53)."""
    return RLConfig(
        policy_path=str(policy_path),
        output_dir=str(output_dir),
        iterations=iterations,
        save_freq=max(iterations, 1),
        seed=seed,
        device="cpu",
        torch_threads=1,
        env=RLEnvConfig(kind="passage", n_envs=50),
        ppo=PPOConfig(
            n_steps=20,
            actor_lr=3e-4,
            critic_lr=1e-3,
            lr_warmup_iters=0,
            batch_size=500,
            update_epochs=5,
            critic_warmup_iters=1,
            clip_base=0.01,
            clip_final=0.1,
        ),
        eval=RLEvalConfig(freq=10, episodes_per_task=eval_episodes, seed=0),
    )
