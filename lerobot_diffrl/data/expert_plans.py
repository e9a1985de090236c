"""Which LIBERO tasks the scripted expert covers, and the static pick-and-place plan of each.

A plan says what to pick (the BDDL goal's first argument), how to grasp it (from above across its narrow side,
or by the rim for bowls: one finger inside, one outside), where it goes (a target object's origin, or a goal
region of an object or fixture) and how high the resting surface there is. It is derived from the task's
:class:`~lerobot_diffrl.data.scene_geometry.TaskGeometry`; the few scene-specific choices a geometric rule does
not get right (which side of a bowl to grasp inside a drawer) are explicit overrides below, each with its reason.

Covered: every libero_object task (pick X, place in the basket), every libero_spatial task (pick a bowl, place
it on the plate) and the single pick-and-place goals of libero_goal. Not covered: goals that need an articulated
fixture (open a drawer, turn on the stove), pushing, or several objects (libero_10, libero_90).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lerobot_diffrl.data.scene_geometry import (
    OBJECT_STATE_STRIDE,
    TaskGeometry,
    object_pose,
    task_geometry,
    world_box,
)
from lerobot_diffrl.envs.suites import TaskSpec, check_suite, task_spec
from lerobot_diffrl.errors import ConfigError

#: Tasks the primitives cover, by suite (task ids of LIBERO's benchmark order).
SUPPORTED: dict[str, frozenset[int]] = {
    "libero_object": frozenset(range(10)),
    "libero_spatial": frozenset(range(10)),
    # 1 bowl on stove, 2 wine bottle on cabinet, 4 bowl on cabinet, 6 cream cheese in bowl, 8 bowl on plate.
    "libero_goal": frozenset({1, 2, 4, 6, 8}),
}
#: Why the other tasks of a covered suite are not, for the error message.
UNSUPPORTED_REASON: dict[str, str] = {
    "libero_goal": "it needs a drawer, a knob, pushing or a rack insertion, not a pick-and-place",
    "libero_10": "its tasks chain two subtasks or two objects",
    "libero_90": "its tasks are not covered by the plans yet",
}
#: Bowls are grasped by the rim; everything else from above.
RIM_OBJECTS = ("bowl",)
#: Rim direction (unit xy from the bowl centre to the grasped rim) overrides, by (suite, task_id).
#: libero_spatial 4: the bowl sits in the open top drawer (pulled out towards +y), partly under the cabinet's top
#: plate. Fingers closing along y hit the drawer's panels, so the rim is taken on the -x side with the fingers
#: along x (when a finger lands on the plate's edge, a retry turns by 15-30 degrees). Fixture meshes are too
#: concave for the box model of :func:`hand_clearance` to find this side by itself.
RIM_DIRECTION_OVERRIDES: dict[tuple[str, int], tuple[float, float]] = {("libero_spatial", 4): (-1.0, 0.0)}


@dataclass(frozen=True)
class Grasp:
    """How the subject is taken: ``top`` (fingers across its narrow side) or ``rim`` (bowls)."""

    kind: str
    #: Rim grasps: fixed unit xy direction from the bowl centre to the grasped rim, or None to choose.
    rim_dir: tuple[float, float] | None = None


@dataclass(frozen=True)
class GraspPose:
    """One concrete grasp: the fingertip centre in the subject's body frame and the gripper yaw."""

    local: tuple[float, float, float]
    #: Gripper yaw (rad) about world z relative to LIBERO's home orientation (fingers close along world y).
    yaw: float
    #: Free space (m) between the open hand and the nearest other object or fixture.
    clearance: float


@dataclass(frozen=True)
class Placement:
    """Where the subject's origin must end: over ``target``'s origin (``on`` an object), or in a region.

    ``target_index`` is the object whose pose carries the target (None: a fixture region in world frame);
    ``center`` is the region centre in that object's body frame (or world); ``surface`` the resting surface
    height (relative to the object's origin z, or world z); ``xy_tolerance`` how far from the centre the
    subject's origin may land and still count, which bounds the randomised place offset.
    """

    target_index: int | None
    center: tuple[float, float, float]
    surface: float
    xy_tolerance: float
    #: True for ``In`` goals: the subject's origin must stay below the region's top (drop into a basket).
    inside: bool = False


@dataclass(frozen=True)
class TaskPlan:
    """The whole static plan of one task."""

    suite: str
    task_id: int
    geometry: TaskGeometry
    subject: int
    grasp: Grasp
    place: Placement


