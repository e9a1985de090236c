"""Static geometry of one LIBERO task, read once from a non-rendering simulator, for the scripted expert.

Why a separate simulator: the expert acts only from the pool's observation arrays (robot state and robosuite's
``object-state``: per object position, xyzw quaternion, position and quaternion relative to the eef). Those give
body origins, not shapes: a bottle's origin is mid-height, a basket's is below its floor. What never changes
within a task (object shapes, the order of objects in ``object-state``, where a goal region sits on its parent
object, the BDDL goal) is therefore measured here once per task and process, and combined with the observed
poses at run time.

Fixtures (cabinet, stove, rack) are not in ``object-state``, and LIBERO re-samples their pose on every reset
within a +-1 cm region that no init state stores. Their boxes and goal regions are therefore the mean over
several resets; a target on a fixture is known to about 1 cm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lerobot_diffrl.envs.suites import TaskSpec, load_init_states
from lerobot_diffrl.errors import ConfigError

#: Values per object in robosuite's ``object-state``: pos 3, quat 4 (xyzw), pos to eef 3, quat to eef 4.
OBJECT_STATE_STRIDE = 14
#: Resets averaged to locate fixtures (their pose is re-sampled within +-1 cm at every reset).
FIXTURE_RESETS = 12


@dataclass(frozen=True)
class ObjectGeometry:
    """A movable object: its slot in ``object-state`` and its collision box in its own body frame."""

    name: str
    index: int
    local_min: tuple[float, float, float]
    local_max: tuple[float, float, float]

    @property
    def size(self) -> np.ndarray:
        return np.subtract(self.local_max, self.local_min)


@dataclass(frozen=True)
class RegionGeometry:
    """A BDDL goal region (a MuJoCo site): centre and half sizes.

    ``parent_index`` is the object the region belongs to (the basket), in whose body frame ``center`` is given;
    ``None`` means a fixture's region, with ``center`` in world coordinates (mean over resets).
    """

    name: str
    parent_index: int | None
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]


@dataclass(frozen=True)
class TaskGeometry:
    """Everything static the expert needs for one task (see the module docstring)."""

    suite: str
    task_id: int
    objects: tuple[ObjectGeometry, ...]
    #: World boxes (min, max) of the fixtures, mean over resets; the table is left out.
    fixtures: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]
    #: The same fixtures as boxes of their collision geoms (a rack's corner is lower than its top).
    fixture_parts: dict[str, tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]]
    #: The BDDL goal as LIBERO parses it, e.g. ``(("on", "akita_black_bowl_1", "plate_1"),)``.
    goal: tuple[tuple[str, ...], ...]
    #: Goal regions by name (sites of objects or fixtures named in the goal).
    regions: dict[str, RegionGeometry]
    #: Height of the surface the scene stands on (floor or table top), from the lowest object bottom.
    support_z: float
    #: Per goal target (object or region name): height of the surface an object placed at its centre rests
    #: on (a basket's floor, a plate's top, a stove's burner), relative to the parent object's origin for
    #: objects and their regions, in world z for fixture regions. Measured with a downward ray.
    surfaces: dict[str, float]
    #: World position of the robot's base (its reach is measured from there).
    robot_base: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def object(self, name: str) -> ObjectGeometry:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise ConfigError(f"{self.suite}/{self.task_id} has no movable object {name!r}")

    @property
    def object_state_len(self) -> int:
        return OBJECT_STATE_STRIDE * len(self.objects)


# -- run-time helpers on observation arrays ------------------------------------------------------------------
def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """xyzw quaternion -> rotation matrix."""
    x, y, z, w = np.asarray(quat, dtype=np.float64) / max(float(np.linalg.norm(quat)), 1e-12)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def object_pose(object_state: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(position, rotation matrix) of object ``index`` from one slot's ``object-state`` row."""
    base = OBJECT_STATE_STRIDE * index
    return object_state[base : base + 3].astype(np.float64), quat_to_mat(object_state[base + 3 : base + 7])


_CORNERS = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)


