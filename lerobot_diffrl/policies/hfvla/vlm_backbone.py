"""The VLM inside an ``hfvla`` policy: find it, load it with transformers' auto classes, make the right part trainable.

Any checkpoint that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load is accepted: Idefics3/SmolVLM,
PaliGemma, Qwen2-VL/Qwen2.5-VL, LLaVA, Gemma 3 and so on (a remote-code ``auto_map`` that still names transformers
4's removed ``AutoModelForVision2Seq`` counts too). A Hub id is resolved to a local snapshot first (only the files a
model needs: configs, safetensors weights, tokenizer and template files), so that "not downloaded and no network" is
detected once, up front, with a message that names the fix, instead of surfacing as a transformers ``OSError``
halfway through building the policy.

OpenVLA's own checkpoints (``model_type`` "openvla") are refused here with a pointer to the README: they are
Prismatic models whose remote code needs transformers 4.40.1 / timm 0.9.x and does not run correctly on the
transformers this project pins (see the README section "Starting from OpenVLA-7B").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from torch import nn

from lerobot_diffrl.errors import CheckpointError, ConfigError

#: Files fetched from the Hub for a base VLM (no ONNX/GGUF exports, no duplicate PyTorch .bin weights).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]

#: Attribute names under which transformers' VLMs keep the vision encoder and the vision-to-text projector.
VISION_MODULE_NAMES = ("vision_model", "vision_tower", "visual", "connector", "multi_modal_projector")

#: Model types that load with remote code only and that hfvla refuses, with the reason shown to the user.
REFUSED_MODEL_TYPES = {
    "openvla": (
        "is an OpenVLA (Prismatic) checkpoint: its remote code pins transformers==4.40.1 and timm 0.9.x and "
        "does not run correctly on this project's transformers; fine-tune it with OpenVLA's own scripts in a "
        "separate environment, or start hfvla from a transformers-native VLM (README: Starting from OpenVLA-7B)"
    ),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_vlm(path_or_id: str, revision: str | None = None) -> Path:
    """Local folder holding the VLM ``path_or_id`` (a folder, or a Hub id resolved through the cache).

    Raises ``CheckpointError`` when the folder does not exist or the Hub model is neither cached nor downloadable
    (offline, missing, gated), ``ConfigError`` when the folder is not a transformers model.
    """
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a transformers model folder: config.json is missing.")
        return path
    if str(path_or_id).startswith(("/", "./", "../", "~")) or path.exists():
        raise CheckpointError(f"base model folder {path} does not exist.")
    try:
        folder = snapshot_download(path_or_id, revision=revision, allow_patterns=HUB_PATTERNS)
    except LocalEntryNotFoundError as err:
        raise CheckpointError(
            f"base model {path_or_id} is not available offline; download it first with "
            f"hf download {path_or_id}"
        ) from err
    except GatedRepoError as err:
        raise CheckpointError(
            f"base model {path_or_id} is gated on the Hub: accept its licence on huggingface.co and log in "
            "(hf auth login)."
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise CheckpointError(
            f"base model {path_or_id} (revision {revision or 'main'}) is not on the Hub."
        ) from err
    except HFValidationError as err:
        raise ConfigError(f"vlm_path {path_or_id!r} is neither a folder nor a Hub model id.") from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"cannot download base model {path_or_id}: {err}") from err
    folder_path = Path(folder)
    if not (folder_path / "config.json").is_file():
        raise ConfigError(f"Hub repo {path_or_id} is not a transformers model: config.json is missing.")
    return folder_path


#: The auto class transformers 4.x had for these models; remote-code checkpoints written then still name it.
LEGACY_AUTO_NAME = "AutoModelForVision2Seq"


def _auto_model_class(config: Any) -> type:
    """``AutoModelForImageTextToText``, the auto class of image-text-to-text models in transformers 5.

    transformers 5 removed ``AutoModelForVision2Seq``; every native model it held is registered with
    ``AutoModelForImageTextToText``. A remote-code checkpoint whose ``auto_map`` still names only the removed class
    is mapped to the new one here, so it loads as it did on transformers 4 (and, as then, only with
    ``trust_remote_code``: transformers' own check still applies).
    """
    from transformers import AutoModelForImageTextToText as auto

    if type(config) in auto._model_mapping:
        return auto
    auto_map = getattr(config, "auto_map", None) or {}
    if auto.__name__ not in auto_map and LEGACY_AUTO_NAME in auto_map:
        config.auto_map = {**auto_map, auto.__name__: auto_map[LEGACY_AUTO_NAME]}
        auto_map = config.auto_map
    if auto.__name__ in auto_map:
        return auto
    raise ConfigError(
        f"a {config.model_type!r} model is not a vision-language model transformers can load for "
        "image-text-to-text generation (AutoModelForImageTextToText)."
    )


def load_vlm_config(folder: Path, trust_remote_code: bool = False) -> Any:
    """The transformers config of the VLM in ``folder``; refuses OpenVLA checkpoints (see module docstring)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ValueError as err:  # unknown model_type, or remote code not trusted
        model_type = model_type_in(folder)
        if model_type in REFUSED_MODEL_TYPES:
            raise ConfigError(f"{folder} {REFUSED_MODEL_TYPES[model_type]}.") from err
        raise ConfigError(f"cannot read the model config in {folder}: {err}") from err
    if config.model_type in REFUSED_MODEL_TYPES:
        raise ConfigError(f"{folder} {REFUSED_MODEL_TYPES[config.model_type]}.")
    return config


def model_type_in(folder: Path) -> str | None:
    """``model_type`` of the transformers ``config.json`` in ``folder``, read without transformers (None if
    unreadable): it names a model whose config class transformers cannot load."""
    import json

    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def load_vlm(
    folder: Path,
    *,
    torch_dtype: str = "float32",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    weights: bool = True,
) -> nn.Module:
    """The VLM of ``folder``: pretrained weights, or (``weights=False``) a random skeleton of the same architecture
    whose weights a policy checkpoint then overwrites."""
    config = load_vlm_config(folder, trust_remote_code)
    auto = _auto_model_class(config)
    kwargs: dict[str, Any] = {"dtype": DTYPES[torch_dtype], "trust_remote_code": trust_remote_code}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        if weights:
            model = auto.from_pretrained(folder, config=config, **kwargs)
        else:
            model = auto.from_config(config, **kwargs)
    except OSError as err:
        raise CheckpointError(f"cannot load the VLM weights in {folder}: {err}") from err
    return model


def load_processor(folder: Path, trust_remote_code: bool = False) -> Any:
    """The VLM's multimodal processor (tokenizer + image processor), left-padding, so that prompts of one batch
    end at the same position and action tokens can be appended after them."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot load the processor (tokenizer, image processor) in {folder}: {err}"
        ) from err
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise ConfigError(
            f"{folder} has no multimodal processor (AutoProcessor gave {type(processor).__name__}); hfvla needs "
            "a vision-language model with a tokenizer and an image processor."
        )
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token_id is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def apply_image_processor_overrides(processor: Any, overrides: dict[str, Any]) -> None:
    """Set attributes of the processor's image processor (e.g. SmolVLM's ``do_image_splitting``); an attribute the
    image processor does not have is a ``ConfigError`` rather than a silently ignored setting."""
    image_processor = processor.image_processor
    for key, value in overrides.items():
        if not hasattr(image_processor, key):
            raise ConfigError(
                f"image_processor_overrides: {type(image_processor).__name__} has no attribute {key!r}."
            )
        setattr(image_processor, key, value)


def vision_module_names(model: nn.Module) -> list[str]:
    """Qualified names of the vision encoder and projector modules (outermost matches only)."""
    names: list[str] = []
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in VISION_MODULE_NAMES and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    return names


def make_trainable(
    model: nn.Module,
    *,
    use_lora: bool,
    freeze_vision: bool,
    lora_r: int = 32,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_target_modules: str = "all-linear",
) -> nn.Module:
    """Apply the fine-tuning mode; returns the model to train (a ``peft.PeftModel`` with LoRA).

    * LoRA (OpenVLA): every base weight frozen, rank-``lora_r`` adapters on the target linear layers (Gaussian
      init, as OpenVLA); with ``freeze_vision`` none in the vision encoder or projector.
    * Full fine-tuning: everything trains, except the vision encoder and projector with ``freeze_vision``.
    """
    vision = vision_module_names(model)
    if freeze_vision and not vision:
        raise ConfigError(
            f"freeze_vision: no vision module ({', '.join(VISION_MODULE_NAMES)}) found in {type(model).__name__}."
        )
    if not use_lora:
        model.requires_grad_(True)
        if freeze_vision:
            for name in vision:
                model.get_submodule(name).requires_grad_(False)
        return model

    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = lora_target_modules
    if lora_target_modules != "all-linear":
        targets = [t.strip() for t in lora_target_modules.split(",") if t.strip()]
    exclude = None
    if freeze_vision:
        alternatives = "|".join(VISION_MODULE_NAMES)
        exclude = rf"(.*\.)?({alternatives})(\..*)?"
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=targets,
        exclude_modules=exclude,
        init_lora_weights="gaussian",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as err:  # no module matched the targets
        raise ConfigError(
            f"LoRA cannot be applied with lora_target_modules={lora_target_modules!r}: {err}"
        ) from err