def spec_key(spec_or_slot: Any) -> tuple[str, int]:
    """(suite, task_id) of a :class:`TaskSpec`, a pool ``SlotSpec`` or a ``(suite, task_id)`` tuple."""
    if isinstance(spec_or_slot, tuple) and len(spec_or_slot) >= 2 and not hasattr(spec_or_slot, "suite"):
        return str(spec_or_slot[0]), int(spec_or_slot[1])
    try:
        return str(spec_or_slot.suite), int(spec_or_slot.task_id)
    except AttributeError as err:
        raise ConfigError(f"expected a TaskSpec or SlotSpec(suite, task_id), got {spec_or_slot!r}") from err


def is_supported(suite: str, task_id: int) -> bool:
    return task_id in SUPPORTED.get(suite, frozenset())


def check_supported(suite: str, task_id: int) -> TaskSpec:
    """The task's spec if the expert covers it; :class:`UnknownTaskError` for unknown tasks and
    :class:`ConfigError` naming the covered ones otherwise."""
    spec = task_spec(check_suite(suite), task_id)
    if not is_supported(suite, task_id):
        covered = ", ".join(f"{s} {sorted(ids)}" for s, ids in SUPPORTED.items())
        why = UNSUPPORTED_REASON.get(suite, "it is not a single pick-and-place")
        raise ConfigError(
            f"the scripted expert does not cover {suite} task {task_id} ({spec.language!r}): {why}. "
            f"Covered tasks: {covered}"
        )
    return spec


def _wrap_half_turn(yaw: float) -> float:
    """The gripper is symmetric: yaw and yaw + pi are the same grasp; keep the one nearest home."""
    return (yaw + math.pi / 2) % math.pi - math.pi / 2


def finger_yaw(direction: np.ndarray) -> float:
    """Gripper yaw that makes the fingers close along the world xy ``direction``."""
    return _wrap_half_turn(math.atan2(direction[1], direction[0]) - math.pi / 2)


#: The open Panda hand seen from above, in the gripper frame (u: along the finger axis, v: across it), and
#: its heights relative to the fingertip centre: the palm spans |u| <= 0.105 from 0.022 m above, the open
#: fingers 0.03 <= |u| <= 0.07 from 0.013 m below (measured from the collision geoms).
PALM_HALF = (0.105, 0.038)
PALM_ABOVE = 0.022
FINGER_SPAN = (0.03, 0.07)
FINGER_HALF_WIDTH = 0.013
FINGER_BELOW = 0.013
#: Deepest the fingertip centre goes below an object's top before the palm touches it.
FINGER_REACH = 0.028
#: Widest object section the open fingers close on (the opening is 0.08 m).
MAX_GRIP = 0.07
#: Clearance above which a grasp counts as free; below it the freest candidate wins.
FREE_CLEARANCE = 0.012
#: Wrist turn (rad) that costs as much as a centimetre of overreach.
TURN_UNIT = math.pi / 4
#: Cost of a grasp like one that already failed in the episode (a centimetre of overreach costs 1).
AVOID_COST = 5.0
#: Horizontal distance (m) from the robot's base beyond which the Panda's elbow is nearly straight; grasps
#: further out cost one unit per centimetre (a straight arm is singular: it gets stuck while carrying).
COMFORT_REACH = 0.70

_PALM_UV = np.array(
    [[u, v] for u in np.linspace(-PALM_HALF[0], PALM_HALF[0], 15) for v in (-PALM_HALF[1], 0.0, PALM_HALF[1])]
)
_FINGER_UV = np.array(
    [
        [sign * u, v]
        for sign in (-1, 1)
        for u in np.linspace(*FINGER_SPAN, 3)
        for v in (-FINGER_HALF_WIDTH, 0.0, FINGER_HALF_WIDTH)
    ]
)


