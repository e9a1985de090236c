"""Behaviour shared by ``DiffRLPolicy`` and ``GaussRLPolicy``: actor/critic/EMA layout, task slots, action
queue, RL switch-over, strict checkpoint loading and the project's model card.

Module layout (the state-dict prefixes a checkpoint holds):

* ``actor``: observation encoder + action head (denoiser or Gaussian head); what BC and RL train.
* ``ema_actor``: EMA of ``actor`` during BC (``use_ema``); inference uses it. ``prepare_for_rl`` copies it into
  ``actor`` and drops it, so RL then trains and samples the live actor.
* ``critic``: V(s); saved with the policy, never trained by BC (its parameters are frozen until
  ``prepare_for_rl``).
* ``base_actor`` (diffrl only, K' < DDIM steps after ``prepare_for_rl``): frozen copy for the early steps.
"""

from __future__ import annotations

import abc
import builtins
import copy
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from huggingface_hub import ModelCard
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.pretrained import PreTrainedPolicy
from safetensors.torch import load_file
from torch import Tensor, nn

from lerobot_diffrl.errors import CheckpointError, ConfigError
from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase
from lerobot_diffrl.policies.common.critic import ValueNetwork
from lerobot_diffrl.policies.common.encoders import TASK_KEY, ObservationEncoder, task_slots
from lerobot_diffrl.policies.common.model_card import build_model_card
from lerobot_diffrl.policies.common.rl_interface import LogProbEval, RolloutSample

T = TypeVar("T", bound="RLPolicyBase")
logger = logging.getLogger(__name__)


