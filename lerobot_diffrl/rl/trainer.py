"""The RL fine-tuning loop: DPPO for ``diffrl``, PPO for ``gaussrl``, same code and settings for both.

Per iteration: collect ``n_envs x n_steps`` action chunks, scale rewards, compute GAE, run the PPO epochs
(critic only during the warm-up iterations), step the cosine schedules, log, evaluate and checkpoint on
schedule. Ctrl-C writes a checkpoint before exiting; ``resume`` continues from the last one with the same
optimizer, scheduler, reward-scaler and RNG states.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.utils.random_utils import set_seed
from tqdm import tqdm

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.rl.checkpoint import (
    PRETRAINED,
    check_resumable,
    config_dict,
    load_extra_state,
    load_training_state,
    save_checkpoint,
    save_config,
)
from lerobot_diffrl.rl.config import RLConfig
from lerobot_diffrl.rl.envs import LIBERO_ACTION_DIM, PASSAGE_ACTION_DIM, RLEnv, make_rl_env
from lerobot_diffrl.rl.evaluation import EvalResult, evaluate
from lerobot_diffrl.rl.metrics_log import MetricsLogger
from lerobot_diffrl.rl.policy_io import LoadedPolicy, check_compatible, load_policy
from lerobot_diffrl.rl.reward_scaling import RunningRewardScaler
from lerobot_diffrl.rl.rollout import RolloutCollector
from lerobot_diffrl.rl.success_replay import SuccessReplay
from lerobot_diffrl.rl.update import Optimizers, compute_targets, ppo_update

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
REPLAY_STATE = "success_replay"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device={name} but no CUDA device is available; use --device=cpu.")
    return torch.device(name)


def _cosine(optimizer: torch.optim.Optimizer, lr: float, cfg: RLConfig) -> Any:
    total = max(cfg.iterations, 1)
    return CosineDecayWithWarmupSchedulerConfig(
        num_warmup_steps=min(cfg.ppo.lr_warmup_iters, total - 1) if total > 1 else 0,
        num_decay_steps=total,
        peak_lr=lr,
        decay_lr=lr * cfg.ppo.min_lr_ratio,
    ).build(optimizer, total)


class RLTrainer:
    """Builds everything from an :class:`RLConfig` (validating before anything is written) and trains."""

    def __init__(self, cfg: RLConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir)
        resume_from: Path | None = None
        if cfg.resume:
            resume_from = check_resumable(self.run_dir)
            policy_path = str(resume_from / PRETRAINED)
        else:
            if self.run_dir.exists() and any(self.run_dir.iterdir()):
                raise ConfigError(
                    f"output_dir {self.run_dir} already exists; pass --resume=true to continue that run or "
                    "choose another --output_dir."
                )
            policy_path = cfg.policy_path
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        set_seed(cfg.seed)
        self.loaded: LoadedPolicy = load_policy(policy_path, self.device)
        action_dim = PASSAGE_ACTION_DIM if cfg.env.kind == "passage" else LIBERO_ACTION_DIM
        obs_mode = None if cfg.env.kind == "passage" else cfg.env.obs_mode
        check_compatible(self.loaded, action_dim, cfg.env.kind == "libero" and obs_mode != "state", obs_mode)
        policy = self.loaded.policy
        policy.prepare_for_rl()
        policy.to(self.device)
        self.reference: LoadedPolicy | None = None
        if cfg.ppo.bc_coef > 0:
            frozen = copy.deepcopy(policy).requires_grad_(False)
            self.reference = LoadedPolicy(frozen, self.loaded.preprocessor, self.loaded.postprocessor, None)
        self.optimizers = Optimizers(
            torch.optim.AdamW(
                policy.actor_parameters(), lr=cfg.ppo.actor_lr, weight_decay=cfg.ppo.actor_weight_decay
            ),
            torch.optim.AdamW(
                policy.critic_parameters(), lr=cfg.ppo.critic_lr, weight_decay=cfg.ppo.critic_weight_decay
            ),
        )
        self.schedulers = {
            "actor_scheduler": _cosine(self.optimizers.actor, cfg.ppo.actor_lr, cfg),
            "critic_scheduler": _cosine(self.optimizers.critic, cfg.ppo.critic_lr, cfg),
        }
        self.iteration = 0
        self.env_steps = 0
        self.history: list[dict[str, Any]] = []
        self.env: RLEnv = make_rl_env(cfg.env, cfg.seed)
        self.scaler = (
            RunningRewardScaler(self.env.num_envs, cfg.ppo.gamma) if cfg.ppo.reward_scaling else None
        )
        self.replay = (
            SuccessReplay(self.env.num_envs, cfg.ppo.replay_max_chunks) if cfg.ppo.replay_coef > 0 else None
        )
        if resume_from is not None:
            progress = load_training_state(resume_from, self._optimizer_dict(), self.schedulers)
            self.iteration = int(progress["iteration"])
            self.env_steps = int(progress["env_steps"])
            self.history = list(progress.get("evaluations", []))
            if self.scaler is not None and progress.get("reward_scaler"):
                self.scaler.load_state_dict(progress["reward_scaler"])
            replay_state = load_extra_state(resume_from, REPLAY_STATE)
            if self.replay is not None and replay_state is not None:
                self.replay.load_state_dict(replay_state)
        self.generator = torch.Generator().manual_seed(cfg.seed + 7919 * self.iteration)
        self.collector = RolloutCollector(self.env, self.loaded, self.device, cfg.ppo.amp)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "train_config.json")
        self.logger = MetricsLogger(self.run_dir, cfg.logger, config_dict(cfg), cfg.wandb_project)

    def _optimizer_dict(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.optimizers.actor, "critic": self.optimizers.critic}

    def _progress(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "reward_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "evaluations": self.history,
        }

    def save(self) -> Path:
        return save_checkpoint(
            self.run_dir,
            self.iteration,
            self.loaded,
            self.cfg,
            self._optimizer_dict(),
            self.schedulers,
            self._progress(),
            {REPLAY_STATE: self.replay.state_dict()} if self.replay is not None else None,
        )

    def evaluate(self, tag: str) -> EvalResult:
        ecfg = self.cfg.eval
        result = evaluate(
            self.env, self.loaded, ecfg.episodes_per_task, ecfg.seed, self.device, self.cfg.ppo.amp
        )
        summary = result.summary()
        record = {"event": "eval", "tag": tag, "iteration": self.iteration, "env_steps": self.env_steps}
        record.update({f"eval_{k}": v for k, v in summary.items() if k != "per_task"})
        self.logger.log(record, self.iteration)
        self.history.append({**record, "per_task": summary["per_task"]})
        tqdm.write(
            f"[eval {tag}] iteration {self.iteration}: success {summary['success_rate']:.3f} "
            f"(95% CI {summary['ci95_low']:.3f}-{summary['ci95_high']:.3f}, {summary['episodes']} episodes)"
        )
        eval_dir = self.run_dir / "eval"
        eval_dir.mkdir(exist_ok=True)
        (eval_dir / f"{tag}_iter{self.iteration:06d}.json").write_text(json.dumps(summary, indent=2))
        self.collector.reset(seed=self.cfg.seed + 1 + self.iteration)
        return result

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        evaluating = cfg.eval.episodes_per_task > 0
        try:
            if evaluating and cfg.eval.at_start and self.iteration == 0 and not self.history:
                self.evaluate("start")
            self.collector.reset(seed=cfg.seed + 1 + self.iteration)
            bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="RL iterations", unit="it")
            while self.iteration < cfg.iterations:
                record = self._train_iteration()
                bar.update(1)
                bar.set_postfix(
                    success=f"{record['success_rate']:.2f}", kl=f"{record.get('approx_kl', 0):.2e}"
                )
                if self.iteration < cfg.iterations:
                    if evaluating and cfg.eval.freq and self.iteration % cfg.eval.freq == 0:
                        self.evaluate("periodic")
                    if self.iteration % cfg.save_freq == 0:
                        self.save()
            bar.close()
            if evaluating:
                self.evaluate("final")
            final = self.save()
            if cfg.eval.videos and cfg.env.kind == "libero":
                from lerobot_diffrl.rl.videos import record_videos

                videos = record_videos(
                    cfg.env, self.loaded, cfg.eval.videos, self.run_dir / "videos", cfg.eval.seed, self.device
                )
                tqdm.write(f"wrote {len(videos)} evaluation videos to {self.run_dir / 'videos'}")
        except KeyboardInterrupt:
            path = self.save()
            tqdm.write(
                f"interrupted: checkpoint of iteration {self.iteration} written to {path}; continue with "
                f"--output_dir={self.run_dir} --resume=true",
                file=sys.stderr,
            )
            raise
        finally:
            self.env.close()
            self.logger.close()
        summary = self.summary(final)
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        return summary

    def _train_iteration(self) -> dict[str, Any]:
        """One iteration of the algorithm: roll out, file the successes, scale rewards and compute GAE, run
        the PPO epochs (critic only during warm-up), step the schedules; returns the logged record."""
        ppo = self.cfg.ppo
        rollout = self.collector.collect(ppo.n_steps)
        if self.replay is not None:
            self.replay.add(rollout)
        targets = compute_targets(rollout, ppo, self.scaler)
        train_actor = self.iteration >= ppo.critic_warmup_iters
        metrics = ppo_update(
            self.loaded,
            rollout,
            targets,
            self.optimizers,
            ppo,
            train_actor,
            self.device,
            self.generator,
            self.reference,
            self.replay,
        )
        record = {
            "event": "train",
            "iteration": self.iteration + 1,
            "env_steps": self.env_steps + rollout.env_steps,
            **rollout.stats.summary(),
            **metrics,
            "actor_updated": float(train_actor),
            "actor_lr": self.optimizers.actor.param_groups[0]["lr"],
            "critic_lr": self.optimizers.critic.param_groups[0]["lr"],
            "rollout_s": rollout.seconds,
            "env_steps_per_s": rollout.env_steps / max(rollout.seconds, 1e-9),
        }
        with warnings.catch_warnings():
            # during critic warm-up the actor optimizer does not step, but its schedule advances
            # with the iterations so that warm-up does not shift it
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
            for scheduler in self.schedulers.values():
                scheduler.step()
        self.iteration += 1
        self.env_steps += rollout.env_steps
        self.logger.log(record, self.iteration)
        return record

    def summary(self, final: Path) -> dict[str, Any]:
        evals = [h for h in self.history if h.get("event") == "eval"]
        first = evals[0] if evals else {}
        last = evals[-1] if evals else {}
        return {
            "policy_type": self.loaded.policy.config.type,
            "iterations": self.iteration,
            "env_steps": self.env_steps,
            "success_before": first.get("eval_success_rate") if first.get("tag") == "start" else None,
            "success_after": last.get("eval_success_rate"),
            "ci95_after": [last.get("eval_ci95_low"), last.get("eval_ci95_high")],
            "checkpoint": str(final / PRETRAINED),
        }
