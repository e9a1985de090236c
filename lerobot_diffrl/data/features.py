"""The feature spec of generated datasets: lerobot's LIBERO conventions, so VLA recipes need no rename map.

``lerobot-train --policy.type=pi0|pi05|smolvla|diffrl`` and ``lerobot-eval --env.type=libero|diffrl_env`` all
speak these keys: two cameras ``observation.images.image`` (agent view) and ``observation.images.image2``
(wrist view) stored as video, upright (rotated 180 degrees from robosuite's render, as ``lerobot/libero`` and
``LiberoProcessorStep`` have them); the 8-d ``observation.state`` (eef position, eef axis-angle, two gripper
joints; the pool's ``agent_pos``); the 7-d delta ``action`` in [-1, 1]; the language instruction as ``task``;
20 fps (LIBERO's control rate). RL columns follow lerobot's names (``next.reward``, ``next.done``, and
``next.success`` as ``lerobot-eval`` records it); ``next.success`` is always present, so datasets generated in
"keep successes" and "keep all" modes share one schema and can be merged.

Default resolution: 256x256, the resolution of ``lerobot/libero`` / ``HuggingFaceVLA/libero`` and of lerobot
0.4.4's own LIBERO env, so recipes and evaluation settings written for those datasets carry over.
"""

from __future__ import annotations

from typing import Any

from lerobot_diffrl.envs.lerobot_batch import IMAGE_KEYS, OBS_STATE
from lerobot_diffrl.envs.suites import CONTROL_FPS
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


def dataset_features(image_size: tuple[int, int] | int = DEFAULT_IMAGE_SIZE) -> dict[str, dict[str, Any]]:
    """LeRobot feature dict (without lerobot's default index columns) of a generated dataset."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    video = {"dtype": "video", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
    features: dict[str, dict[str, Any]] = {key: dict(video) for key in IMAGE_KEYS}
    features[OBS_STATE] = {"dtype": "float32", "shape": (8,), "names": list(STATE_NAMES)}
    features[ACTION] = {"dtype": "float32", "shape": (7,), "names": list(ACTION_NAMES)}
    features[REWARD] = {"dtype": "float32", "shape": (1,), "names": None}
    features[DONE] = {"dtype": "bool", "shape": (1,), "names": None}
    features[SUCCESS] = {"dtype": "bool", "shape": (1,), "names": None}
    return features


def video_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "video"]


def _essential(ft: dict[str, Any]) -> tuple:
    """What must agree between two datasets for their frames to mean the same thing."""
    info = ft.get("info") or {}
    return (ft["dtype"], tuple(ft["shape"]), info.get("video.codec"), info.get("video.pix_fmt"))


def check_same_features(a: dict[str, dict], b: dict[str, dict], a_name: str, b_name: str) -> None:
    """Raise :class:`DatasetError` naming the first difference between two datasets' feature dicts."""
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
