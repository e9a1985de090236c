"""Generate a LeRobotDataset v3 of LIBERO episodes with an actor: config, checks, resume, sharding, packing.

Layout of a run with ``output_dir=D`` (all hidden work lives next to ``D`` until ``D`` is complete):

- ``.D.work/run.json``: the settings that define which episodes the run makes (checked on ``--resume``);
- ``.D.work/shard-KKK-of-NNN/staging/``: committed episodes and attempts (:mod:`lerobot_diffrl.data.staging`);
- ``D``: the finished dataset, packed in one pass and renamed into place, with ``meta/provenance.json``.

A killed run (any signal, SIGKILL included) is continued with ``--resume=true``: committed episodes are kept,
partial ones deleted, unfinished attempts run again with their planned init state and seed, and the dataset
ends with exactly the target episodes. Bad input (unknown suite or task, missing or foreign checkpoint, an
existing output without ``--resume``) fails before anything is written.

Object state: ``--record_env_state=true`` adds ``observation.environment_state`` (robosuite's privileged
object state, ``--env_state_dim`` wide, default the longest of the run's tasks; see
:mod:`lerobot_diffrl.data.features`) so that a state-based ``diffrl`` expert can be BC-trained on the dataset
and fine-tuned with ``lerobot-diffrl-rl --env.obs_mode=state``; the pool then runs in ``pixels_state`` mode.

Sharding: ``--shard_index=k --num_shards=n`` (job arrays; ``D`` is then the shard's own dataset, joined later by
``lerobot-diffrl-merge``), or ``accelerate launch`` (each process a shard; the main process waits for the others
and merges all shards into ``D``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_diffrl.data.actors import ACTOR_TYPES, RECORDING_POOL_MODE, make_actor, resolve_checkpoint
from lerobot_diffrl.data.features import FPS, ROBOT_TYPE, dataset_features, env_state_layout
from lerobot_diffrl.data.merge import merge_datasets
from lerobot_diffrl.data.packing import pack_episodes
from lerobot_diffrl.data.provenance import build_provenance, checkpoint_info, env_state_provenance
from lerobot_diffrl.data.rollout import ShardRollout
from lerobot_diffrl.data.scheduler import KEEP_MODES, AttemptScheduler
from lerobot_diffrl.data.sharding import ShardSpec, launched_device, resolve_shard
from lerobot_diffrl.data.staging import Staging, write_json_atomic
from lerobot_diffrl.data.writer import VCODECS, EpisodeWriter
from lerobot_diffrl.envs.libero_setup import prepare_libero
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.envs.suites import check_suite, load_init_states, parse_task_ids, task_spec
from lerobot_diffrl.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
#: Settings that decide which episodes a run makes; a resumed run must repeat them.
IDENTITY_FIELDS = (
    "suite",
    "task_ids",
    "episodes_per_task",
    "keep",
    "max_attempts_per_task",
    "max_steps",
    "image_size",
    "seed",
    "vcodec",
)
#: Identity entry of the recorded object-state width (None: not recorded); runs made before it have none.
ENV_STATE_IDENTITY = "env_state_dim"


@dataclass
class ActorConfig:
    #: ``scripted`` (privileged-state expert), or a checkpoint: ``policy`` (diffrl or gaussrl), ``diffrl``,
    #: ``gaussrl`` (the type is checked).
    type: str = "scripted"
    #: Checkpoint folder (``pretrained_model/``, a checkpoint holding one, or a run folder) or Hub model id.
    path: str | None = None
    #: ``auto``: this process's GPU under ``accelerate launch``/``torchrun``, else cuda when present, else cpu.
    device: str = "auto"
    #: Scripted expert: randomise waypoints per episode (seeded) for more varied demonstrations.
    randomize: bool = True


@dataclass
class GenerateConfig:
    #: LIBERO suite(s), comma-separated (libero_spatial, libero_object, libero_goal, libero_10, libero_90).
    suite: str = "libero_object"
    #: Task ids of the suite ("0,2,5-7"), or "all". Only with a single suite.
    task_ids: str = "all"
    #: Episodes per task in the dataset (successful ones with keep=success).
    episodes_per_task: int = 10
    #: ``success``: keep successful episodes only; ``all``: keep every attempt (``next.success`` tells them apart).
    keep: str = "success"
    #: Attempts per task before giving up on the target (keep=success); default 5 x episodes_per_task.
    max_attempts_per_task: int | None = None
    #: Episode step limit (20 Hz); default the suite's limit (280 for libero_object).
    max_steps: int | None = None
    actor: ActorConfig = field(default_factory=ActorConfig)
    #: Parallel env slots (episodes in flight).
    n_envs: int = 2
    #: Simulator worker processes (default: the pool's choice: cores - 1 when rendering).
    n_workers: int | None = None
    #: Camera resolution of the dataset (square); 256 as lerobot/libero.
    image_size: int = 256
    #: Seed of the plan (init state and episode seed of every attempt) and of the actor.
    seed: int = 0
    #: Where the dataset is written (it must not exist, unless resuming).
    output_dir: str = "outputs/generate/libero_object"
    #: Dataset id written into the metadata and used by --push_to_hub (default local/<output folder name>).
    repo_id: str | None = None
    #: Continue a killed or interrupted run in the same output_dir.
    resume: bool = False
    #: Job-array sharding: this process makes shard shard_index of num_shards (disjoint attempts).
    shard_index: int | None = None
    num_shards: int | None = None
    #: Also record LIBERO's privileged object state as ``observation.environment_state`` (float32), what a
    #: state-based diffrl expert (``--policy.use_images=false``) trains on and ``lerobot-diffrl-rl
    #: --env.obs_mode=state`` feeds it. Off: lerobot's LIBERO schema, as VLA recipes expect.
    record_env_state: bool = False
    #: Width of ``observation.environment_state`` (default: the longest object state among the selected tasks;
    #: shorter ones are zero-padded, longer ones cut). Set it to merge runs over different task sets.
    env_state_dim: int | None = None
    #: Video codec (lerobot's settings): libsvtav1 (lerobot's default), h264 or hevc.
    vcodec: str = "libsvtav1"
    #: Encoder threads (default: one per core).
    encoder_workers: int | None = None
    #: After the dataset is complete: write its card and upload it to the Hub as repo_id.
    push_to_hub: bool = False
    private: bool = False
    #: LIBERO asset folder (default: see lerobot-diffrl-setup-libero).
    libero_assets: str | None = None
    progress: bool = True


@dataclass
class GenerationResult:
    output: Path
    episodes: int
    frames: int
    per_task: dict[str, dict[str, Any]]
    seconds: float
    complete: bool = True
    pushed: list[str] = field(default_factory=list)


def work_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.work"


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ConfigError(f"--{name} must be an integer >= {minimum}; got {value!r}")


def validate(cfg: GenerateConfig) -> None:
    """Everything that can be checked without LIBERO, the Hub or the file system."""
    _positive("episodes_per_task", cfg.episodes_per_task)
    _positive("max_attempts_per_task", cfg.max_attempts_per_task)
    _positive("max_steps", cfg.max_steps)
    _positive("n_envs", cfg.n_envs)
    _positive("n_workers", cfg.n_workers)
    _positive("encoder_workers", cfg.encoder_workers)
    _positive("image_size", cfg.image_size, 16)
    _positive("env_state_dim", cfg.env_state_dim)
    if cfg.env_state_dim is not None and not cfg.record_env_state:
        raise ConfigError(
            "--env_state_dim sets the width of the recorded object state: add --record_env_state=true"
        )
    if cfg.keep not in KEEP_MODES:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP_MODES)}; got {cfg.keep!r}")
    if cfg.max_attempts_per_task is not None and cfg.max_attempts_per_task < cfg.episodes_per_task:
        raise ConfigError("--max_attempts_per_task cannot be below --episodes_per_task")
    if cfg.vcodec not in VCODECS:
        raise ConfigError(f"--vcodec must be one of {', '.join(VCODECS)}; got {cfg.vcodec!r}")
    if cfg.actor.type not in ACTOR_TYPES:
        raise ConfigError(f"unknown --actor.type {cfg.actor.type!r}; choose one of {', '.join(ACTOR_TYPES)}")
    if cfg.push_to_hub and not cfg.repo_id:
        raise ConfigError("--push_to_hub needs --repo_id=<user>/<dataset>")


def resolve_tasks(cfg: GenerateConfig) -> list[tuple[str, int]]:
    """(suite, task id) pairs of the run; :class:`UnknownTaskError` for unknown suites or ids."""
    suites = [s.strip() for s in cfg.suite.split(",") if s.strip()]
    if not suites:
        raise ConfigError("--suite is empty")
    for suite in suites:
        check_suite(suite)
    if len(suites) > 1 and cfg.task_ids not in ("all", None):
        raise ConfigError("--task_ids selects tasks of one suite; with several suites every task is used")
    return [(suite, t) for suite in suites for t in parse_task_ids(suite, cfg.task_ids)]


def resolve_env_state(
    cfg: GenerateConfig, tasks: list[tuple[str, int]]
) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """Width of ``observation.environment_state`` (None: not recorded) and the per-task layout (real length,
    objects), read from the tasks' BDDL files. Warns when a task's object state is cut to the width."""
    if not cfg.record_env_state:
        return None, {}
    layout = env_state_layout(task_spec(s, t) for s, t in tasks)
    longest = max(entry["length"] for entry in layout.values())
    dim = cfg.env_state_dim or longest
    cut = sorted(k for k, entry in layout.items() if entry["length"] > dim)
    if cut:
        log.warning(
            "--env_state_dim=%d cuts the object state of %s (longest %d values)", dim, ", ".join(cut), longest
        )
    return dim, layout


def _identity(
    cfg: GenerateConfig, tasks: list[tuple[str, int]], shard: ShardSpec, env_state_dim: int | None
) -> dict[str, Any]:
    ident = {name: getattr(cfg, name) for name in IDENTITY_FIELDS}
    ident["tasks"] = [f"{s}/{t}" for s, t in tasks]
    ident["actor"] = {"type": cfg.actor.type, "path": cfg.actor.path}
    ident["num_shards"] = shard.count
    ident[ENV_STATE_IDENTITY] = env_state_dim
    return ident


def _describe_env_state(dim: int | None) -> str:
    return f"with a {dim}-d observation.environment_state" if dim else "without observation.environment_state"


def _check_resume(work: Path, identity: dict[str, Any]) -> None:
    path = work / RUN_FILE
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    saved.setdefault(ENV_STATE_IDENTITY, None)  # runs from before object-state recording recorded none
    staged, wanted = saved[ENV_STATE_IDENTITY], identity[ENV_STATE_IDENTITY]
    if staged != wanted:
        same = f"--record_env_state=true --env_state_dim={staged}" if staged else "--record_env_state=false"
        raise DatasetError(
            f"--resume: the episodes staged in {work} were recorded {_describe_env_state(staged)}, this run "
            f"asks for them {_describe_env_state(wanted)}; a dataset cannot mix both. Resume with {same}, or "
            "use a new output_dir"
        )
    diffs = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in identity.items() if saved.get(k) != v]
    if diffs:
        raise ConfigError(
            f"--resume: the run in {work} was started with other settings ({'; '.join(diffs)}); use the same "
            "settings, or a new output_dir"
        )


def _device(requested: str, launched: bool) -> str:
    if requested != "auto":
        return requested
    if launched:
        return launched_device()
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _actor_provenance(cfg: GenerateConfig) -> dict[str, Any]:
    """What acted: the scripted expert's settings, or the checkpoint's origin, weights hash and configs."""
    if cfg.actor.type == "scripted":
        return {"kind": "scripted", "randomize": cfg.actor.randomize}
    checkpoint, repo_id = resolve_checkpoint(cfg.actor.path or "")
    policy_type = json.loads((checkpoint / "config.json").read_text()).get("type", cfg.actor.type)
    return {"kind": "policy", **checkpoint_info(checkpoint, repo_id, policy_type)}


def _per_task(scheduler: AttemptScheduler) -> dict[str, dict[str, Any]]:
    out = {}
    for (suite, task_id), s in scheduler.tasks.items():
        out[f"{suite}/{task_id}"] = {
            "suite": suite,
            "task_id": task_id,
            "task": task_spec(suite, task_id).language,
            "target": s.target,
            "attempts": s.finished,
            "successes": s.successes,
            "kept": s.kept,
        }
    return out


def _episodes_provenance(staged: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    episodes = []
    for i, (_, meta) in enumerate(staged):
        a = meta["attempt"]
        episodes.append(
            {
                "episode_index": i,
                "suite": a["suite"],
                "task_id": a["task_id"],
                "task": meta["task"],
                "attempt": a["number"],
                "init_index": a["init_index"],
                "seed": a["seed"],
                "success": a["success"],
                "length": a["length"],
            }
        )
    return episodes


def _wait_for_shards(work: Path, count: int, poll_s: float = 5.0) -> list[Path]:
    """Main process under accelerate: wait until every shard's dataset exists (shards write ``FAILED`` markers)."""
    shards = [work / ShardSpec(k, count).name for k in range(count)]
    while True:
        failed = [s for s in shards if (s / "FAILED").exists()]
        if failed:
            raise DatasetError(
                f"shard(s) failed: {', '.join(s.name for s in failed)}; see their logs, then resume"
            )
        if all((s / "dataset").is_dir() for s in shards):
            return [s / "dataset" for s in shards]
        time.sleep(poll_s)


