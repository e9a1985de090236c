"""Configuration of ``lerobot-diffrl-rl`` (draccus dataclasses: ``--config_path`` and dotted overrides).

Defaults follow DPPO's image-based robomimic fine-tuning configs (irom-princeton/dppo ``cfg/robomimic/finetune``,
summarised in the project's notes): gamma 0.999 per action chunk, lambda 0.95, gamma_denoise 0.99, clip range
1e-3 -> 0.01 over the fine-tuned denoising steps, batch 500 (env-step, denoising-step) pairs, 10 update epochs,
target KL 1, actor LR 5e-5 and critic LR 1e-3 with 10 warm-up iterations, 2 critic warm-up iterations, running
reward scaling. Where a default differs it says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot_diffrl.envs.observations import OBS_MODES
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.rl.ppo_loss import PPOLossConfig

ENV_KINDS = ("libero", "passage")
LOGGERS = ("none", "tensorboard", "wandb")


@dataclass
class RLEnvConfig:
    """Where rollouts come from.

    Args:
        kind: ``libero`` (the env pool) or ``passage`` (the built-in point-mass test task, no simulator).
        suites: LIBERO suites, comma separated (``libero_object,libero_spatial``).
        tasks: Task ids of every suite: ``all``, ``0``, ``0-3`` or ``0,2,5``. Slots are spread round-robin
            over the (suite, task) pairs, so ``n_envs`` should be a multiple of their number.
        n_envs: Parallel simulators (pool slots).
        obs_mode: ``state`` (no rendering: privileged fast path) or ``pixels`` (the paper's setting: both
            cameras rendered for the policy) or ``pixels_state`` (both).
        image_size: Camera resolution in pixel modes (must match the policy's image features).
        max_steps: Episode step limit (default: the suite's, see the README table).
        n_workers: Simulator processes (default: one per core in state mode, cores - 1 with pixels).
        step_timeout_s: A worker silent this long per step is killed and restarted (its episodes aborted).
        fast_state: State mode steps through the fast path (bit-identical states, ~1.7x faster); false takes
            robosuite's own step (for comparisons).
        gap_half_width, goal_radius, passage_max_steps: the passage task's geometry and step limit.
    """

    kind: str = "libero"
    suites: str = "libero_object"
    tasks: str = "0"
    n_envs: int = 50
    obs_mode: str = "state"
    image_size: int = 128
    max_steps: int | None = None
    n_workers: int | None = None
    step_timeout_s: float = 60.0
    fast_state: bool = True
    gap_half_width: float = 0.08
    goal_radius: float = 0.12
    passage_max_steps: int = 80

    def validate(self) -> None:
        if self.kind not in ENV_KINDS:
            raise ConfigError(f"env.kind must be one of {ENV_KINDS}; got {self.kind!r}.")
        if self.n_envs < 1:
            raise ConfigError(f"env.n_envs must be >= 1; got {self.n_envs}.")
        if self.obs_mode not in OBS_MODES:
            raise ConfigError(f"env.obs_mode must be one of {OBS_MODES}; got {self.obs_mode!r}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"env.max_steps must be >= 1; got {self.max_steps}.")


@dataclass
class PPOConfig(PPOLossConfig):
    """PPO over denoising steps (DPPO) for ``diffrl``; standard PPO for ``gaussrl`` (one transition).

    The loss's own settings (clip ranges, denoising discount, value and BC terms, log-prob clamp) are those of
    :class:`~lerobot_diffrl.rl.ppo_loss.PPOLossConfig`, inherited so that they have one home and keep their
    ``--ppo.<name>`` flags; the fields below are the rollout's, the optimiser's and the schedule's.

    Args:
        n_steps: Action chunks per env per iteration (env steps = n_envs x n_steps x n_action_steps).
        gamma: Discount per action chunk.
        gae_lambda: GAE lambda.
        reward_scaling: Divide rewards by the running std of the discounted return.
        critic_warmup_iters: First iterations train only the critic (the actor is not updated).
        update_epochs: Passes over the rollout per iteration.
        batch_size: (env step, denoising step) pairs per minibatch.
        grad_accumulation: Minibatches per optimizer step (DPPO lift/can: 15; 1 here because our batches
            are already sampled across all envs and steps, and the test task needs many small steps).
        actor_lr, critic_lr: Peak learning rates (cosine schedule with warm-up).
        lr_warmup_iters: Linear warm-up iterations of both schedules.
        min_lr_ratio: The cosine schedules decay to this fraction of the peak.
        actor_weight_decay, critic_weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping of each optimizer's parameters (None: off).
        target_kl: Stop the iteration's epochs once the approximate KL exceeds this (None: off).
        amp: bf16 autocast on CUDA (ignored on CPU).
        replay_coef: Weight of the behaviour-cloning term on chunks of the run's successful episodes
            (:mod:`lerobot_diffrl.rl.success_replay`), added to every actor minibatch once the buffer holds
            ``replay_batch_size`` chunks (0: off, DPPO as published).
        replay_batch_size: Replay chunks per minibatch.
        replay_max_chunks: Buffer size in chunks (the oldest successes go first).
    """

    n_steps: int = 70
    gamma: float = 0.999
    gae_lambda: float = 0.95
    reward_scaling: bool = True
    critic_warmup_iters: int = 2
    update_epochs: int = 10
    batch_size: int = 500
    grad_accumulation: int = 1
    actor_lr: float = 5e-5
    critic_lr: float = 1e-3
    lr_warmup_iters: int = 10
    min_lr_ratio: float = 0.1
    actor_weight_decay: float = 0.0
    critic_weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    target_kl: float | None = 1.0
    amp: bool = True
    replay_coef: float = 0.0
    replay_batch_size: int = 256
    replay_max_chunks: int = 20_000

    def validate(self) -> None:
        if self.replay_coef < 0:
            raise ConfigError(f"ppo.replay_coef must be >= 0; got {self.replay_coef}.")
        for name in ("n_steps", "update_epochs", "batch_size", "grad_accumulation", "replay_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ppo.{name} must be >= 1; got {getattr(self, name)}.")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("ppo.gamma must be in (0, 1] and ppo.gae_lambda in [0, 1].")
        if self.actor_lr <= 0 or self.critic_lr <= 0:
            raise ConfigError("ppo.actor_lr and ppo.critic_lr must be > 0.")


@dataclass
class RLEvalConfig:
    """Deterministic evaluation: the same init states every time.

    Args:
        freq: Evaluate every this many iterations (0: only at the start and the end).
        episodes_per_task: Episodes per task, on init states 0 .. episodes_per_task - 1 (LIBERO) or on a
            fixed seed (passage).
        seed: Seed of the evaluation episodes.
        videos: Episodes per task to record as MP4 after training (LIBERO only; rendered in an extra
            one-worker pool at ``env.image_size``, into ``<output_dir>/videos``).
        at_start: Evaluate the warm-started policy before training (the "before" number).
    """

    freq: int = 10
    episodes_per_task: int = 10
    seed: int = 100_000
    videos: int = 0
    at_start: bool = True


@dataclass
class RLConfig:
    """``lerobot-diffrl-rl``: fine-tune a BC-pretrained ``diffrl`` (DPPO) or ``gaussrl`` (PPO) policy.

    Args:
        policy_path: ``pretrained_model`` folder of a ``lerobot-train`` / ``lerobot-diffrl-rl`` checkpoint, or a
            Hub repo id.
        output_dir: Run folder (checkpoints, metrics.jsonl, eval results). Must not exist unless ``resume``.
        resume: Continue the run in ``output_dir`` from its last checkpoint.
        iterations: PPO iterations (rollout + update).
        save_freq: Checkpoint every this many iterations (and at the end, and on Ctrl-C).
        seed: Seed of torch, numpy and the envs' init-state order.
        device: ``cuda``, ``cpu`` or ``auto``.
        logger: ``none``, ``tensorboard`` or ``wandb`` (metrics.jsonl is always written).
        wandb_project: W&B project when ``logger=wandb``.
        torch_threads: CPU threads of torch (None: torch's default). 1 is fastest when the simulator workers
            already use every core: two threads then spin against the workers (measured 10x slower updates).
    """

    policy_path: str | None = None
    output_dir: str | None = None
    resume: bool = False
    iterations: int = 100
    save_freq: int = 10
    seed: int = 0
    device: str = "auto"
    logger: str = "none"
    wandb_project: str = "lerobot-diffrl"
    torch_threads: int | None = None
    env: RLEnvConfig = field(default_factory=RLEnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)

    def validate(self) -> None:
        if not self.policy_path and not self.resume:
            raise ConfigError(
                "--policy_path is required (a BC checkpoint's pretrained_model folder or Hub id)."
            )
        if not self.output_dir:
            raise ConfigError("--output_dir is required.")
        if self.iterations < 0 or self.save_freq < 1:
            raise ConfigError("--iterations must be >= 0 and --save_freq >= 1.")
        if self.logger not in LOGGERS:
            raise ConfigError(f"--logger must be one of {LOGGERS}; got {self.logger!r}.")
        if self.eval.episodes_per_task < 0 or self.eval.freq < 0 or self.eval.videos < 0:
            raise ConfigError("eval.episodes_per_task, eval.freq and eval.videos must be >= 0.")
        self.env.validate()
        self.ppo.validate()
