"""Checks run before a VLA training or evaluation starts, so bad input costs seconds and one clear line.

Without them, lerobot 0.6.1 reports the same mistakes late and obscurely: a base model missing offline surfaces
as a Hub traceback after the dataset is loaded; a dataset whose state is wider than the model's padding fails
inside the first forward pass; pi0/pi05's gated PaliGemma tokenizer, missing offline, fails only after a
4-billion-parameter model has been allocated. Each check raises a :mod:`lerobot_diffrl.errors` error whose message
names the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lerobot_diffrl.errors import CheckpointError, ConfigError, DatasetError
from lerobot_diffrl.hub import hub_offline

#: lerobot's pi policy types, and the tokenizer id their processors hard-code (``processor_pi0.py:141``).
PI_TYPES = ("pi0", "pi05")
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"
#: Where ``PolicyProcessorPipeline.save_pretrained`` writes a policy's preprocessor config.
PREPROCESSOR_FILE = "policy_preprocessor.json"
#: What the LIBERO env (``diffrl_env`` and lerobot's ``libero``) feeds a policy after ``LiberoProcessorStep``.
LIBERO_CAMERAS = ("observation.images.image", "observation.images.image2")
LIBERO_STATE_DIM = 8
LIBERO_ACTION_DIM = 7


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~", "/"))


def resolve_pretrained(path_or_id: str | os.PathLike, what: str = "checkpoint") -> Path:
    """The local folder of a ``save_pretrained`` checkpoint given as a path or a Hub repo id.

    A Hub id resolves through the Hugging Face cache; offline (``HF_HUB_OFFLINE=1``) an uncached id is an error,
    online only its ``config.json`` is fetched here (the weights are left to lerobot).
    """
    name = str(path_or_id)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"{what} {path} has no config.json: expected a folder written by save_pretrained, such as "
                "<run>/checkpoints/last/pretrained_model"
            )
        return path
    if path.exists():
        raise CheckpointError(f"{what} {path} is a file, not a checkpoint folder")
    if not _looks_like_repo_id(name):
        raise CheckpointError(f"{what} not found: {path} does not exist")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent
    if hub_offline():
        raise CheckpointError(
            f"{what} {name!r} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
            f"download it first (hf download {name}) or pass a local path"
        )
    try:
        return Path(hf_hub_download(name, "config.json")).parent
    except Exception as err:  # network, auth, missing repo: all mean "cannot get this model"
        raise CheckpointError(f"{what} {name!r} could not be fetched from the Hub: {err}") from err


def read_policy_config(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict (``type``, ``input_features``, ``n_action_steps``, ...)."""
    try:
        config = json.loads((Path(checkpoint) / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {checkpoint}/config.json: {err}") from err
    if not isinstance(config, dict) or "type" not in config:
        raise CheckpointError(f"{checkpoint}/config.json is not a LeRobot policy config (no 'type')")
    return config


def _features_of(config: dict[str, Any], kind: str) -> dict[str, list[int]]:
    return {
        key: list(feat.get("shape", []))
        for key, feat in (config.get("input_features") or {}).items()
        if feat.get("type") == kind
    }


def libero_camera_shape(config: dict[str, Any], checkpoint: Path) -> tuple[int, int] | None:
    """(H, W) of the checkpoint's cameras after checking it can run on LIBERO; ``None`` if it declares none.

    Raises :class:`ConfigError` when the policy expects cameras, a state or an action the LIBERO env does not
    provide (the env gives ``observation.images.image`` and ``.image2``, an 8-d state, takes a 7-d action).
    """
    cameras = {k: v for k, v in _features_of(config, "VISUAL").items() if "empty_camera" not in k}
    unknown = sorted(set(cameras) - set(LIBERO_CAMERAS))
    if unknown:
        raise ConfigError(
            f"policy {checkpoint} expects cameras {unknown}; LIBERO provides {', '.join(LIBERO_CAMERAS)} "
            "(agentview and wrist): train on a dataset with LeRobot's LIBERO keys"
        )
    state = _features_of(config, "STATE").get("observation.state")
    if state is not None and state != [LIBERO_STATE_DIM]:
        raise ConfigError(
            f"policy {checkpoint} expects observation.state of shape {state}; LIBERO's is ({LIBERO_STATE_DIM},)"
        )
    action = (config.get("output_features") or {}).get("action", {}).get("shape")
    if action is not None and list(action) != [LIBERO_ACTION_DIM]:
        raise ConfigError(
            f"policy {checkpoint} outputs actions of shape {action}; LIBERO takes ({LIBERO_ACTION_DIM},)"
        )
    shapes = {tuple(shape) for shape in cameras.values()}
    if not shapes:
        return None
    if len(shapes) > 1:
        raise ConfigError(
            f"policy {checkpoint} has cameras of different shapes {sorted(shapes)}; LIBERO renders one size"
        )
    shape = shapes.pop()
    if len(shape) != 3 or shape[0] != 3:
        raise ConfigError(f"policy {checkpoint} has camera shape {list(shape)}; expected (3, H, W)")
    return int(shape[1]), int(shape[2])


def pi_tokenizer_name(base: Path | None) -> str:
    """The tokenizer a pi0/pi05 run will load: the one the base model's saved preprocessor names, else the id
    lerobot's ``make_pi0_pre_post_processors``/``make_pi05_pre_post_processors`` hard-code."""
    if base is not None and (base / PREPROCESSOR_FILE).is_file():
        try:
            steps = json.loads((base / PREPROCESSOR_FILE).read_text()).get("steps", [])
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"cannot read {base / PREPROCESSOR_FILE}: {err}") from err
        for step in steps:
            name = (step.get("config") or {}).get("tokenizer_name")
            if step.get("registry_name") == "tokenizer_processor" and name:
                return str(name)
    return PALIGEMMA_TOKENIZER


def check_pi(policy: Any, base: Path | None) -> None:
    """pi0/pi05: the prompt tokenizer must be reachable; lerobot would otherwise fail offline on the (gated)
    PaliGemma tokenizer with a Hub traceback, after loading the dataset and allocating the model."""
    if policy.type not in PI_TYPES:
        return
    name = pi_tokenizer_name(base)
    path = Path(name).expanduser()
    if path.is_dir() or not _looks_like_repo_id(name):
        if not (path / "tokenizer_config.json").is_file():
            raise CheckpointError(
                f"{policy.type} tokenizer folder {path} (named by {base}) has no tokenizer_config.json"
            )
        return
    from huggingface_hub import try_to_load_from_cache

    if hub_offline() and not isinstance(try_to_load_from_cache(name, "tokenizer_config.json"), str):
        raise CheckpointError(
            f"{policy.type} tokenizes prompts with {name!r}, which is not in the Hugging Face cache, and "
            f"HF_HUB_OFFLINE is set: download it first (hf download {name}; it is gated: accept its "
            "licence on the Hub)"
        )


def check_dataset(repo_id: str, root: str | os.PathLike | None) -> Any:
    """The dataset's ``LeRobotDatasetMetadata``; a clear error when it is missing or not a finalized v3 dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.utils.constants import HF_LEROBOT_HOME

    local = Path(root).expanduser() if root else HF_LEROBOT_HOME / repo_id
    if root and not local.is_dir():
        raise DatasetError(f"dataset root {local} does not exist")
    if not (local / "meta" / "info.json").is_file():
        if root or hub_offline():
            raise DatasetError(
                f"dataset {repo_id!r} not found at {local} (no meta/info.json)"
                + (
                    " and HF_HUB_OFFLINE is set: download it first or pass --dataset.root"
                    if hub_offline()
                    else ""
                )
            )
    try:
        return LeRobotDatasetMetadata(repo_id, root=root)
    except Exception as err:  # lerobot raises several types for missing, partial or old-format datasets
        raise DatasetError(f"cannot open dataset {repo_id!r} ({local}): {err}") from err


def check_dataset_fits_policy(
    features: dict[str, dict[str, Any]],
    policy: Any,
    dataset_name: str,
    rename_map: dict[str, str] | None = None,
) -> None:
    """Raise :class:`DatasetError` when the dataset cannot feed ``policy`` (a PreTrainedConfig).

    Checks: an ``action``, at least one camera, ``observation.state`` (when the policy reads one), dims within the
    policy's ``max_state_dim``/``max_action_dim`` padding, and, when the policy config already declares cameras
    (a ``--policy.path`` config), lerobot's own rule that one camera set contains the other.
    """
    rename_map = rename_map or {}
    feats = {rename_map.get(k, k): v for k, v in features.items()}
    cameras = {k for k, v in feats.items() if v.get("dtype") in ("image", "video")}
    problems = []
    if "action" not in feats:
        problems.append("it has no 'action' feature")
    if not cameras:
        problems.append(
            f"it has no camera (image or video feature); {policy.type} is a vision-language-action model"
        )
    max_state = getattr(policy, "max_state_dim", None)
    max_action = getattr(policy, "max_action_dim", None)
    state = feats.get("observation.state")
    if state is None and policy.type in ("pi0", "pi05", "smolvla"):
        problems.append("it has no 'observation.state'")
    if state is not None and max_state is not None and int(state["shape"][0]) > max_state:
        problems.append(
            f"observation.state has {state['shape'][0]} values but {policy.type} pads state to "
            f"max_state_dim={max_state}"
        )
    action = feats.get("action")
    if action is not None and max_action is not None and int(action["shape"][0]) > max_action:
        problems.append(
            f"action has {action['shape'][0]} values but {policy.type} pads actions to max_action_dim={max_action}"
        )
    expected = {
        k for k, v in (policy.input_features or {}).items() if getattr(v.type, "name", v.type) == "VISUAL"
    }
    expected = {k for k in expected if "empty_camera" not in k}
    if expected and cameras and not (expected <= cameras or cameras <= expected):
        problems.append(
            f"its cameras {sorted(cameras)} do not match the model's {sorted(expected)} (use --rename_map)"
        )
    if problems:
        raise DatasetError(
            f"dataset {dataset_name} does not fit the {policy.type} model: " + "; ".join(problems)
        )


def check_vlm(vlm_model_name: str) -> None:
    """SmolVLA's backbone (config, tokenizer, processor) must be loadable: a local folder, cached, or online."""
    path = Path(vlm_model_name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"VLM folder {path} has no config.json")
        return
    if not _looks_like_repo_id(vlm_model_name):
        raise CheckpointError(f"VLM backbone not found: {path} does not exist")
    from huggingface_hub import try_to_load_from_cache

    if hub_offline() and not isinstance(try_to_load_from_cache(vlm_model_name, "config.json"), str):
        raise CheckpointError(
            f"VLM backbone {vlm_model_name!r} (policy.vlm_model_name) is not in the Hugging Face cache and "
            f"HF_HUB_OFFLINE is set: download it first (hf download {vlm_model_name})"
        )