def _push(cfg: GenerateConfig, root: Path) -> list[str]:
    """Write the dataset card and upload (``lerobot_diffrl.data.card`` / ``publish``, imported only when asked)."""
    from lerobot_diffrl.data.card import write_dataset_card
    from lerobot_diffrl.data.publish import push_dataset

    write_dataset_card(root, repo_id=cfg.repo_id)
    return push_dataset(root, cfg.repo_id, private=cfg.private, write_card=False)


def _dataset_totals(root: Path) -> tuple[int, int]:
    info = json.loads((root / "meta" / "info.json").read_text())
    return int(info["total_episodes"]), int(info["total_frames"])


def generate(cfg: GenerateConfig) -> GenerationResult:
    """Run (or resume) a generation; returns where the dataset is and what it holds."""
    validate(cfg)
    shard, launched = resolve_shard(cfg.shard_index, cfg.num_shards)
    if not launched:
        return _generate(cfg, shard, launched)
    # Under accelerate the main process waits for the other shards: a failing shard must say so.
    marker = work_dir(Path(cfg.output_dir).expanduser().resolve()) / shard.name / "FAILED"
    marker.unlink(missing_ok=True)
    try:
        return _generate(cfg, shard, launched)
    except BaseException as err:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{type(err).__name__}: {err}\n")
        raise


