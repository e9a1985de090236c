"""The feature spec of generated datasets: lerobot's LIBERO conventions, so VLA recipes need no rename map.

``lerobot-train --policy.type=pi0|pi05|smolvla|diffrl`` and ``lerobot-eval --env.type=libero|diffrl_env`` all
speak these keys: two cameras ``observation.images.image`` (agent view) and ``observation.images.image2``
(wrist view) stored as video, upright (rotated 180 degrees from robosuite's render, as ``lerobot/libero`` and
``LiberoProcessorStep`` have them); the 8-d ``observation.state`` (eef position, eef axis-angle, two gripper
joints; the pool's ``agent_pos``); the 7-d delta ``action`` in [-1, 1]; the language instruction as ``task``;
20 fps (LIBERO's control rate). RL columns follow lerobot's names (``next.reward``, ``next.done``, and
``next.success`` as ``lerobot-eval`` records it); ``next.success`` is always present, so datasets generated in
"keep successes" and "keep all" modes share one schema and can be merged.

Default resolution: 256x256, the resolution of ``lerobot/libero`` / ``HuggingFaceVLA/libero``, so recipes and
evaluation settings written for those datasets carry over.

Optional ``observation.environment_state`` (``lerobot-diffrl-generate --record_env_state=true``): robosuite's
privileged ``object-state`` vector (per movable object of the scene, in BDDL order: position 3, xyzw
quaternion 4, position relative to the end effector 3, quaternion relative to the end effector 4), float32,
cut or zero-padded to one width for every task of the dataset. It is exactly what
:func:`~lerobot_diffrl.envs.lerobot_batch.lerobot_batch` feeds a policy whose
``observation.environment_state`` feature has that width (``lerobot-diffrl-rl --env.obs_mode=state``), so a
state-based expert BC-trained on such a dataset sees the same vector in RL. Off by default: VLA datasets keep
lerobot's LIBERO schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lerobot_diffrl.envs.lerobot_batch import IMAGE_KEYS, OBS_ENV_STATE, OBS_STATE
from lerobot_diffrl.envs.suites import CONTROL_FPS, TaskSpec
from lerobot_diffrl.errors import DatasetError

FPS = CONTROL_FPS
DEFAULT_IMAGE_SIZE = 256
#: LIBERO's robot (lerobot writes ``robot_type`` into ``meta/info.json``).
ROBOT_TYPE = "panda"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_axis_angle_x", "eef_axis_angle_y", "eef_axis_angle_z",
               "gripper_left", "gripper_right"]  # fmt: skip
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
#: Per-frame scalar columns, (1,)-shaped as lerobot's datasets store them.
SCALAR_KEYS = (REWARD, DONE, SUCCESS)
#: Fields of one object in robosuite's ``object-state`` (LIBERO's ``_create_obj_sensors``), in order.
OBJECT_STATE_FIELDS: tuple[tuple[str, int], ...] = (("pos", 3), ("quat_xyzw", 4), ("pos_to_eef", 3),
                                                     ("quat_to_eef", 4))  # fmt: skip
OBJECT_STATE_STRIDE = sum(n for _, n in OBJECT_STATE_FIELDS)


def dataset_features(
    image_size: tuple[int, int] | int = DEFAULT_IMAGE_SIZE, env_state_dim: int | None = None
) -> dict[str, dict[str, Any]]:
    """LeRobot feature dict (without lerobot's default index columns) of a generated dataset; with
    ``env_state_dim``, plus ``observation.environment_state`` of that width."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    video = {"dtype": "video", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
    features: dict[str, dict[str, Any]] = {key: dict(video) for key in IMAGE_KEYS}
    features[OBS_STATE] = {"dtype": "float32", "shape": (8,), "names": list(STATE_NAMES)}
    if env_state_dim is not None:
        features[OBS_ENV_STATE] = {"dtype": "float32", "shape": (int(env_state_dim),), "names": None}
    features[ACTION] = {"dtype": "float32", "shape": (7,), "names": list(ACTION_NAMES)}
    features[REWARD] = {"dtype": "float32", "shape": (1,), "names": None}
    features[DONE] = {"dtype": "bool", "shape": (1,), "names": None}
    features[SUCCESS] = {"dtype": "bool", "shape": (1,), "names": None}
    return features


def video_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "video"]


def env_state_dim_of(features: dict[str, dict[str, Any]]) -> int | None:
    """Width of ``observation.environment_state`` in a feature dict, or None when it is not recorded."""
    ft = features.get(OBS_ENV_STATE)
    return int(tuple(ft["shape"])[0]) if ft is not None else None


def env_state_rows(object_state: np.ndarray, dim: int) -> np.ndarray:
    """The pool's zero-padded ``object_state`` rows (n, 256) cut or zero-padded to ``dim`` float32 values:
    the convention of :func:`~lerobot_diffrl.envs.lerobot_batch.lerobot_batch` (a test checks they agree)."""
    values = np.asarray(object_state, dtype=np.float32)
    values = values.reshape(1, -1) if values.ndim == 1 else values
    out = np.zeros((values.shape[0], dim), dtype=np.float32)
    width = min(dim, values.shape[1])
    out[:, :width] = values[:, :width]
    return out


def task_objects(spec: TaskSpec) -> list[str]:
    """Movable objects of a LIBERO task in ``object-state`` order, from its BDDL file (no simulator).

    LIBERO fills ``objects_dict`` from the parsed problem's ``:objects`` (category by category, names in
    order) and robosuite concatenates one sensor group per object in that order, so the task's object-state
    has :data:`OBJECT_STATE_STRIDE` values per name here. ``prepare_libero`` must have run in the process.
    """
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    parsed = robosuite_parse_problem(str(spec.bddl_file))
    return list(dict.fromkeys(name for names in parsed["objects"].values() for name in names))


def env_state_layout(specs: Iterable[TaskSpec]) -> dict[str, dict[str, Any]]:
    """Per task ``suite/id``: its real object-state length and the object behind each block of
    :data:`OBJECT_STATE_STRIDE` values (what the provenance records)."""
    out = {}
    for spec in specs:
        names = task_objects(spec)
        out[f"{spec.suite}/{spec.task_id}"] = {"length": OBJECT_STATE_STRIDE * len(names), "objects": names}
    return out


def _essential(ft: dict[str, Any]) -> tuple:
    """What must agree between two datasets for their frames to mean the same thing."""
    info = ft.get("info") or {}
    return (ft["dtype"], tuple(ft["shape"]), info.get("video.codec"), info.get("video.pix_fmt"))


def check_same_features(a: dict[str, dict], b: dict[str, dict], a_name: str, b_name: str) -> None:
    """Raise :class:`DatasetError` naming the first difference between two datasets' feature dicts."""
    dims = env_state_dim_of(a), env_state_dim_of(b)
    if dims[0] != dims[1]:
        has = [
            f"{name} {'has ' + str(d) + '-d' if d else 'has no'} {OBS_ENV_STATE}"
            for name, d in zip((a_name, b_name), dims, strict=True)
        ]
        raise DatasetError(
            f"cannot mix datasets with and without the same object state: {'; '.join(has)}. Generate them "
            "with the same --record_env_state and --env_state_dim"
        )
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if missing or extra:
        raise DatasetError(
            f"features of {b_name} differ from {a_name}: "
            + "; ".join(
                p for p in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if p
            )
        )
    for key in a:
        if _essential(a[key]) != _essential(b[key]):
            raise DatasetError(
                f"feature {key!r} differs: {a_name} has {_essential(a[key])}, {b_name} has {_essential(b[key])} "
                "(dtype, shape, video codec, pixel format)"
            )
