"""A privileged-state scripted pick-and-place expert for LIBERO: demonstrations with no human at all.

Why: DPPO fine-tuning needs a pre-trained policy, and a pre-trained policy needs demonstrations. When no human
data is at hand (a new task, a new scene), this expert produces them from the simulator's privileged state, and
it is a third data source to compare against human demos and RL rollouts.

How: each slot of an :class:`~lerobot_diffrl.envs.pool.EnvPool` runs a small state machine (approach, descend,
close, lift, transport, lower, release, retreat) driven by a P-controller on the end-effector position and
orientation, in LIBERO's relative OSC_POSE action space (0.05 m and 0.5 rad per unit action). It reads only the
pool's observation arrays (``robot_state`` and robosuite's ``object-state``) plus static task geometry measured
once per task (:mod:`lerobot_diffrl.data.scene_geometry`, :mod:`lerobot_diffrl.data.expert_plans`). Waypoint
offsets, speeds and pauses are drawn per episode from a NumPy generator seeded with (seed, the episode's own seed
from the generation plan), so a run is reproducible, episodes differ, and a sharded or resumed generation repeats
each episode exactly (without an episode seed: (seed, slot, episode count)). The controller watches the object: a missed grasp, a dropped object or
a place that did not count (the episode did not end) starts a new attempt from the object's current pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lerobot_diffrl.data.expert_plans import (
    FINGER_BELOW,
    GraspPose,
    TaskPlan,
    check_supported,
    choose_grasp,
    is_supported,
    make_plan,
    obstacle_boxes,
    spec_key,
)
from lerobot_diffrl.data.scene_geometry import object_pose, task_geometry, world_box
from lerobot_diffrl.envs.observations import ROBOT_STATE_SLICES
from lerobot_diffrl.envs.pool import SlotSpec
from lerobot_diffrl.errors import ConfigError

#: LIBERO's home end-effector orientation (the OSC controller's ``ee_ori_mat``): pointing down, fingers
#: closing along world y.
HOME_ORIENTATION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: OSC_POSE's rotation scale: radians per unit action (positions: 0.05 m per unit, folded into the gains).
ROT_SCALE = 0.5
GRIPPER_OPEN, GRIPPER_CLOSE = -1.0, 1.0
#: Largest rotation action (0.3 rad per step): fast wrist turns at long reach swing the arm about.
MAX_TURN = 0.6
#: Panda elbow angle (rad) above which the arm is nearly straight: at the edge of its reach, where it cannot
#: move sideways any more; coming down brings the reach back.
ELBOW_STRETCHED = -0.7
#: Highest the eef is lifted above its grasp height, whatever the obstacles (the arm's reach ends).
MAX_LIFT = 0.35
#: Attempts (grasp + place) before a slot gives up and holds still until its episode truncates.
MAX_ATTEMPTS = 4

APPROACH, DESCEND, CLOSE, LIFT, TRANSPORT, LOWER, RELEASE, RETREAT, HOLD = range(9)
PHASE_NAMES = ("approach", "descend", "close", "lift", "transport", "lower", "release", "retreat", "hold")


@dataclass
class Style:
    """Per-episode randomisation: where exactly, how fast and with which pauses the motion runs."""

    gain: float = 10.0  # position action per metre of error (10: half the error per step at 0.05 m/unit)
    speed: float = 0.9  # largest position action component
    hover: float = 0.08  # approach height above the grasp point (m)
    grasp_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    place_offset: np.ndarray = field(default_factory=lambda: np.zeros(2))
    release_height: float = 0.015  # object bottom above the resting surface when opening (m)
    min_lift: float = 0.08  # lift at least this much above the grasp point (m)
    clearance: float = 0.04  # object bottom above obstacles while carried (m)
    close_steps: int = 12
    open_steps: int = 12
    yaw_jitter: float = 0.0
    pauses: dict[int, int] = field(default_factory=dict)  # steps to wait at the start of a phase

    @staticmethod
    def draw(rng: np.random.Generator, plan: TaskPlan) -> Style:
        inside = plan.place.inside
        rim = plan.grasp.kind == "rim"
        angle = rng.uniform(0, 2 * math.pi)
        radius = plan.place.xy_tolerance * math.sqrt(rng.uniform())
        if rim:  # the wall must stay between the fingers: small offsets
            grasp = np.array(
                [rng.uniform(-0.002, 0.002), rng.uniform(-0.002, 0.002), rng.uniform(-0.003, 0.002)]
            )
        else:
            grasp = np.array(
                [rng.uniform(-0.004, 0.004), rng.uniform(-0.004, 0.004), rng.uniform(-0.003, 0.003)]
            )
        return Style(
            gain=rng.uniform(8.0, 12.0),
            speed=rng.uniform(0.7, 1.0),
            hover=rng.uniform(0.06, 0.10),
            grasp_offset=grasp,
            place_offset=radius * np.array([math.cos(angle), math.sin(angle)]),
            release_height=rng.uniform(0.01, 0.03) if inside else rng.uniform(0.002, 0.008),
            min_lift=rng.uniform(0.07, 0.11),
            clearance=rng.uniform(0.03, 0.05),
            close_steps=int(rng.integers(10, 15)),
            open_steps=int(rng.integers(10, 15)),
            yaw_jitter=0.0 if rim else rng.uniform(-0.06, 0.06),
            pauses={phase: int(rng.integers(0, 4)) for phase in (DESCEND, LIFT, LOWER)},
        )


@dataclass
class _Slot:
    """One slot's episode: its plan, style and controller state."""

    plan: TaskPlan | None = None
    style: Style = field(default_factory=Style)
    phase: int = HOLD
    t: int = 0  # steps spent in the current phase
    attempts: int = 0
    stalled: int = 0
    prev_eef: np.ndarray | None = None
    grasp: GraspPose | None = None
    failed: list[GraspPose] = field(default_factory=list)  # grasps that were blocked or closed on nothing
    travel_z: float = 0.0
    lift_z: float = 0.0
    carry_bottom: float = 0.0  # lowest the carried object's bottom may go before it is over the target
    grip_offset: np.ndarray | None = None  # eef minus subject origin right after closing
    subject_z0: float = 0.0
    hold: np.ndarray | None = None  # position held while the gripper opens or closes
    best_error: float = 1.0  # transport: closest the object came to its place
    stuck: int = 0  # transport: steps without getting closer

    def go(self, phase: int) -> None:
        self.phase, self.t, self.stalled = phase, 0, 0