def _complete_output(cfg: GenerateConfig, output: Path, shard: ShardSpec, started: float) -> GenerationResult:
    """``--resume`` on a dataset that is already finished: nothing to generate (push it if asked)."""
    if not cfg.resume:
        raise ConfigError(
            f"{output} already exists; pass --resume=true to continue it, or another --output_dir"
        )
    if not (output / "meta" / "info.json").is_file():
        raise DatasetError(f"{output} exists but is not a generated dataset; choose another --output_dir")
    shutil.rmtree(work_dir(output), ignore_errors=True)
    episodes, frames = _dataset_totals(output)
    log.info("%s is already complete (%d episodes)", output, episodes)
    pushed = _push(cfg, output) if cfg.push_to_hub and shard.index == 0 else []
    return GenerationResult(output, episodes, frames, {}, time.perf_counter() - started, pushed=pushed)


def _attempt_scheduler(
    cfg: GenerateConfig, tasks: list[tuple[str, int]], shard: ShardSpec, staging: Staging
) -> AttemptScheduler:
    """This shard's attempts, minus those a killed run already finished (read from its staging area)."""
    finished = staging.finished() if staging.root.is_dir() else []
    if finished:
        log.info(
            "resume: %d attempts already finished (%d kept)", len(finished), sum(r.kept for r in finished)
        )
    max_attempts = cfg.max_attempts_per_task or (
        5 * cfg.episodes_per_task if cfg.keep == "success" else cfg.episodes_per_task
    )
    scheduler = AttemptScheduler(
        [((s, t), len(load_init_states(task_spec(s, t)))) for s, t in tasks],
        target=cfg.episodes_per_task,
        max_attempts=max(max_attempts, cfg.episodes_per_task),
        keep=cfg.keep,
        seed=cfg.seed,
        shard=shard,
        finished=finished,
    )
    if sum(t.target for t in scheduler.tasks.values()) == 0:
        raise ConfigError(
            f"{shard.name} gets no episodes: {len(tasks)} task(s) x {cfg.episodes_per_task} episodes split over "
            f"{shard.count} shards leaves none for shard {shard.index}; use fewer shards"
        )
    return scheduler


