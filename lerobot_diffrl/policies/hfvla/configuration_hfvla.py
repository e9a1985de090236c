"""Configuration of the ``hfvla`` policy type (``--policy.type=hfvla``): any transformers VLM as an OpenVLA-style VLA.

Defaults follow OpenVLA (openvla/openvla ``vla-scripts/finetune.py`` and the paper): the prompt
"What action should the robot take to <task>?", the third-person camera only, no proprioception, one action per
step (no chunking), 256 bins per action dimension on the last 256 ids of the vocabulary, LoRA of rank 32 with
alpha 16 and no dropout on every linear layer (``target_modules="all-linear"``, Gaussian init), AdamW at a constant
learning rate of 5e-4. Action chunking (``chunk_size`` > 1) and the proprioceptive state (``use_state``) are
options in the spirit of OpenVLA-OFT, which uses both.

The module imports no model code, so registering the type is cheap during LeRobot's plugin discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig

from lerobot_diffrl.errors import ConfigError

TORCH_DTYPES = ("float32", "bfloat16", "float16")
CHECKPOINT_WEIGHTS = ("full", "trainable")


@PreTrainedConfig.register_subclass("hfvla")
@dataclass
class HFVLAConfig(PreTrainedConfig):
    """An OpenVLA-style VLA built from a Hugging Face vision-language model.

    Args:
        vlm_path: Base VLM: a local folder or a Hub id loadable with ``AutoModelForImageTextToText`` and
            ``AutoProcessor``, e.g. ``HuggingFaceTB/SmolVLM-256M-Instruct``,
            ``google/paligemma-3b-pt-224``, ``Qwen/Qwen2.5-VL-3B-Instruct``. Only read when a new policy is built
            (and when a ``checkpoint_weights="trainable"`` checkpoint is loaded); saved checkpoints carry the VLM's
            config and processor themselves.
        vlm_revision: Hub revision (branch, tag or commit) of ``vlm_path``.
        torch_dtype: dtype the VLM weights are loaded in. ``bfloat16`` halves memory on GPUs (OpenVLA fine-tunes
            in bfloat16); keep ``float32`` on CPU, or use fp32 weights with ``accelerate launch
            --mixed_precision=bf16``.
        attn_implementation: Passed to transformers (``sdpa``, ``flash_attention_2``, ``eager``); None lets
            transformers choose.
        trust_remote_code: Allow a Hub model's own Python code. Needed by no supported model; see the README for
            why OpenVLA-7B's remote code is refused.
        gradient_checkpointing: Recompute activations in backward (less memory, about 30 percent slower).
        image_keys: Cameras given to the VLM, in this order, one image each (OpenVLA: the third-person view
            only; OpenVLA-OFT adds the wrist camera ``observation.images.image2``). Unset (None), the first
            camera of the dataset or environment is used, whatever its name: ``observation.images.image`` on
            LIBERO (the third-person view, as OpenVLA), ``observation.images.laptop`` on an SO-100 dataset with
            ``laptop`` and ``phone`` cameras. The policy writes the resolved list here, so a checkpoint names
            its cameras.
        use_state: Append the quantile-normalised ``observation.state``, discretised into ``n_action_bins`` bins,
            to the prompt as plain numbers ("State: 12 200 ..."), as pi0-FAST does. Off by default (OpenVLA
            does not use proprioception).
        prompt_template: The question; ``{task}`` is replaced by the lower-cased task string.
        image_processor_overrides: Attributes set on the VLM's image processor when a new policy is built (saved
            with the checkpoint), e.g. ``--policy.image_processor_overrides='{do_image_splitting: false, size:
            {longest_edge: 512}}'`` so that SmolVLM encodes a 256-pixel LIBERO frame as one 512-pixel tile (64 tokens) instead of
            upscaling it to 2048 pixels and splitting it into 17 tiles (1088 tokens).
        use_chat_template: Wrap the question (and one image placeholder per camera) in the processor's chat
            template with a generation prompt when the processor has one (SmolVLM, Qwen2.5-VL). Otherwise, or
            when False, OpenVLA's plain "In: <question>\\nOut:" format is used (PaliGemma has no template).
        chunk_size: Actions predicted per inference call; each is ``action_dim`` tokens (OpenVLA: 1).
        n_action_steps: Actions of each chunk executed before the next call (1 .. chunk_size).
        n_action_bins: Uniform bins per normalised action dimension (OpenVLA: 256).
        action_token_skip: Leave this many ids at the very end of the base vocabulary unused before the
            ``n_action_bins`` action ids (0 as OpenVLA; 128 skips PaliGemma's ``<seg>`` tokens as openpi does).
        use_lora: Train LoRA adapters (peft) instead of the full model.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale and dropout (OpenVLA: 32, min(r, 16), 0).
        lora_target_modules: ``all-linear`` (every linear layer except the output head, as OpenVLA) or a
            comma-separated list of module-name suffixes (e.g. ``q_proj,k_proj,v_proj,o_proj``).
        freeze_vision: Keep the vision encoder and the vision-to-text projector fixed: no adapters there with
            LoRA, frozen weights without LoRA.
        checkpoint_weights: ``full`` saves every weight (self-contained checkpoint that loads without the base
            model, bit-exact; as large as the VLM). ``trainable`` saves only trainable tensors (LoRA adapters,
            or the unfrozen part) and rebuilds the rest from ``vlm_path`` when loading, which must then be the
            same base model (a few MB for LoRA instead of GBs).
        optimizer_lr: AdamW learning rate; None picks 5e-4 with LoRA (OpenVLA fine-tuning) and 2e-5 for full
            fine-tuning (OpenVLA's full-model training rate). Constant: no scheduler.
        trained_action_dim: Set when the policy is first built; a dataset or environment with another action
            dimension is then refused.
    """

    n_obs_steps: int = 1
    chunk_size: int = 1
    n_action_steps: int = 1

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.QUANTILES,
            "ACTION": NormalizationMode.QUANTILES,
        }
    )

    # Base model.
    vlm_path: str = "HuggingFaceTB/SmolVLM-256M-Instruct"
    vlm_revision: str | None = None
    torch_dtype: str = "float32"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False

    # Inputs and prompt.
    image_keys: list[str] | None = None
    use_state: bool = False
    prompt_template: str = "What action should the robot take to {task}?"
    image_processor_overrides: dict[str, Any] = field(default_factory=dict)
    use_chat_template: bool = True

    # Action tokens.
    n_action_bins: int = 256
    action_token_skip: int = 0

    # Fine-tuning.
    use_lora: bool = True
    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    freeze_vision: bool = False
    checkpoint_weights: str = "full"

    optimizer_lr: float | None = None
    optimizer_betas: tuple[float, float] = (0.9, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 0.01
    optimizer_grad_clip_norm: float = 1.0

    # Bookkeeping written by the policy.
    trained_action_dim: int | None = None
    dataset_repo_id: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_obs_steps != 1:
            raise ConfigError(f"n_obs_steps must be 1 for hfvla; got {self.n_obs_steps}.")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1; got {self.chunk_size}.")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ConfigError(
                f"n_action_steps must be in [1, chunk_size={self.chunk_size}]; got {self.n_action_steps}."
            )
        if self.torch_dtype not in TORCH_DTYPES:
            raise ConfigError(f"torch_dtype must be one of {TORCH_DTYPES}; got {self.torch_dtype!r}.")
        if self.checkpoint_weights not in CHECKPOINT_WEIGHTS:
            raise ConfigError(
                f"checkpoint_weights must be one of {CHECKPOINT_WEIGHTS}; got {self.checkpoint_weights!r}."
            )
        if self.image_keys is not None and not self.image_keys:
            raise ConfigError(
                "image_keys must name at least one camera, e.g. [observation.images.image], or be unset to use "
                "the dataset's first camera."
            )
        if self.image_keys is not None and len(set(self.image_keys)) != len(self.image_keys):
            raise ConfigError(f"image_keys has duplicates: {self.image_keys}.")
        if "{task}" not in self.prompt_template:
            raise ConfigError("prompt_template must contain {task}.")
        if self.n_action_bins < 2 or self.action_token_skip < 0:
            raise ConfigError("n_action_bins must be at least 2 and action_token_skip at least 0.")
        if self.use_lora and (self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1):
            raise ConfigError("LoRA needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1.")
        if not isinstance(self.image_processor_overrides, dict):
            raise ConfigError("image_processor_overrides must be a mapping of attribute: value pairs.")
        if self.optimizer_lr is not None and self.optimizer_lr <= 0:
            raise ConfigError(f"optimizer_lr must be positive; got {self.optimizer_lr}.")

    # --- LeRobot abstract members -------------------------------------------------------------------
    @property
    def observation_delta_indices(self) -> None:
        """The current observation only."""
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        """The chunk of ``chunk_size`` actions that starts at the current step."""
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None

    @property
    def learning_rate(self) -> float:
        """``optimizer_lr``, or OpenVLA's rate for the chosen fine-tuning mode."""
        if self.optimizer_lr is not None:
            return self.optimizer_lr
        return 5e-4 if self.use_lora else 2e-5

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.learning_rate,
            betas=self.optimizer_betas,
            eps=self.optimizer_eps,
            weight_decay=self.optimizer_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> None:
        """Constant learning rate, as OpenVLA's fine-tuning script."""
        return None

    @property
    def action_dim(self) -> int:
        assert self.action_feature is not None
        return int(self.action_feature.shape[0])

    @property
    def tokens_per_step(self) -> int:
        """Action tokens generated per inference call (action_dim x chunk_size)."""
        return self.action_dim * self.chunk_size

    @property
    def cameras(self) -> list[str]:
        """The ``VISUAL`` input features, in the dataset's (or environment's) order."""
        return [k for k, ft in self.input_features.items() if ft.type is FeatureType.VISUAL]

    @property
    def used_image_keys(self) -> list[str]:
        """``image_keys``, or (unset) the first camera of the features: what the policy will read."""
        if self.image_keys is not None:
            return list(self.image_keys)
        return self.cameras[:1]

    def validate_features(self) -> None:
        """The dataset (or environment) must offer a 1-d ``action`` and every camera in ``image_keys``; unset
        ``image_keys`` becomes the first camera it offers."""
        if self.image_keys is None:
            if not self.cameras:
                raise ConfigError("hfvla needs at least one camera but the dataset/environment has none.")
            self.image_keys = self.used_image_keys
        action = self.action_feature
        if action is None or len(action.shape) != 1:
            shape = None if action is None else tuple(action.shape)
            raise ConfigError(f"hfvla needs an `action` feature of shape (action_dim,); got {shape}.")
        if self.trained_action_dim is not None and int(action.shape[0]) != self.trained_action_dim:
            raise ConfigError(
                f"this hfvla policy predicts {self.trained_action_dim}-d actions but the dataset/environment "
                f"has {int(action.shape[0])}-d `action`."
            )
        cameras = sorted(self.cameras)
        missing = [k for k in self.image_keys if k not in cameras]
        if missing:
            raise ConfigError(
                f"hfvla needs camera(s) {', '.join(missing)} but the dataset/environment has "
                f"{', '.join(cameras) or 'no cameras'}; set --policy.image_keys."
            )
        for key in self.image_keys:
            shape = tuple(self.input_features[key].shape)
            if len(shape) != 3 or shape[0] != 3:
                raise ConfigError(f"{key} must be an RGB image feature (3, H, W); got {shape}.")
        if self.use_state:
            state = self.robot_state_feature
            if state is None or len(state.shape) != 1:
                raise ConfigError(
                    "use_state=True needs a 1-d `observation.state` feature; the dataset/environment has "
                    f"{'none' if state is None else tuple(state.shape)}."
                )
