"""Who acts in the env pool during generation: the :class:`Actor` protocol and :class:`PolicyActor`.

An actor acts for every slot of an :class:`~lerobot_diffrl.envs.pool.EnvPool` at once. ``obs_mode`` says the
least the pool must compute for the actor to act ("state": proprioception and object poses; "pixels": camera
images; "pixels_state": both); the generator always records camera images, so it runs the pool in "pixels" or
"pixels_state" mode and a state-based actor still acts on state while the env renders for the record.

Two actors exist: the scripted expert (:mod:`lerobot_diffrl.data.scripted_expert`, privileged state) and
:class:`PolicyActor`, a ``diffrl``/``gaussrl`` checkpoint from ``lerobot-train`` or ``lerobot-diffrl-rl``.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lerobot_diffrl.envs.lerobot_batch import IMAGE_KEYS, OBS_ENV_STATE, lerobot_batch
from lerobot_diffrl.envs.pool import SlotSpec
from lerobot_diffrl.envs.suites import task_spec
from lerobot_diffrl.errors import CheckpointError, ConfigError
from lerobot_diffrl.run_files import PRETRAINED_MODEL_DIR, last_pretrained_model

POLICY_TYPES = ("diffrl", "gaussrl")
ACTOR_TYPES = ("scripted", "policy", *POLICY_TYPES)
ACTION_DIM = 7
#: Pool observation mode to run for an actor's ``obs_mode`` when images are recorded too.
RECORDING_POOL_MODE = {"state": "pixels_state", "pixels": "pixels", "pixels_state": "pixels_state"}


class Actor(Protocol):
    obs_mode: str  # minimum pool obs mode the actor needs to act: "state" or "pixels"

    def reset(
        self, slot_ids: np.ndarray, obs: dict, infos: dict, slots: list[SlotSpec] | None = None
    ) -> None: ...

    # slots `slot_ids` just started an episode (all after pool.reset; auto-reset ones after a step with
    # infos["_final"])

    def act(self, obs: dict) -> np.ndarray: ...  # (n, 7) float actions in [-1, 1], one per slot


def resolve_checkpoint(path: str) -> tuple[Path, str | None]:
    """A policy folder (``config.json`` + ``model.safetensors``) for ``path``, and the Hub repo id if any.

    Accepts the ``pretrained_model/`` folder itself, a ``lerobot-train``/``lerobot-diffrl-rl`` checkpoint
    folder holding one, a run's output folder (``checkpoints/last/pretrained_model``), or a Hub model id
    (downloaded through the Hub cache; offline it must already be cached).
    """
    local = Path(path).expanduser()
    if local.exists() or str(path).startswith(("/", "./", "../", "~")):
        if not local.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        for candidate in (
            local,
            local / PRETRAINED_MODEL_DIR,
            last_pretrained_model(local),
        ):
            if (candidate / "config.json").is_file():
                if not (candidate / "model.safetensors").is_file():
                    raise CheckpointError(f"{candidate} has a config.json but no model.safetensors")
                return candidate.resolve(), None
        raise CheckpointError(
            f"{path} holds no policy checkpoint (looked for config.json in it, in pretrained_model/ and in "
            "checkpoints/last/pretrained_model/)"
        )
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id=str(path), repo_type="model")
    except Exception as err:  # offline, unknown repo, no access
        raise CheckpointError(
            f"cannot get policy {path!r} from the Hugging Face Hub: {str(err).splitlines()[0]}"
        ) from err
    return resolve_checkpoint(folder)[0], str(path)


class PolicyActor:
    """A ``diffrl``/``gaussrl`` checkpoint acting in every slot, chunk by chunk.

    Each slot keeps a queue of the ``n_action_steps`` actions of its last predicted chunk and re-plans when the
    queue is empty or its episode restarts; the slots that need a plan at a step are batched into one call of
    ``predict_action_chunk`` (deterministic: DDIM with eta 0 for diffrl, the mean for gaussrl). The initial
    diffusion noise of an episode comes from a generator seeded with the run's seed and the episode's own seed,
    and each slot is planned in a call of its own: an episode's actions then depend only on its attempt, not on
    which other episodes share the batch, so a sharded, resumed or re-run generation repeats every episode
    exactly (a batch of several slots can differ from single calls in the last bits). Observations go through
    :func:`~lerobot_diffrl.envs.lerobot_batch.lerobot_batch` and the checkpoint's own pre/post-processors, so
    the policy sees exactly what ``lerobot-eval`` would give it. Images rendered at another size than the
    policy was trained at are resized (bilinear, antialiased).
    """

    def __init__(
        self,
        path: str,
        slots: list[SlotSpec],
        *,
        device: str = "cpu",
        expected_type: str | None = None,
        seed: int = 0,
    ):
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        import lerobot_diffrl.policies  # noqa: F401  (registers diffrl/gaussrl with lerobot)

        self.checkpoint, self.repo_id = resolve_checkpoint(path)
        try:
            config = PreTrainedConfig.from_pretrained(self.checkpoint)
        except Exception as err:
            raise CheckpointError(
                f"cannot read the policy config in {self.checkpoint}: {str(err).splitlines()[0]}"
            ) from err
        self.policy_type = getattr(config, "type", type(config).__name__)
        if self.policy_type not in POLICY_TYPES:
            raise CheckpointError(
                f"{path} holds a {self.policy_type!r} policy; generation runs {' or '.join(POLICY_TYPES)}"
            )
        if expected_type is not None and self.policy_type != expected_type:
            raise CheckpointError(f"{path} holds a {self.policy_type!r} policy, not {expected_type!r}")
        action = config.output_features.get("action")
        if action is None or tuple(action.shape) != (ACTION_DIM,):
            raise CheckpointError(
                f"{path} outputs {tuple(action.shape) if action else 'no'} actions; LIBERO takes 7-d actions"
            )
        config.device = device
        self.device = torch.device(device)
        self.policy = get_policy_class(self.policy_type).from_pretrained(self.checkpoint, config=config)
        self.policy.to(self.device).eval()
        try:
            self.preprocessor, self.postprocessor = make_pre_post_processors(
                config,
                pretrained_path=str(self.checkpoint),
                preprocessor_overrides={"device_processor": {"device": device}},
            )
        except Exception as err:
            raise CheckpointError(
                f"{self.checkpoint} has no usable policy_preprocessor.json / policy_postprocessor.json: "
                f"{str(err).splitlines()[0]}"
            ) from err
        self.image_shapes = {k: tuple(ft.shape) for k, ft in config.used_image_features.items()}
        unknown = sorted(set(self.image_shapes) - set(IMAGE_KEYS))
        if unknown:
            raise CheckpointError(f"the policy uses cameras {unknown}; LIBERO renders {list(IMAGE_KEYS)}")
        env_state = config.input_features.get(OBS_ENV_STATE)
        self.env_state_dim = int(env_state.shape[0]) if env_state is not None else None
        if self.image_shapes:
            self.obs_mode = "pixels_state" if self.env_state_dim else "pixels"
        else:
            self.obs_mode = "state"
        self.n_action_steps = int(config.n_action_steps)
        self.seed = int(seed)
        self.generators = [self._generator(0) for _ in slots]
        self._languages: dict[tuple[str, int], str] = {}
        self.tasks = [self._language(s) for s in slots]
        self.queues: list[deque[np.ndarray]] = [deque() for _ in slots]

    def _language(self, slot: SlotSpec) -> str:
        key = (slot.suite, slot.task_id)
        if key not in self._languages:
            self._languages[key] = task_spec(*key).language
        return self._languages[key]

    def _generator(self, episode_seed: int) -> torch.Generator:
        mixed = (self.seed * 0x9E3779B97F4A7C15 + int(episode_seed)) % (2**63)
        return torch.Generator(self.device).manual_seed(mixed)

    def reset(
        self, slot_ids: np.ndarray, obs: dict, infos: dict, slots: list[SlotSpec] | None = None
    ) -> None:
        seeds = infos.get("episode_seed")
        for s in np.asarray(slot_ids, dtype=int):
            self.queues[s].clear()
            self.generators[s] = self._generator(int(seeds[s]) if seeds is not None else 0)
            if slots is not None:
                self.tasks[s] = self._language(slots[s])

    def _resize(self, batch: dict[str, Any]) -> None:
        for key, (_, height, width) in self.image_shapes.items():
            img = batch[key]
            if tuple(img.shape[-2:]) != (height, width):
                batch[key] = torch.nn.functional.interpolate(
                    img, size=(height, width), mode="bilinear", antialias=True, align_corners=False
                )

    def plan(self, obs: dict, slots: np.ndarray) -> np.ndarray:
        """Action chunks (len(slots), n_action_steps, 7) in env units for the given slots, one call per slot."""
        return np.concatenate([self._plan_one(obs, np.asarray([s])) for s in slots])

    @torch.no_grad()
    def _plan_one(self, obs: dict, slots: np.ndarray) -> np.ndarray:
        sub = _select(obs, slots)
        batch = lerobot_batch(sub, [self.tasks[s] for s in slots], self.env_state_dim, device=self.device)
        for key in list(batch):
            if key.startswith("observation.images.") and key not in self.image_shapes:
                del batch[key]
        missing = sorted(set(self.image_shapes) - set(batch))
        if missing:
            raise ConfigError(f"the policy needs cameras {missing}: run the pool in a pixels mode")
        self._resize(batch)
        generator = self.generators[int(slots[0])]
        chunk = self.policy.predict_action_chunk(self.preprocessor(batch), generator=generator)
        b, k, a = chunk.shape
        actions = self.postprocessor(chunk.reshape(b * k, a).float())
        return actions.reshape(b, k, a).cpu().numpy()

    def act(self, obs: dict) -> np.ndarray:
        need = np.array([s for s, q in enumerate(self.queues) if not q], dtype=int)
        if len(need):
            for s, chunk in zip(need, self.plan(obs, need), strict=True):
                self.queues[s].extend(chunk)
        return np.clip(np.stack([q.popleft() for q in self.queues]), -1.0, 1.0)


def _select(obs: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    return {k: _select(v, index) if isinstance(v, dict) else v[index] for k, v in obs.items()}


def make_actor(
    actor_type: str,
    slots: list[SlotSpec],
    *,
    path: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    randomize: bool = True,
    tasks: list[SlotSpec] | None = None,
) -> Actor:
    """Build the actor named by ``--actor.type``: ``scripted``, or ``policy``/``diffrl``/``gaussrl`` (a checkpoint
    at ``--actor.path``; ``policy`` accepts either type). ``slots`` are the pool's initial slots; ``tasks``
    every task the actor will meet (checked against what the scripted expert supports)."""
    if actor_type not in ACTOR_TYPES:
        raise ConfigError(f"unknown actor type {actor_type!r}; choose one of {', '.join(ACTOR_TYPES)}")
    if actor_type == "scripted":
        if path is not None:
            raise ConfigError("--actor.path is for policy actors; the scripted expert takes none")
        try:
            from lerobot_diffrl.data.scripted_expert import ScriptedExpert
        except ImportError as err:
            raise ConfigError(f"the scripted expert is not available: {err}") from err
        unsupported = sorted(
            {f"{s.suite}/{s.task_id}" for s in (tasks or slots) if not ScriptedExpert.supports(s)}
        )
        if unsupported:
            raise ConfigError(f"the scripted expert does not support {', '.join(unsupported)}")
        return ScriptedExpert(slots, seed=seed, randomize=randomize)
    if not path:
        raise ConfigError(
            f"--actor.type={actor_type} needs --actor.path (a checkpoint folder or Hub model id)"
        )
    return PolicyActor(
        path, slots, device=device, expected_type=None if actor_type == "policy" else actor_type, seed=seed
    )