class RLPolicyBase(PreTrainedPolicy):
    """Base of the project's policies; concrete classes build ``actor`` and implement the action head."""

    config_class = RLPolicyConfigBase
    name = "rl_policy_base"

    def __init__(
        self,
        config: RLPolicyConfigBase,
        dataset_stats: dict[str, dict[str, Tensor]] | None = None,
        dataset_meta: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the policy from its config. ``dataset_meta`` (given by ``lerobot-train``) fills the task list
        and the dataset name for the model card; ``dataset_stats`` is unused (normalisation is in the
        processors, as for every LeRobot policy)."""
        super().__init__(config)
        config.validate_features()
        self.config: RLPolicyConfigBase = config
        if dataset_meta is not None:
            tasks = getattr(dataset_meta, "tasks", None)
            if not config.tasks and tasks is not None:
                names = list(tasks.index) if hasattr(tasks, "index") else list(tasks)
                config.tasks.extend(str(t) for t in names)
                if len(config.tasks) >= config.max_tasks:
                    raise ConfigError(f"dataset has {len(config.tasks)} tasks; raise policy.max_tasks.")
            if config.dataset_repo_id is None:
                config.dataset_repo_id = getattr(dataset_meta, "repo_id", None)
        self.actor = self._build_actor()
        self.critic = ValueNetwork(config, self.actor.encoder.out_dim)
        self.critic.requires_grad_(False)
        self.ema_actor: nn.Module | None = None
        if config.use_ema:
            self.ema_actor = copy.deepcopy(self.actor).requires_grad_(False)
            self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))
        self._warned_tasks: set[str] = set()
        self._queue: deque[Tensor] = deque(maxlen=config.n_action_steps)

    # --- to implement ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def _build_actor(self) -> nn.Module:
        """Return the actor module; it must have an ``encoder`` attribute (an ObservationEncoder)."""

    @abc.abstractmethod
    def _sample_chunk(self, actor: nn.Module, batch: dict, generator: torch.Generator | None) -> Tensor:
        """Deterministic normalised chunk (B, H, A) from ``actor`` (used for evaluation)."""

    @abc.abstractmethod
    def sample_with_logprobs(
        self, batch: dict, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> RolloutSample: ...

    @abc.abstractmethod
    def evaluate_logprobs(
        self, batch: dict, sample: RolloutSample, transition_index: Tensor | None = None
    ) -> LogProbEval: ...

    def _card_architecture(self) -> list[str]:
        """Lines describing the action head for the model card."""
        return []

    # --- tasks -----------------------------------------------------------------------------------------
    def task_slots(self, batch: dict) -> Tensor:
        """Task-embedding slots of a batch (0 for a missing or unknown task)."""
        enc: ObservationEncoder = self.actor.encoder
        return task_slots(
            self.config.tasks, batch.get(TASK_KEY), enc.batch_size(batch), self.device, self._warned_tasks
        )

    def add_tasks(self, tasks: list[str]) -> list[int]:
        """Register new task strings (the documented way to add tasks after training).

        Appends to ``config.tasks`` (existing slots never move) and initialises each new slot, in every task
        table (actor, EMA, critic, frozen base), from the "no task" embedding of slot 0, so the new task starts
        as the unconditioned policy. Save the policy afterwards to persist the list. Returns the slots.
        """
        new = [t for t in dict.fromkeys(tasks) if t not in self.config.tasks]
        if len(self.config.tasks) + len(new) >= self.config.max_tasks:
            raise ConfigError(
                f"task table holds {self.config.max_tasks - 1} tasks; raise max_tasks and retrain."
            )
        first = len(self.config.tasks) + 1
        self.config.tasks.extend(new)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, ObservationEncoder):
                    module.task.weight[first : first + len(new)] = module.task.weight[0]
        return [self.config.tasks.index(t) + 1 for t in tasks]

    # --- LeRobot policy API ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.actor.parameters()).device

    def get_optim_params(self) -> Iterator[nn.Parameter]:
        """BC trains the actor only (not the critic, not the EMA/frozen copies)."""
        return self.actor.parameters()

    def reset(self) -> None:
        """Clear the action queue (called by lerobot at every env reset)."""
        self._queue.clear()

    @torch.no_grad()
    def update(self) -> None:
        """EMA step; ``lerobot-train`` calls this after every optimizer step.

        Decay warms up as min(ema_decay, (1 + n) / (10 + n)) so early EMA weights are not stuck at the
        random initialisation.
        """
        if self.ema_actor is None:
            return
        n = int(self.ema_step.item())
        decay = min(self.config.ema_decay, (1 + n) / (10 + n))
        for p_ema, p in zip(self.ema_actor.parameters(), self.actor.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1 - decay)
        self.ema_step += 1

    @property
    def inference_actor(self) -> nn.Module:
        """The EMA actor when there is one (BC checkpoints), else the live actor."""
        return self.ema_actor if self.ema_actor is not None else self.actor

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """Deterministic normalised actions to execute, (B, n_action_steps, A), from the inference actor.

        ``generator`` (a ``torch.Generator``) may be passed to fix the initial noise of diffusion sampling.
        """
        chunk = self._sample_chunk(self.inference_actor, batch, kwargs.get("generator"))
        return chunk[:, : self.config.n_action_steps]

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """One action (B, A) per call; a new chunk is predicted every ``n_action_steps`` calls."""
        if len(self._queue) == 0:
            self._queue.extend(self.predict_action_chunk(batch, **kwargs).transpose(0, 1))
        return self._queue.popleft()

    # --- RL interface (shared parts) -------------------------------------------------------------------
    def value(self, batch: dict) -> Tensor:
        """Critic estimate V(s), (B,). With the shared-encoder critic the actor features are detached."""
        slots = self.task_slots(batch)
        shared = None if self.critic.encoder is not None else self.actor.encoder(batch, slots)
        return self.critic(batch, slots, shared)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """The live actor's parameters (what PPO's actor optimizer updates)."""
        return self.actor.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        """The critic's parameters (what PPO's critic optimizer updates)."""
        return self.critic.parameters()

    def prepare_for_rl(self) -> None:
        """Switch a BC policy to RL fine-tuning (idempotent).

        Copies EMA weights into the live actor and drops the EMA (``config.use_ema = False``), unfreezes the
        critic, and lets the subclass add what it needs (diffrl: frozen base actor when K' < DDIM steps).
        The config change is saved with the policy so RL checkpoints load with the same module layout.
        """
        if self.ema_actor is not None:
            self.actor.load_state_dict(self.ema_actor.state_dict())
            self.ema_actor = None
            del self.ema_step
            self.config.use_ema = False
        self.critic.requires_grad_(True)
        self.actor.requires_grad_(True)

    # --- save / load -----------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """config.json + model.safetensors (as lerobot; ``state_dict`` is the pre-gathered one lerobot-train
        passes under FSDP) + README.md written by the project's card."""
        super()._save_pretrained(save_directory, state_dict=state_dict)
        self.generate_model_card(
            self.config.dataset_repo_id, self.config.type, self.config.license, self.config.tags
        ).save(str(Path(save_directory) / "README.md"))

    def generate_model_card(
        self,
        dataset_repo_id: str | None,
        model_type: str,
        license: str | None,
        tags: list[str] | None,
        cfg: Any | None = None,
        dataset_meta: Any | None = None,
    ) -> ModelCard:
        """The project's model card (lerobot's template knows only built-in types and their base models).

        ``push_model_to_hub`` calls this with the train config and dataset metadata too (``cfg``,
        ``dataset_meta``, lerobot 0.6); the card reads what it needs from the policy's own config."""
        return build_model_card(
            config=self.config,
            dataset_repo_id=dataset_repo_id or self.config.dataset_repo_id,
            license=license,
            tags=tags,
            param_counts=self.parameter_counts(),
            head_lines=self._card_architecture(),
        )

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts by part (EMA/frozen copies excluded from ``total``)."""
        enc = sum(p.numel() for p in self.actor.encoder.parameters())
        actor = sum(p.numel() for p in self.actor.parameters())
        critic = sum(p.numel() for p in self.critic.parameters())
        return {
            "encoder": enc,
            "head": actor - enc,
            "actor": actor,
            "critic": critic,
            "total": actor + critic,
        }

    @classmethod
    def from_pretrained(
        cls: builtins.type[T],
        pretrained_name_or_path: str | Path,
        *,
        config: PreTrainedConfig | None = None,
        **kwargs: Any,
    ) -> T:
        """Load like lerobot, but strictly: a missing, unexpected or mis-shaped weight is a ``CheckpointError``
        (lerobot's default ``strict=False`` only logs it, silently leaving random weights)."""
        kwargs.pop("strict", None)
        path = Path(pretrained_name_or_path)
        if path.is_dir():
            for needed in (CONFIG_NAME, SAFETENSORS_SINGLE_FILE):
                if not (path / needed).is_file():
                    raise CheckpointError(f"{path} is not a saved policy: {needed} is missing.")
        elif str(pretrained_name_or_path).startswith(("/", "./", "../", "~")):
            raise CheckpointError(f"checkpoint directory {path} does not exist.")
        if config is None:
            hub_keys = (
                "force_download",
                "resume_download",
                "proxies",
                "token",
                "cache_dir",
                "local_files_only",
                "revision",
            )
            config = PreTrainedConfig.from_pretrained(
                pretrained_name_or_path, **{k: kwargs[k] for k in hub_keys if k in kwargs}
            )
        if not isinstance(config, cls.config_class):
            raise CheckpointError(
                f"{pretrained_name_or_path} holds a {getattr(config, 'type', type(config).__name__)!r} policy, "
                f"not {cls.name!r}."
            )
        return super().from_pretrained(pretrained_name_or_path, config=config, strict=True, **kwargs)

    @classmethod
    def _load_as_safetensor(cls, model: T, model_file: str, map_location: str, strict: bool) -> T:
        state = load_file(model_file, device=str(map_location))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or mismatched:

            def show(keys: list[str]) -> str:
                return ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8})" if len(keys) > 8 else "")

            parts = [
                f"missing keys: {show(missing)}" if missing else "",
                f"unexpected keys: {show(unexpected)}" if unexpected else "",
                f"shape mismatches: {show(mismatched)}" if mismatched else "",
            ]
            raise CheckpointError(
                f"{model_file} does not match the {cls.name} policy its config.json describes ("
                + "; ".join(p for p in parts if p)
                + "). Was it saved by another version or edited?"
            )
        model.load_state_dict(state, strict=True)
        return model