def obstacle_boxes(
    geo: TaskGeometry, object_state: np.ndarray, subject: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """World boxes of every other object and of the fixtures' parts (collision geoms), except the parts right
    under or over the subject's origin: what it stands on or in, which it leaves upwards (a drawer's floor,
    a cabinet's top), while the walls around it stay obstacles."""
    boxes = [
        world_box(obj, *object_pose(object_state, obj.index)) for obj in geo.objects if obj.index != subject
    ]
    xy = object_state[OBJECT_STATE_STRIDE * subject : OBJECT_STATE_STRIDE * subject + 2]
    for parts in geo.fixture_parts.values():
        for lo, hi in parts:
            lo, hi = np.asarray(lo), np.asarray(hi)
            if not (np.all(lo[:2] <= xy) and np.all(xy <= hi[:2])):
                boxes.append((lo, hi))
    return boxes


def hand_clearance(xy: np.ndarray, z: float, yaw: float, boxes: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Smallest xy gap between the open hand (fingertip centre at (xy, z), yaw) and boxes it would hit.

    A box counts for the palm if it rises above the palm's underside, for the fingers if above their tips.
    """
    finger_axis = np.array([-math.sin(yaw), math.cos(yaw)])
    across = np.array([math.cos(yaw), math.sin(yaw)])
    palm = xy + _PALM_UV[:, :1] * finger_axis + _PALM_UV[:, 1:] * across
    fingers = xy + _FINGER_UV[:, :1] * finger_axis + _FINGER_UV[:, 1:] * across
    clearance = 1.0
    for lo, hi in boxes:
        for points, level in ((palm, z + PALM_ABOVE), (fingers, z - FINGER_BELOW)):
            if hi[2] <= level:
                continue
            gap = np.maximum(np.maximum(lo[:2] - points, points - hi[:2]), 0.0)
            clearance = min(clearance, float(np.min(np.linalg.norm(gap, axis=1))))
    return clearance


def _pick(candidates: list[tuple[float, float, np.ndarray, float]]) -> tuple[np.ndarray, float, float]:
    """(point, yaw, clearance) of the cheapest free candidate, else of the freest one.

    Candidates are (cost, clearance, world point, yaw); cost says how far a candidate is from the preferred
    grasp (centred, home-like yaw)."""
    free = [c for c in candidates if c[1] >= FREE_CLEARANCE]
    cost, clearance, point, yaw = (
        min(free, key=lambda c: c[0]) if free else max(candidates, key=lambda c: c[1])
    )
    return point, yaw, clearance


def choose_grasp(
    plan: TaskPlan, object_state: np.ndarray, avoid: tuple[GraspPose, ...] = (), current_yaw: float = 0.0
) -> GraspPose:
    """Where and how to grasp the subject in its current pose without the hand hitting anything.

    Top grasps close across the narrow horizontal side, at mid-height (at most 5 cm up, never so deep that the
    palm touches the top); boxes may be taken off-centre along their long side and with the gripper turned by up
    to ~17 degrees, round objects at any yaw, to keep the 21 cm wide palm off tall neighbours. Rim grasps take
    the bowl wall between the fingers (one inside, one outside) on the freest side, or near a task's override.
    Grasps within reach of the robot are preferred, grasps that need little turning of the wrist from
    ``current_yaw`` (large turns drive the Panda's wrist into its joint limits), and grasps unlike those in
    ``avoid`` (poses that already failed in this episode: the hand was blocked on the way down or closed on
    nothing).
    """
    geo = plan.geometry
    subject = geo.objects[plan.subject]
    pos, rot = object_pose(object_state, plan.subject)
    boxes = obstacle_boxes(geo, object_state, plan.subject)
    lo_local, hi_local = np.asarray(subject.local_min), np.asarray(subject.local_max)
    centre_local = 0.5 * (lo_local + hi_local)
    size = hi_local - lo_local
    vertical = int(np.argmax(np.abs(rot[2, :])))
    up = 1.0 if rot[2, vertical] > 0 else -1.0
    lo_w, hi_w = world_box(subject, pos, rot)
    base = np.asarray(geo.robot_base[:2])

    def extra_cost(point: np.ndarray, yaw: float) -> float:
        cost = max(0.0, float(np.linalg.norm(point[:2] - base)) - COMFORT_REACH) / 0.01
        cost += abs(_wrap_half_turn(yaw - current_yaw)) / TURN_UNIT
        local = rot.T @ (point - pos)
        for pose in avoid:
            turned = abs(_wrap_half_turn(yaw - pose.yaw))
            if np.linalg.norm(local - np.asarray(pose.local)) < 0.01 and turned < 0.15:
                cost += AVOID_COST
        return cost

    candidates = []
    if plan.grasp.kind == "rim":
        radius = 0.5 * float(min(size[a] for a in range(3) if a != vertical)) - 0.009
        top_local = hi_local[vertical] if up > 0 else lo_local[vertical]
        if plan.grasp.rim_dir is not None:  # the override, or up to 30 degrees off it
            preferred = math.atan2(plan.grasp.rim_dir[1], plan.grasp.rim_dir[0])
            angles = preferred + np.radians([0.0, 15.0, -15.0, 30.0, -30.0])
        else:  # any side, +y as a tie-breaker
            preferred, angles = math.pi / 2, np.linspace(0, 2 * math.pi, 12, endpoint=False)
        for angle in angles:
            d = np.array([math.cos(angle), math.sin(angle)])
            # the rim point in the bowl's frame whose world direction from the centre is d (bowls may tilt)
            d_local = rot.T @ np.array([d[0], d[1], 0.0])
            d_local[vertical] = 0.0
            d_local /= max(np.linalg.norm(d_local), 1e-9)
            local = centre_local + radius * d_local
            local[vertical] = top_local - up * 0.015
            point = pos + rot @ local
            yaw = finger_yaw(d)
            off = abs(math.remainder(angle - preferred, 2 * math.pi))
            cost = (off / math.radians(15.0) if plan.grasp.rim_dir is not None else off) + extra_cost(
                point, yaw
            )
            candidates.append((cost, hand_clearance(point[:2], point[2], yaw, boxes), point, yaw))
    else:
        horizontal = [a for a in range(3) if a != vertical]
        narrow, wide = sorted(horizontal, key=lambda a: size[a])
        centre = pos + rot @ centre_local
        z = lo_w[2] + float(np.clip(0.5 * (hi_w[2] - lo_w[2]), 0.012, 0.05))
        z = max(z, hi_w[2] - FINGER_REACH)
        round_ = size[wide] - size[narrow] < 0.01
        home_yaw = 0.0 if round_ else finger_yaw(rot[:2, narrow])
        long_axis = rot[:2, wide] / max(np.linalg.norm(rot[:2, wide]), 1e-9)
        reach = max(0.0, 0.5 * size[wide] - 0.022) if not round_ else 0.0
        shifts = np.linspace(-reach, reach, 5) if reach > 0.005 else np.zeros(1)
        turns = np.linspace(-1.2, 1.2, 9) if round_ else np.linspace(-0.3, 0.3, 5)
        for shift in shifts:
            for turn in turns:
                across = size[narrow] * abs(math.cos(turn)) + size[wide] * abs(math.sin(turn))
                if not round_ and across > MAX_GRIP:
                    continue
                point = np.array([*(centre[:2] + shift * long_axis), z])
                yaw = _wrap_half_turn(home_yaw + turn)
                cost = abs(shift) / 0.02 + abs(turn) / 0.3 + extra_cost(point, yaw)
                candidates.append((cost, hand_clearance(point[:2], z, yaw, boxes), point, yaw))
    point, yaw, clearance = _pick(candidates)
    local = rot.T @ (point - pos)
    return GraspPose(tuple(float(v) for v in local), float(yaw), float(clearance))


@lru_cache(maxsize=128)
def make_plan(spec: TaskSpec) -> TaskPlan:
    """The static plan of a covered task (the grasp pose is chosen per attempt by :func:`choose_grasp`)."""
    key = (spec.suite, spec.task_id)
    check_supported(*key)
    geo = task_geometry(spec)
    if len(geo.goal) != 1 or geo.goal[0][0] not in ("on", "in"):
        raise ConfigError(f"{spec.suite} task {spec.task_id}: goal {geo.goal} is not a single On/In")
    _, subject_name, target_name = geo.goal[0]
    subject = geo.object(subject_name)
    if any(tag in subject.name for tag in RIM_OBJECTS):
        grasp = Grasp("rim", RIM_DIRECTION_OVERRIDES.get(key))
    else:
        grasp = Grasp("top")
    surface = geo.surfaces[target_name]
    if target_name in geo.regions:
        region = geo.regions[target_name]
        half = np.asarray(region.half_size)
        place = Placement(
            target_index=region.parent_index,
            center=region.center,
            surface=surface,
            xy_tolerance=float(np.clip(min(half[0], half[1]) - 0.045, 0.0, 0.015)),
            inside=geo.goal[0][0] == "in",
        )
    else:
        # On(subject, object): LIBERO wants the two origins within 3 cm in xy.
        place = Placement(geo.object(target_name).index, (0.0, 0.0, 0.0), surface, 0.006)
    return TaskPlan(spec.suite, spec.task_id, geo, subject.index, grasp, place)