def _roll_out(
    cfg: GenerateConfig,
    tasks: list[tuple[str, int]],
    scheduler: AttemptScheduler,
    staging: Staging,
    identity: dict[str, Any],
    env_state_dim: int | None,
    launched: bool,
) -> None:
    """Run the remaining attempts in the env pool, committing each finished one to ``staging``."""
    first = [scheduler.next_attempt() for _ in range(cfg.n_envs)]
    first = [a for a in first if a is not None]  # fewer slots than n_envs when fewer attempts remain
    slots = [SlotSpec(a.suite, a.task_id, cfg.max_steps) for a in first]
    actor = make_actor(
        cfg.actor.type,
        slots,
        path=cfg.actor.path,
        device=_device(cfg.actor.device, launched),
        seed=cfg.seed,  # each episode's randomness follows from its attempt's seed, not from the shard
        randomize=cfg.actor.randomize,
        tasks=[SlotSpec(s, t, cfg.max_steps) for s, t in tasks],
    )
    pool = EnvPool(
        slots,
        # object states come with every observation in pixels_state mode (the actor's own needs aside)
        obs_mode="pixels_state" if env_state_dim is not None else RECORDING_POOL_MODE[actor.obs_mode],
        image_size=(cfg.image_size, cfg.image_size),
        seed=cfg.seed,
        n_workers=min(cfg.n_workers, len(slots)) if cfg.n_workers else None,
    )
    work = work_dir(Path(cfg.output_dir).expanduser().resolve())
    with pool:
        # Nothing is written before here: bad input has failed already.
        work.mkdir(parents=True, exist_ok=True)
        write_json_atomic(work / RUN_FILE, identity)
        staging.create()
        removed = staging.clean_partial()
        if removed:
            log.info("resume: removed %d uncommitted leftovers of the killed run", removed)
        features = dataset_features(cfg.image_size, env_state_dim)
        with EpisodeWriter(
            staging, features, FPS, vcodec=cfg.vcodec, encoder_workers=cfg.encoder_workers
        ) as writer:
            rollout = ShardRollout(
                scheduler,
                writer,
                actor,
                pool,
                first,
                image_size=(cfg.image_size, cfg.image_size),
                max_steps=cfg.max_steps,
                progress=cfg.progress,
                env_state_dim=env_state_dim,
            )
            obs, infos = pool.reset(seed=cfg.seed)
            rollout.run(obs, infos)


