"""Configuration fields shared by ``diffrl`` and ``gaussrl``.

Both policies see observations through the same encoder (per-camera ResNet-18 trunk, state MLP, task
embedding), chunk actions the same way and carry the same critic, so the fields that describe those parts live
here once. This class is *not* registered as a policy type; the concrete configs subclass it and register.

Normalisation (see ``normalization_mapping``): images stay in [0, 1] (``IDENTITY``; the encoder standardises
them itself, with ImageNet statistics, so that optional torchvision weights see what they were trained on);
state and action use ``MIN_MAX`` so that normalised actions lie in [-1, 1]. That range is what DPPO's clipping of
the predicted clean action (±1) and of the final action assumes, so ``MEAN_STD`` on actions would be wrong here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import DiffuserSchedulerConfig

from lerobot_diffrl.errors import ConfigError

IMAGE_POOLINGS = ("spatial_softmax", "avg")


def _divisible(n: int, d: int) -> bool:
    """n is a multiple of d. (No modulo sign in config classes: draccus copies class source into --help text,
    which argparse then %-formats.)"""
    return (n // d) * d == n


CRITIC_ENCODERS = ("separate", "shared")


@dataclass
class RLPolicyConfigBase(PreTrainedConfig):
    """Fields common to the project's policies.

    Args:
        n_obs_steps: Observation history length. Only 1 is supported (DPPO conditions on the current step).
        horizon: Length of the predicted action chunk (DPPO UNet setting: predict 16).
        n_action_steps: Actions of each chunk executed in the environment before re-planning (execute 8).
        use_images: When False the policy ignores image features even if the dataset has them: the
            state-only variant with no image trunk, for the fast RL path. A dataset's
            ``observation.environment_state`` (LIBERO's privileged object state) is always used when present:
            it is what a state-based expert needs to find the objects.
        vision_width: Channels of the first ResNet-18 stage (stages use w, 2w, 4w, 8w). 64 is the standard
            ResNet-18 (11.2 M parameters per camera); the default 32 keeps the per-camera trunk at 2.8 M so
            that two cameras, the denoiser and the critic stay within ~10-15 M parameters.
        share_camera_trunk: Use one trunk for all cameras instead of one per camera.
        pretrained_backbone_weights: torchvision weights name (e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``)
            loaded into each trunk at construction; needs ``vision_width=64`` and network access (or a
            populated torch hub cache). BatchNorm statistics are dropped (GroupNorm keeps the affine terms).
        image_pooling: ``"spatial_softmax"`` (keypoints, as in Diffusion Policy) or ``"avg"`` (global pooling).
        image_resize: Optional (H, W) every image is resized to before the trunk.
        random_shift_pad: Pad of the random-shift augmentation applied in BC training (0 disables it).
        tasks: Task strings known to the task embedding, in slot order (slot 0 is the "no/unknown task"
            embedding). Filled from the dataset's tasks when empty at construction. To add tasks later call
            ``policy.add_tasks([...])`` (it appends here and keeps existing slots), then save the policy.
        max_tasks: Capacity of the task-embedding table (LIBERO has 130 tasks in all).
        critic_encoder: ``"shared"`` (default) feeds the critic the actor encoder's features, detached so value
            loss never moves the actor: one encoder pass per rollout step and ~11 M parameters in all with two
            cameras. ``"separate"`` gives the critic its own encoder, as DPPO does (+5.6 M parameters).
        final_action_clip: Normalised actions returned to the environment are clipped to ±this value.
        min_state_range: Smallest ``max - min`` the processors use to MIN_MAX-normalise a state input
            (``observation.state``, ``observation.environment_state``); narrower entries are widened around
            their centre, so a nearly constant entry of the demos (an object at rest) stays near 0 instead of
            blowing up at the slightest deviation (see ``policies/common/processor.py``). 0 gives lerobot's
            plain MIN_MAX.
        use_ema: Keep an exponential moving average of the actor during BC; inference uses it.
    """

    n_obs_steps: int = 1
    horizon: int = 16
    n_action_steps: int = 8
    drop_n_last_frames: int = 8  # horizon - n_action_steps: chunks that would mostly be padding are skipped

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.MIN_MAX,
            "ACTION": NormalizationMode.MIN_MAX,
            "ENV": NormalizationMode.MIN_MAX,
        }
    )

    # Observation encoder.
    use_images: bool = True
    vision_width: int = 32
    share_camera_trunk: bool = False
    pretrained_backbone_weights: str | None = None
    image_pooling: str = "spatial_softmax"
    spatial_softmax_num_keypoints: int = 32
    image_feature_dim: int = 64
    image_resize: tuple[int, int] | None = None
    random_shift_pad: int = 4
    state_feature_dim: int = 64
    tasks: list[str] = field(default_factory=list)
    max_tasks: int = 160
    task_embedding_dim: int = 64

    # Critic (not trained by BC; saved with the policy).
    critic_encoder: str = "shared"
    critic_hidden_dim: int = 256
    critic_num_blocks: int = 2

    final_action_clip: float = 1.0
    min_state_range: float = 0.05
    mask_loss_for_padding: bool = False

    # EMA of the actor during BC.
    use_ema: bool = True
    ema_decay: float = 0.995

    # Model card bookkeeping (written into README.md on save/push).
    dataset_repo_id: str | None = None
    card_metrics: dict[str, float] = field(default_factory=dict)

    # BC optimisation (DPPO pixel pretraining: lr 1e-4, wd 1e-6, cosine decay).
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-6
    scheduler_name: str = "cosine"
    scheduler_warmup_steps: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.min_state_range >= 0:
            raise ConfigError(f"min_state_range must be >= 0; got {self.min_state_range}.")
        if self.n_obs_steps != 1:
            raise ConfigError(f"n_obs_steps must be 1 for {type(self).__name__}; got {self.n_obs_steps}.")
        if not 1 <= self.n_action_steps <= self.horizon:
            raise ConfigError(
                f"n_action_steps must be in [1, horizon={self.horizon}]; got {self.n_action_steps}."
            )
        if self.image_pooling not in IMAGE_POOLINGS:
            raise ConfigError(f"image_pooling must be one of {IMAGE_POOLINGS}; got {self.image_pooling!r}.")
        if self.critic_encoder not in CRITIC_ENCODERS:
            raise ConfigError(
                f"critic_encoder must be one of {CRITIC_ENCODERS}; got {self.critic_encoder!r}."
            )
        if self.pretrained_backbone_weights is not None and self.vision_width != 64:
            raise ConfigError(
                "pretrained_backbone_weights needs the standard ResNet-18 width: set vision_width=64 "
                f"(got {self.vision_width})."
            )
        if self.vision_width < 8 or not _divisible(self.vision_width, 8):
            raise ConfigError(f"vision_width must be a positive multiple of 8; got {self.vision_width}.")
        if len(self.tasks) >= self.max_tasks:
            raise ConfigError(
                f"{len(self.tasks)} tasks do not fit max_tasks={self.max_tasks} (slot 0 is reserved)."
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError("tasks contains duplicates.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1); got {self.ema_decay}.")

    # --- LeRobot abstract members -------------------------------------------------------------------
    @property
    def observation_delta_indices(self) -> None:
        """Only the current observation (no time axis in batches)."""
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        """A chunk of ``horizon`` actions starting at the current step."""
        return list(range(self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.optimizer_weight_decay,
        )

    def get_scheduler_preset(self) -> DiffuserSchedulerConfig:
        return DiffuserSchedulerConfig(name=self.scheduler_name, num_warmup_steps=self.scheduler_warmup_steps)

    @property
    def used_image_features(self) -> dict:
        """Image features the encoder consumes (none in the state-only variant)."""
        return dict(self.image_features) if self.use_images else {}

    def validate_features(self) -> None:
        """Check that there is an 8-d-like state or a camera to condition on, and a 1-d action feature."""
        action = self.action_feature
        if action is None or len(action.shape) != 1:
            raise ConfigError("An `action` output feature of shape (action_dim,) is required.")
        state = self.robot_state_feature
        if state is not None and len(state.shape) != 1:
            raise ConfigError(f"observation.state must be 1-d; got shape {tuple(state.shape)}.")
        env_state = self.env_state_feature
        if env_state is not None and len(env_state.shape) != 1:
            raise ConfigError(
                f"observation.environment_state must be 1-d; got shape {tuple(env_state.shape)}."
            )
        if state is None and env_state is None and not self.used_image_features:
            raise ConfigError(
                "No input to condition on: provide `observation.state` (and optionally "
                "`observation.environment_state`) and/or camera features (`observation.images.*`, with "
                "use_images=True)."
            )
        for key, ft in self.used_image_features.items():
            if len(ft.shape) != 3 or ft.shape[0] != 3:
                raise ConfigError(f"{key} must be an RGB image feature (3, H, W); got {tuple(ft.shape)}.")
            if ft.type is not FeatureType.VISUAL:
                raise ConfigError(f"{key} is not a VISUAL feature.")
        if self.share_camera_trunk and len({tuple(f.shape) for f in self.used_image_features.values()}) > 1:
            if self.image_resize is None:
                raise ConfigError("share_camera_trunk needs cameras of one shape (or set image_resize).")

    @property
    def action_dim(self) -> int:
        assert self.action_feature is not None
        return int(self.action_feature.shape[0])
