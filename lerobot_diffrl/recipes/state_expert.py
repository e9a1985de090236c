"""The per-task state-expert recipe: scripted demos -> camera-free copy -> BC -> RL, as the commands a user types.

Why these settings (measured on libero_object task 0 with 8 scripted demos; see BENCHMARKS.md "State experts"):

* BC of a state policy reads no camera, but a LeRobotDataset decodes every video frame of an item anyway
  (0.18 s of a 0.3 s training step). ``lerobot-edit-dataset --operation.type=remove_feature`` makes a
  camera-free copy, so BC is bound by the model, not by video decoding.
* DPPO's state-based configs, not its pixel ones: an MLP denoiser, K = 20 diffusion steps, learning rate 1e-3,
  batch 128. With the pixel defaults (U-Net, K = 100, 1e-4) 5000 steps leave the chunk error at 0.18
  (normalised) and the policy at 0/20; with these, 5000 steps reach 0.07 and 6/20 (the Gaussian baseline, 3000
  steps: 0.026 and 6/20).

Every helper returns an argument list (command first) so that a benchmark, a test or a shell script runs exactly
what the README shows.
"""

from __future__ import annotations

from pathlib import Path

from lerobot_diffrl.envs.lerobot_batch import IMAGE_KEYS

#: Policy fields of each expert type's state-only BC (``--policy.<field>=<value>`` for ``lerobot-train``).
STATE_BC_POLICY: dict[str, dict[str, object]] = {
    "diffrl": {
        "use_images": False,
        "denoiser": "mlp",
        "num_train_timesteps": 20,
        "ddim_steps": 10,
        "ft_denoising_steps": 10,
        "optimizer_lr": 1e-3,
    },
    "gaussrl": {"use_images": False, "optimizer_lr": 3e-4},
}
#: BC batch size of the state experts (DPPO's state pretraining uses 256; 128 halves the CPU cost).
STATE_BC_BATCH = 128


def _flag(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


#: ``lerobot-train`` arguments of each expert type's state-only BC.
STATE_BC_ARGS: dict[str, list[str]] = {
    kind: [*(f"--policy.{k}={_flag(v)}" for k, v in fields.items()), f"--batch_size={STATE_BC_BATCH}"]
    for kind, fields in STATE_BC_POLICY.items()
}

#: ``lerobot-diffrl-rl`` PPO settings of the state experts that differ from DPPO's defaults: a discount per
#: chunk of 0.99 (LIBERO episodes are ~20-35 chunks, DPPO's robomimic ones longer), a larger actor learning rate
#: and one critic warm-up iteration, for budgets of tens of thousands of env steps rather than millions.
STATE_RL_ARGS: list[str] = ["--ppo.gamma=0.99", "--ppo.actor_lr=1e-4", "--ppo.critic_warmup_iters=1"]


def strip_cameras_command(src_root: Path, src_repo_id: str, dst_root: Path, dst_repo_id: str) -> list[str]:
    """``lerobot-edit-dataset`` call writing a copy of a demo dataset without its camera features."""
    names = "[" + ",".join(f"'{key}'" for key in IMAGE_KEYS) + "]"
    return [
        "lerobot-edit-dataset",
        f"--repo_id={src_repo_id}",
        f"--root={src_root}",
        f"--new_repo_id={dst_repo_id}",
        f"--new_root={dst_root}",
        "--operation.type=remove_feature",
        f"--operation.feature_names={names}",
    ]


def state_bc_command(
    policy_type: str,
    dataset_root: Path,
    repo_id: str,
    output_dir: Path,
    steps: int,
    seed: int = 0,
    trainer: str = "lerobot-train",
) -> list[str]:
    """BC call of a state-only expert of ``policy_type`` (``diffrl`` or ``gaussrl``): ``lerobot-train``, or
    ``lerobot-diffrl-train-state`` (the same flags and checkpoint, the dataset in memory: ~15x faster here)."""
    return [
        trainer,
        f"--policy.type={policy_type}",
        *STATE_BC_ARGS[policy_type],
        f"--policy.scheduler_warmup_steps={min(500, steps // 10)}",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={dataset_root}",
        f"--output_dir={output_dir}",
        f"--steps={steps}",
        f"--save_freq={steps}",
        f"--seed={seed}",
        "--policy.push_to_hub=false",
        "--policy.device=cpu",
        "--wandb.enable=false",
        "--env_eval_freq=0",
        "--num_workers=0",
        f"--log_freq={max(1, steps // 10)}",
    ]


def state_rl_command(
    policy_path: Path,
    output_dir: Path,
    suite: str,
    task_id: int,
    iterations: int,
    n_envs: int,
    n_steps: int,
    eval_episodes: int,
    seed: int = 0,
) -> list[str]:
    """``lerobot-diffrl-rl`` call fine-tuning a state expert on its task, evaluated before and after on init
    states 0 .. ``eval_episodes`` - 1 (``eval.seed=0``). DPPO and PPO get the same call: the checkpoint's type
    picks the algorithm."""
    return [
        "lerobot-diffrl-rl",
        f"--policy_path={policy_path}",
        f"--output_dir={output_dir}",
        "--env.obs_mode=state",
        f"--env.suites={suite}",
        f"--env.tasks={task_id}",
        f"--env.n_envs={n_envs}",
        f"--iterations={iterations}",
        f"--ppo.n_steps={n_steps}",
        *STATE_RL_ARGS,
        "--ppo.lr_warmup_iters=2",
        f"--eval.episodes_per_task={eval_episodes}",
        "--eval.seed=0",
        "--eval.freq=0",
        f"--save_freq={iterations}",
        f"--seed={seed}",
        "--device=cpu",
        "--torch_threads=1",
    ]