def _pack_shard(
    cfg: GenerateConfig,
    shard: ShardSpec,
    scheduler: AttemptScheduler,
    staging: Staging,
    shard_output: Path,
    env_state: tuple[int | None, Any],
    assets: Any,
) -> None:
    """Write the shard's committed episodes as one LeRobotDataset with its provenance; drop the staging."""
    env_state_dim, env_layout = env_state
    staged = staging.kept_episodes()
    for (suite, task_id), (kept, target) in scheduler.short().items():
        log.warning("%s/%d: %d of %d episodes after the attempt cap", suite, task_id, kept, target)
    if not staged:
        raise DatasetError(
            "no episode was kept (every attempt failed within the attempt cap); the dataset would be empty. "
            "Raise --max_attempts_per_task, use --keep=all, or check the actor"
        )
    provenance = build_provenance(
        actor=_actor_provenance(cfg),
        config=dataclasses.asdict(cfg),
        shard={"index": shard.index, "count": shard.count},
        per_task=_per_task(scheduler),
        episodes=_episodes_provenance(staged),
        assets=assets,
        env_state=env_state_provenance(env_state_dim, env_layout) if env_state_dim is not None else None,
    )
    output = Path(cfg.output_dir).expanduser().resolve()
    pack_episodes(
        staged,
        shard_output,
        repo_id=cfg.repo_id or f"local/{output.name}",
        features=dataset_features(cfg.image_size, env_state_dim),
        fps=FPS,
        robot_type=ROBOT_TYPE,
        progress=cfg.progress,
        meta_files={"provenance.json": provenance},
    )
    shutil.rmtree(staging.root, ignore_errors=True)