def world_box(obj: ObjectGeometry, pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World axis-aligned box of ``obj`` at pose (pos, rot): the box of its rotated local box."""
    lo, hi = np.asarray(obj.local_min), np.asarray(obj.local_max)
    corners = lo + _CORNERS * (hi - lo)
    world = corners @ rot.T + pos
    return world.min(axis=0), world.max(axis=0)


# -- measurement in a simulator -------------------------------------------------------------------------------
def _subtree_bodies(model: Any, root: int) -> list[int]:
    bodies = []
    for body in range(model.nbody):
        b = body
        while b != root and b > 0:
            b = int(model.body_parentid[b])
        if b == root:
            bodies.append(body)
    return bodies


def _collision_corners(model: Any, data: Any, root: int) -> np.ndarray:
    """World corners of the collision geoms' boxes of body ``root`` and its children (k*8, 3)."""
    return np.concatenate(_geom_corners(model, data, root))


def _geom_corners(model: Any, data: Any, root: int) -> list[np.ndarray]:
    """World corners (8, 3) of each collision geom's box of body ``root`` and its children."""
    bodies = set(_subtree_bodies(model, root))
    out = []
    for g in range(model.ngeom):
        collides = model.geom_contype[g] != 0 or model.geom_conaffinity[g] != 0
        if int(model.geom_bodyid[g]) not in bodies or not collides:
            continue
        center, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        local = center + (2 * _CORNERS - 1) * half
        out.append(local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g])
    if not out:
        raise ConfigError(f"body {root} has no collision geometry")
    return out