def rotation_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def gripper_yaw(rot: np.ndarray) -> float:
    """Yaw (rad) of an eef orientation relative to :data:`HOME_ORIENTATION` about world z."""
    turn = rot @ HOME_ORIENTATION.T
    return math.atan2(turn[1, 0], turn[0, 0])


def rotation_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (angle in [0, pi])."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-8:  # angle ~ pi: axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(rot) + 1.0) / 2.0, 0.0))
        norm = np.linalg.norm(axis)
    return axis / norm * angle


class ScriptedExpert:
    """Actor protocol shared with data generation: drives a whole EnvPool batch."""

    obs_mode = "state"  # minimum pool observation mode it needs (works with "pixels_state" too)

    def __init__(self, slots: list[SlotSpec], seed: int = 0, randomize: bool = True):
        if not slots:
            raise ConfigError("the scripted expert needs at least one slot")
        self.seed = int(seed)
        self.randomize = bool(randomize)
        self.tasks: list[tuple[str, int]] = []
        for slot in slots:
            self.tasks.append(self._check(slot))
        self._slots = [_Slot() for _ in slots]
        self._episodes = np.zeros(len(slots), dtype=np.int64)

    @staticmethod
    def _check(slot: Any) -> tuple[str, int]:
        key = spec_key(slot)
        spec = check_supported(*key)  # UnknownTaskError / ConfigError with the covered tasks
        task_geometry(spec)  # measure now: a broken task fails here, not mid-rollout
        return key

    @staticmethod
    def supports(spec_or_slot: Any) -> bool:
        """Whether the expert's primitives cover a (suite, task_id) (a TaskSpec, SlotSpec or tuple)."""
        try:
            return is_supported(*spec_key(spec_or_slot))
        except ConfigError:
            return False

    @property
    def num_slots(self) -> int:
        return len(self._slots)

    def phase_names(self) -> list[str]:
        """Current phase of every slot (for logs and tests)."""
        return [PHASE_NAMES[s.phase] for s in self._slots]

    # -- episode starts ---------------------------------------------------------------------------------
    def reset(
        self, slot_ids: np.ndarray, obs: dict, infos: dict, slots: list[SlotSpec] | None = None
    ) -> None:
        """Slots `slot_ids` just started a new episode (call with all slots after pool.reset, and with the
        auto-reset slots after a step where infos['_final'] is True). `slots` gives their (possibly new) tasks."""
        ids = np.flatnonzero(slot_ids) if np.asarray(slot_ids).dtype == bool else np.asarray(slot_ids).ravel()
        for i in ids:
            i = int(i)
            if not 0 <= i < self.num_slots:
                raise ConfigError(f"slot id {i} out of range (the expert drives {self.num_slots} slots)")
            if slots is not None:
                task = slots[i] if len(slots) == self.num_slots else slots[list(ids).index(i)]
                self.tasks[i] = self._check(task)
            seeds = infos.get("episode_seed")
            self._start(i, obs, int(seeds[i]) if seeds is not None else None)

    def _start(self, i: int, obs: dict, episode_seed: int | None = None) -> None:
        suite, task_id = self.tasks[i]
        spec = check_supported(suite, task_id)
        self._object_state(obs, i)  # a clear error when the pool has no object states
        plan = make_plan(spec)
        if plan.geometry.object_state_len != int(np.asarray(obs["object_state_len"])[i]):
            raise ConfigError(
                f"slot {i}: object state has {int(obs['object_state_len'][i])} values, but {suite} task "
                f"{task_id} has {plan.geometry.object_state_len}; is the slot running another task?"
            )
        key = (
            [self.seed, episode_seed] if episode_seed is not None else [self.seed, i, int(self._episodes[i])]
        )
        rng = np.random.default_rng(key)
        self._episodes[i] += 1
        slot = _Slot(plan=plan, style=Style.draw(rng, plan) if self.randomize else Style())
        slot.go(APPROACH)
        self._slots[i] = slot

    @staticmethod
    def _object_state(obs: dict, i: int) -> np.ndarray:
        if "object_state" not in obs:
            raise ConfigError(
                "the scripted expert needs object states: run the pool with obs_mode 'state' or 'pixels_state'"
            )
        return np.asarray(obs["object_state"][i], dtype=np.float64)

    # -- acting -----------------------------------------------------------------------------------------
    def act(self, obs: dict) -> np.ndarray:
        """(n, 7) float actions in [-1, 1] for every slot of the pool observation batch."""
        robot = np.asarray(obs["robot_state"], dtype=np.float64)
        if robot.shape[0] != self.num_slots:
            raise ConfigError(
                f"observation batch has {robot.shape[0]} slots, the expert drives {self.num_slots}"
            )
        actions = np.zeros((self.num_slots, 7), dtype=np.float64)
        for i, slot in enumerate(self._slots):
            if slot.plan is None:
                raise ConfigError(f"slot {i} has no episode: call reset() after the pool's reset")
            actions[i] = self._act_slot(slot, robot[i], self._object_state(obs, i))
        return np.clip(actions, -1.0, 1.0)

    def _act_slot(self, s: _Slot, robot: np.ndarray, objects: np.ndarray) -> np.ndarray:
        plan, style = s.plan, s.style
        eef = robot[ROBOT_STATE_SLICES["eef_pos"]]
        rot = robot[ROBOT_STATE_SLICES["eef_mat"]].reshape(3, 3)
        geo = plan.geometry
        subject = geo.objects[plan.subject]
        pos, orient = object_pose(objects, plan.subject)
        lo, hi = world_box(subject, pos, orient)
        sank = 0.0 if s.prev_eef is None else float(s.prev_eef[2] - eef[2])
        s.stalled = s.stalled + 1 if sank < 0.001 else 0  # not going down (blocked while descending)
        s.prev_eef = eef.copy()
        s.t += 1
        if s.t <= style.pauses.get(s.phase, 0):
            return self._command(
                s, eef, rot, eef, GRIPPER_CLOSE if s.phase in (LIFT, LOWER) else GRIPPER_OPEN
            )

        if s.phase == APPROACH:
            if s.grasp is None:  # a new attempt: choose the grasp for the object's pose now
                s.grasp = choose_grasp(plan, objects, tuple(s.failed), gripper_yaw(rot))
                s.travel_z = self._travel_height(s, objects, eef, self._grasp_point(s, pos, orient))
            grasp = self._grasp_point(s, pos, orient)
            hover = np.array([grasp[0], grasp[1], s.travel_z])
            far = np.linalg.norm(eef[:2] - hover[:2]) > 0.03
            target = np.array([eef[0], eef[1], hover[2]]) if far and eef[2] < hover[2] - 0.03 else hover
            aligned = self._yaw_error(s, rot) < 0.1
            if np.linalg.norm(eef - hover) < 0.015 and aligned:
                s.go(DESCEND)
            elif s.t > 120:  # could not get there (the arm at a limit): another grasp
                s.failed.append(s.grasp)
                return self._retry(s, eef, rot)
            return self._command(s, eef, rot, target, GRIPPER_OPEN)

        if s.phase == DESCEND:
            grasp = self._grasp_point(s, pos, orient)
            blocked = s.t > 10 and s.stalled >= 4
            if blocked and eef[2] - grasp[2] > 0.015:  # the hand sits on something: try another grasp
                s.failed.append(s.grasp)
                return self._retry(s, eef, rot)
            if np.linalg.norm(eef - grasp) < 0.006 or blocked or s.t > 60:
                s.hold = eef.copy()
                s.go(CLOSE)
            return self._command(s, eef, rot, grasp, GRIPPER_OPEN)

        if s.phase == CLOSE:
            if s.t >= style.close_steps:
                s.grip_offset = eef - pos
                s.subject_z0 = pos[2]
                s.carry_bottom = self._carry_bottom(s, objects, lo, hi)
                s.lift_z = max(eef[2] + style.min_lift, s.carry_bottom + eef[2] - lo[2])
                s.go(LIFT)
            return self._command(s, eef, rot, s.hold, GRIPPER_CLOSE)

        if s.phase == LIFT:
            target = np.array([s.hold[0], s.hold[1], s.lift_z])
            if eef[2] - s.hold[2] > 0.05 and pos[2] - s.subject_z0 < 0.02:
                s.failed.append(s.grasp)
                return self._retry(s, eef, rot)  # missed: the object stayed behind
            if eef[2] > s.lift_z - 0.015:
                if lo[2] >= s.carry_bottom - 0.005 or s.lift_z > s.hold[2] + MAX_LIFT:
                    s.go(TRANSPORT)
                else:  # the object hangs lower than at the grasp (a bowl tilts in a rim grasp): go higher
                    s.lift_z += s.carry_bottom - lo[2]
            return self._command(s, eef, rot, target, GRIPPER_CLOSE)

        if s.phase in (TRANSPORT, LOWER):
            if np.linalg.norm((eef - pos) - s.grip_offset) > 0.04:
                return self._retry(s, eef, rot)  # dropped on the way
            goal_xy = self._place_xy(s, objects) + style.place_offset
            error = float(np.linalg.norm(goal_xy - pos[:2]))
            target = np.empty(3)
            if s.phase == TRANSPORT:
                target[:2] = eef[:2] + (goal_xy - pos[:2])
                target[2] = s.lift_z
                if s.t == 1 or error < s.best_error - 0.001:
                    s.best_error, s.stuck = error, 0
                else:
                    s.stuck += 1
                # at the arm's reach the last centimetre may not come: lower once it stops improving
                if error < 0.01 or (error < 0.025 and s.stuck > 8):
                    s.go(LOWER)
            else:
                # re-centre harder than in transport; a fast descent drags the eef sideways, and a carried
                # bowl hangs tilted, so its low side would catch the target's rim: hold height while off
                target[:2] = eef[:2] + 1.5 * (goal_xy - pos[:2])
                release_bottom = self._surface(s, objects) + style.release_height
                target[2] = eef[2] + (release_bottom - lo[2])
                stretched = robot[ROBOT_STATE_SLICES["joint_pos"]][3] > ELBOW_STRETCHED
                if error > max(0.012, s.best_error + 0.004) and s.t < 40 and not stretched:
                    target[2], s.stalled = eef[2], 0
                if lo[2] < release_bottom + 0.004 or (s.t > 8 and s.stalled >= 4) or s.t > 80:
                    s.hold = eef.copy()
                    s.go(RELEASE)
            return self._command(s, eef, rot, target, GRIPPER_CLOSE)

        if s.phase == RELEASE:
            if s.t >= style.open_steps:
                s.go(RETREAT)
            return self._command(s, eef, rot, s.hold, GRIPPER_OPEN)

        if s.phase == RETREAT:
            target = s.hold + np.array([0.0, 0.0, 0.10])
            if s.t > 40:  # still running, so the place did not count: try again from where the object is
                return self._retry(s, eef, rot)
            return self._command(s, eef, rot, target, GRIPPER_OPEN)

        return self._command(s, eef, rot, eef, GRIPPER_OPEN)  # HOLD

    # -- pieces -----------------------------------------------------------------------------------------
    def _retry(self, s: _Slot, eef: np.ndarray, rot: np.ndarray) -> np.ndarray:
        s.attempts += 1
        s.grasp = None
        s.go(APPROACH if s.attempts < MAX_ATTEMPTS else HOLD)
        return self._command(s, eef, rot, eef + np.array([0.0, 0.0, 0.02]), GRIPPER_OPEN)

    def _grasp_point(self, s: _Slot, pos: np.ndarray, orient: np.ndarray) -> np.ndarray:
        """The chosen grasp point (fingertip centre) for the subject's current pose, with this episode's
        offset."""
        return pos + orient @ np.asarray(s.grasp.local) + s.style.grasp_offset

    def _travel_height(self, s: _Slot, objects: np.ndarray, eef: np.ndarray, grasp: np.ndarray) -> float:
        """Height to fly to the grasp at: the fingertips clear everything between here and there."""
        boxes = obstacle_boxes(s.plan.geometry, objects, s.plan.subject)
        need = grasp[2] + s.style.hover
        for b_lo, b_hi in boxes:
            if _segment_hits_box(eef[:2], grasp[:2], 0.05, b_lo[:2], b_hi[:2]):
                need = max(need, float(b_hi[2]) + FINGER_BELOW + 0.03)
        return need

    def _target_frame(self, s: _Slot, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        place = s.plan.place
        if place.target_index is None:
            return np.zeros(3), np.eye(3)
        return object_pose(objects, place.target_index)

    def _place_xy(self, s: _Slot, objects: np.ndarray) -> np.ndarray:
        pos, rot = self._target_frame(s, objects)
        return (pos + rot @ np.asarray(s.plan.place.center))[:2]

    def _surface(self, s: _Slot, objects: np.ndarray) -> float:
        pos, _ = self._target_frame(s, objects)
        return float(pos[2] + s.plan.place.surface)

    def _carry_bottom(self, s: _Slot, objects: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
        """Height the carried object's bottom must keep on its way: above everything it passes over (the
        target's rim included), with this episode's clearance."""
        start, goal = 0.5 * (lo[:2] + hi[:2]), self._place_xy(s, objects)
        radius = 0.5 * float(np.max(hi[:2] - lo[:2])) + 0.01
        need = max(lo[2], self._surface(s, objects))
        for b_lo, b_hi in obstacle_boxes(s.plan.geometry, objects, s.plan.subject):
            if _segment_hits_box(start, goal, radius, b_lo[:2], b_hi[:2]):
                need = max(need, float(b_hi[2]))
        return need + s.style.clearance

    def _desired_rotation(self, s: _Slot) -> np.ndarray:
        yaw = 0.0 if s.grasp is None else s.grasp.yaw
        return rotation_z(yaw + s.style.yaw_jitter) @ HOME_ORIENTATION

    def _yaw_error(self, s: _Slot, rot: np.ndarray) -> float:
        return float(np.linalg.norm(rotation_to_axis_angle(self._desired_rotation(s) @ rot.T)))

    def _command(
        self, s: _Slot, eef: np.ndarray, rot: np.ndarray, target: np.ndarray, grip: float
    ) -> np.ndarray:
        move = s.style.gain * (np.asarray(target) - eef)
        peak = float(np.max(np.abs(move)))
        if peak > s.style.speed:
            move *= s.style.speed / peak
        turn = rotation_to_axis_angle(self._desired_rotation(s) @ rot.T) / ROT_SCALE
        turn = np.clip(turn, -MAX_TURN, MAX_TURN)
        return np.concatenate([move, turn, [grip]])


def _segment_hits_box(a: np.ndarray, b: np.ndarray, radius: float, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether a disc of ``radius`` swept along the xy segment a-b touches the xy box [lo, hi]."""
    points = a + np.linspace(0.0, 1.0, 41)[:, None] * (b - a)
    gap = np.maximum(np.maximum(lo - points, points - hi), 0.0)
    return bool(np.min(np.linalg.norm(gap, axis=1)) < radius)


__all__ = ["PHASE_NAMES", "ScriptedExpert", "Style"]