def _generate(cfg: GenerateConfig, shard: ShardSpec, launched: bool) -> GenerationResult:
    """Check, (re)start the shard's attempts, pack them, and under a launcher merge the shards."""
    started = time.perf_counter()
    paths = prepare_libero(cfg.libero_assets)
    tasks = resolve_tasks(cfg)
    output = Path(cfg.output_dir).expanduser().resolve()
    work = work_dir(output)
    shard_dir = work / shard.name
    shard_output = shard_dir / "dataset" if launched else output
    if output.exists():
        return _complete_output(cfg, output, shard, started)
    if shard_dir.exists() and not cfg.resume:
        raise ConfigError(
            f"an unfinished run is in {work}; pass --resume=true to continue it, or delete that folder"
        )
    env_state_dim, env_layout = resolve_env_state(cfg, tasks)
    identity = _identity(cfg, tasks, shard, env_state_dim)
    if cfg.resume:
        _check_resume(work, identity)
    staging = Staging(shard_dir / "staging")
    scheduler = _attempt_scheduler(cfg, tasks, shard, staging)
    if not shard_output.exists() and not scheduler.done():
        _roll_out(cfg, tasks, scheduler, staging, identity, env_state_dim, launched)
    if not shard_output.exists():
        _pack_shard(cfg, shard, scheduler, staging, shard_output, (env_state_dim, env_layout), paths.assets)
    if launched:
        if shard.index != 0:
            episodes, frames = _dataset_totals(shard_output)
            elapsed = time.perf_counter() - started
            return GenerationResult(
                shard_output, episodes, frames, _per_task(scheduler), elapsed, complete=False
            )
        merge_datasets(
            _wait_for_shards(work, shard.count), output, repo_id=cfg.repo_id or f"local/{output.name}"
        )
    shutil.rmtree(work, ignore_errors=True)
    episodes, frames = _dataset_totals(output)
    pushed = _push(cfg, output) if cfg.push_to_hub else []
    return GenerationResult(
        output, episodes, frames, _per_task(scheduler), time.perf_counter() - started, pushed=pushed
    )