def _region_site(env: Any, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """World centre, world half sizes and parent name of a goal region site."""
    site = env.object_sites_dict[name]
    pos = np.array(env.sim.data.get_site_xpos(name))
    mat = np.array(env.sim.data.get_site_xmat(name))
    half = np.abs(mat @ np.asarray(site.size, dtype=np.float64))
    return pos, half, getattr(site, "parent_name", None)


def _surface_below(model: Any, data: Any, xy: np.ndarray, z_from: float, bodies: set[int]) -> float | None:
    """z of the first collision surface of ``bodies`` hit by a ray going down from (xy, z_from), else None."""
    import mujoco

    geomgroup = np.array([1, 0, 0, 0, 0, 0], dtype=np.uint8)  # LIBERO's collision geoms are in group 0
    geomid = np.zeros((1, 1), dtype=np.int32)
    start = np.array([xy[0], xy[1], z_from], dtype=np.float64)
    down = np.array([0.0, 0.0, -1.0])
    for _ in range(8):  # step through geoms of other bodies (an arm or object above the target)
        dist = mujoco.mj_ray(model, data, start, down, geomgroup, 1, -1, geomid)
        if dist < 0:
            return None
        hit = start[2] - dist
        if int(model.geom_bodyid[geomid[0, 0]]) in bodies:
            return float(hit)
        start[2] = hit - 1e-4
    return None


def measure_task_geometry(spec: TaskSpec, sim: Any | None = None) -> TaskGeometry:
    """Build (or use) a non-rendering simulator of ``spec`` and measure its :class:`TaskGeometry`."""
    from lerobot_diffrl.envs.episode import SETTLE_STEPS
    from lerobot_diffrl.envs.libero_task import NOOP_ACTION, make_task_sim

    own = sim is None
    if own:
        sim = make_task_sim(spec, render=False)
    try:
        env = sim.env
        model, data = env.sim.model._model, env.sim.data._data
        init_states = load_init_states(spec)
        goal = tuple(tuple(str(p) for p in pred) for pred in env.parsed_problem["goal_state"])
        region_names = [
            arg
            for pred in goal
            for arg in pred[1:]
            if arg in env.object_sites_dict and arg not in env.objects_dict
        ]
        object_names = list(env.objects_dict)
        fixture_names = [f for f in env.fixtures_dict if f != "main_table"]
        fixture_boxes: dict[str, list[np.ndarray]] = {f: [] for f in fixture_names}
        part_boxes: dict[str, list[np.ndarray]] = {f: [] for f in fixture_names}
        region_world: dict[str, list[np.ndarray]] = {r: [] for r in region_names}
        objects: list[ObjectGeometry] = []
        bottoms = []
        for k in range(FIXTURE_RESETS):
            sim.reset()
            sim.set_init_state(init_states[k % len(init_states)])
            if k == 0:
                for _ in range(SETTLE_STEPS):
                    sim.step(NOOP_ACTION)
                for i, name in enumerate(object_names):
                    bid = env.obj_body_id[name]
                    corners = _collision_corners(model, data, bid)
                    local = (corners - data.xpos[bid]) @ data.xmat[bid].reshape(3, 3)
                    objects.append(
                        ObjectGeometry(name, i, tuple(local.min(axis=0)), tuple(local.max(axis=0)))
                    )
                    bottoms.append(corners[:, 2].min())
            for f in fixture_names:
                parts = _geom_corners(model, data, env.obj_body_id[f])
                corners = np.concatenate(parts)
                fixture_boxes[f].append(np.concatenate([corners.min(axis=0), corners.max(axis=0)]))
                part_boxes[f].append(
                    np.stack([np.concatenate([c.min(axis=0), c.max(axis=0)]) for c in parts])
                )
            for r in region_names:
                pos, half, parent = _region_site(env, r)
                if parent in env.objects_dict:  # store in the parent's body frame
                    bid = env.obj_body_id[parent]
                    pos = (pos - data.xpos[bid]) @ data.xmat[bid].reshape(3, 3)
                region_world[r].append(np.concatenate([pos, half]))
        # Surfaces under the goal targets, in the settled first init state (fixtures at their mean pose
        # would need another reset, the +-1 cm offset does not change a surface height).
        sim.reset()
        sim.set_init_state(init_states[0])
        surfaces: dict[str, float] = {}
        for pred in goal:
            for arg in pred[2:]:
                if arg in env.objects_dict:
                    parent, xy = arg, np.array(data.xpos[env.obj_body_id[arg]][:2])
                elif arg in region_names:
                    pos, _, parent = _region_site(env, arg)
                    xy = pos[:2]
                else:
                    continue
                bid = env.obj_body_id[parent]
                corners = _collision_corners(model, data, bid)
                top = _surface_below(
                    model, data, xy, corners[:, 2].max() + 0.02, set(_subtree_bodies(model, bid))
                )
                top = float(corners[:, 2].max()) if top is None else top
                surfaces[arg] = top - float(data.xpos[bid][2]) if parent in env.objects_dict else top
        regions = {}
        for r in region_names:
            _, _, parent = _region_site(env, r)
            mean = np.mean(region_world[r], axis=0)
            regions[r] = RegionGeometry(
                name=r,
                parent_index=object_names.index(parent) if parent in env.objects_dict else None,
                center=tuple(float(v) for v in mean[:3]),
                half_size=tuple(float(v) for v in mean[3:]),
            )
        fixtures = {}
        for f, boxes in fixture_boxes.items():
            mean = np.mean(boxes, axis=0)
            fixtures[f] = (tuple(float(v) for v in mean[:3]), tuple(float(v) for v in mean[3:]))
        return TaskGeometry(
            suite=spec.suite,
            task_id=spec.task_id,
            objects=tuple(objects),
            fixtures=fixtures,
            fixture_parts={
                f: tuple(
                    (tuple(float(v) for v in row[:3]), tuple(float(v) for v in row[3:]))
                    for row in np.mean(parts, axis=0)
                )
                for f, parts in part_boxes.items()
            },
            goal=goal,
            regions=regions,
            support_z=float(np.min(bottoms)),
            surfaces=surfaces,
            robot_base=tuple(float(v) for v in env.robots[0].base_pos),
        )
    finally:
        if own:
            sim.close()


@lru_cache(maxsize=128)
def task_geometry(spec: TaskSpec) -> TaskGeometry:
    """:func:`measure_task_geometry`, cached per process (a simulator build costs a few seconds)."""
    return measure_task_geometry(spec)
