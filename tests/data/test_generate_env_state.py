"""--record_env_state: LIBERO's object state as observation.environment_state, exactly as RL feeds a policy.

Real LIBERO generations (tiny policy actors, 32x32 cameras, a few short episodes), a real ``lerobot-train`` of
a state-only diffrl on the result, and the refusals (resume, pack, merge) of episodes with and without it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from gen_helpers import run_lerobot_train, save_tiny_policy

from lerobot_diffrl.data.features import FPS, ROBOT_TYPE, dataset_features
from lerobot_diffrl.data.generation import (
    RUN_FILE,
    ActorConfig,
    GenerateConfig,
    _identity,
    generate,
    resolve_env_state,
    resolve_tasks,
    work_dir,
)
from lerobot_diffrl.data.merge import merge_datasets
from lerobot_diffrl.data.packing import pack_episodes
from lerobot_diffrl.data.sharding import ShardSpec, make_attempt
from lerobot_diffrl.data.staging import AttemptRecord, Staging, write_json_atomic
from lerobot_diffrl.data.writer import EpisodeFrames, EpisodeWriter
from lerobot_diffrl.envs.lerobot_batch import OBS_ENV_STATE, lerobot_batch
from lerobot_diffrl.envs.suites import task_spec
from lerobot_diffrl.errors import DatasetError
from lerobot_diffrl.scripts import generate as generate_cli
from lerobot_diffrl.scripts import merge as merge_cli

torch.set_num_threads(2)
SUITE, TASKS, PER_TASK, STEPS, SIZE = "libero_object", (0, 1), 2, 6, 32
#: libero_object scenes hold 7 movable objects: 7 x 14 object-state values.
OBJECT_DIM = 98


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root)


def columns(ds, *keys: str) -> dict[str, np.ndarray]:
    """Tabular columns of every frame (no video decoding), in dataset order."""
    table = ds.hf_dataset.select_columns(list(keys)).with_format(None)[:]
    return {k: np.asarray(table[k]) for k in keys}


def frames_of(ds, key: str) -> dict[int, np.ndarray]:
    """``key`` per episode index, (T, ...) in frame order."""
    cols = columns(ds, "episode_index", "frame_index", key)
    out = {}
    for ep in np.unique(cols["episode_index"]):
        rows = np.flatnonzero(cols["episode_index"] == ep)
        out[int(ep)] = cols[key][rows[np.argsort(cols["frame_index"][rows])]]
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """libero_object tasks 0 and 1, two 6-step attempts each (keep=all), acted by a tiny *camera* diffrl (so
    the pool runs pixels_state only because object states are recorded), with --record_env_state=true."""
    base = tmp_path_factory.mktemp("envstate")
    ckpt = save_tiny_policy(base / "ckpt", image_size=16)
    cfg = GenerateConfig(
        suite=SUITE,
        task_ids=",".join(map(str, TASKS)),
        episodes_per_task=PER_TASK,
        keep="all",
        max_steps=STEPS,
        image_size=SIZE,
        n_envs=2,
        actor=ActorConfig(type="diffrl", path=str(ckpt), device="cpu"),
        record_env_state=True,
        output_dir=str(base / "ds"),
        progress=False,
    )
    result = generate(cfg)
    assert result.episodes == len(TASKS) * PER_TASK and result.frames == len(TASKS) * PER_TASK * STEPS
    return result.output


@pytest.mark.slow
def test_env_state_is_the_object_state_lerobot_batch_feeds_a_policy(recorded: Path) -> None:
    """Every recorded frame's observation.environment_state equals lerobot_batch(obs, env_state_dim=D) of the
    same simulator state (episodes replayed from their init states with their recorded actions), D is the
    longest object state of the tasks, and its statistics are lerobot's over exactly those values."""
    from lerobot_diffrl.envs.pool import EnvPool, SlotSpec

    ds = load(recorded)
    ft = ds.meta.features[OBS_ENV_STATE]
    assert (ft["dtype"], tuple(ft["shape"]), ft["names"]) == ("float32", (OBJECT_DIM,), None)
    prov = json.loads((recorded / "meta" / "provenance.json").read_text())
    env = prov["env_state"]
    assert env["recorded"] and env["dim"] == OBJECT_DIM and env["key"] == OBS_ENV_STATE
    assert [f["size"] for f in env["per_object"]] == [3, 4, 3, 4]
    for t in TASKS:
        entry = env["per_task"][f"{SUITE}/{t}"]
        assert entry["length"] == 14 * len(entry["objects"]) == OBJECT_DIM
    assert env["per_task"][f"{SUITE}/0"]["objects"][0] == "alphabet_soup_1"  # BDDL order

    episodes = prov["episodes"]
    recorded_state, actions = frames_of(ds, OBS_ENV_STATE), frames_of(ds, "action")
    replayed = [next(i for i, e in enumerate(episodes) if e["task_id"] == t) for t in TASKS]  # one per task
    slots = [SlotSpec(SUITE, episodes[i]["task_id"], STEPS) for i in replayed]
    tasks = [episodes[i]["task"] for i in replayed]
    with EnvPool(slots, obs_mode="state", seed=0, n_workers=1) as pool:
        pool.set_init_plan(lambda slot, episode: episodes[replayed[slot]]["init_index"])
        obs, _ = pool.reset(seed=0)
        assert obs["object_state_len"].tolist() == [OBJECT_DIM] * len(slots)
        for step in range(STEPS):
            fed = lerobot_batch(obs, tasks, env_state_dim=OBJECT_DIM)[OBS_ENV_STATE].numpy()
            for slot, ep in enumerate(replayed):
                # the same simulator state; eef-relative entries differ by ~1e-6 between two simulator builds
                np.testing.assert_allclose(
                    recorded_state[ep][step],
                    fed[slot],
                    rtol=0,
                    atol=1e-5,
                    err_msg=f"episode {ep} step {step}",
                )
            obs, *_ = pool.step(np.stack([actions[ep][step] for ep in replayed]).astype(np.float64))

    values = np.concatenate([recorded_state[ep] for ep in range(len(episodes))])
    assert np.abs(values).max() > 0.05 and np.isfinite(values).all()
    # the provenance's layout: 7 objects x (pos 3, xyzw quat 4, pos to eef 3, quat to eef 4), unit quaternions
    blocks = values.reshape(len(values), 7, 14)
    np.testing.assert_allclose(np.linalg.norm(blocks[..., 3:7], axis=-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(blocks[..., 10:14], axis=-1), 1.0, atol=1e-4)
    # object positions differ between the init states of one task: the vector is the episode's own state
    first = [recorded_state[ep][0].reshape(7, 14)[:, :3] for ep in range(2)]
    assert np.abs(first[0] - first[1]).max() > 1e-3
    stats = ds.meta.stats[OBS_ENV_STATE]
    assert {"min", "max", "mean", "std", "q01", "q99"} <= set(stats)
    for key in ("min", "max", "mean", "std", "q01", "q99"):
        assert np.asarray(stats[key]).shape == (OBJECT_DIM,) and np.isfinite(np.asarray(stats[key])).all()
    np.testing.assert_array_equal(np.asarray(stats["min"]), values.min(axis=0))
    np.testing.assert_array_equal(np.asarray(stats["max"]), values.max(axis=0))
    np.testing.assert_allclose(np.asarray(stats["mean"]), values.mean(axis=0), atol=1e-5)


@pytest.mark.slow
def test_state_expert_bc_trains_on_it_and_runs_in_state_rl_mode(recorded: Path, tmp_path: Path) -> None:
    """lerobot-train --policy.type=diffrl --policy.use_images=false on the dataset gives a state expert that
    the RL trainer accepts with env.obs_mode=state and that acts on a non-rendering pool's observations."""
    from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
    from lerobot_diffrl.rl.policy_io import check_compatible, env_actions, load_policy, policy_inputs

    out = tmp_path / "train"
    run = run_lerobot_train(
        recorded,
        out,
        "--policy.use_images=false",
        "--batch_size=4",
        "--policy.horizon=8",
        "--policy.n_action_steps=4",
        "--policy.drop_n_last_frames=2",
        "--policy.unet_down_dims=[16,32]",
        "--policy.time_embed_dim=16",
        "--policy.critic_hidden_dim=32",
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    ckpt = out / "checkpoints" / "000002" / "pretrained_model"

    loaded = load_policy(str(ckpt), torch.device("cpu"))
    config = loaded.policy.config
    assert loaded.env_state_dim == OBJECT_DIM and config.used_image_features == {}
    assert tuple(config.input_features[OBS_ENV_STATE].shape) == (OBJECT_DIM,)
    check_compatible(loaded, action_dim=7, renders=False, obs_mode="state")  # what lerobot-diffrl-rl checks
    normalizer = next(s for s in loaded.preprocessor.steps if getattr(s, "stats", None))
    stats = load(recorded).meta.stats[OBS_ENV_STATE]
    # The policy normalises the object state with the dataset's statistics; entries the demos hardly moved are
    # widened to config.min_state_range around their centre (lerobot's MIN_MAX would divide by ~0 there).
    low, high = np.asarray(stats["min"], np.float64), np.asarray(stats["max"], np.float64)
    used_low = np.asarray(normalizer.stats[OBS_ENV_STATE]["min"], np.float64)
    used_high = np.asarray(normalizer.stats[OBS_ENV_STATE]["max"], np.float64)
    wide = high - low >= config.min_state_range
    assert config.min_state_range == 0.05 and wide.any() and (~wide).any()
    np.testing.assert_allclose(used_low[wide], low[wide], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(used_high[wide], high[wide], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose((used_low + used_high)[~wide], (low + high)[~wide], atol=1e-6)
    np.testing.assert_allclose((used_high - used_low)[~wide], config.min_state_range, rtol=1e-5)

    tasks = [task_spec(SUITE, t).language for t in TASKS]
    with EnvPool([SlotSpec(SUITE, t) for t in TASKS], obs_mode="state", seed=3, n_workers=1) as pool:
        obs, _ = pool.reset(seed=3)
        assert "pixels" not in obs  # nothing rendered
        with torch.no_grad():
            chunk = loaded.policy.predict_action_chunk(policy_inputs(loaded, obs, tasks))
        actions = env_actions(loaded, chunk)
        assert actions.shape == (2, 4, 7) and np.isfinite(actions).all()
        pool.step(np.clip(actions[:, 0], -1, 1))


@pytest.mark.slow
def test_explicit_width_zero_pads_and_an_env_state_actor_gets_its_own(tmp_path: Path) -> None:
    """--env_state_dim wider than the scene: zeros beyond the task's 98 values (statistics 0 there too), while
    a state actor with its own 64-d observation.environment_state input still acts (lerobot_batch at 64)."""
    ckpt = save_tiny_policy(tmp_path / "ckpt", env_state_dim=64)
    result = generate(
        GenerateConfig(
            suite=SUITE,
            task_ids="0",
            episodes_per_task=1,
            keep="all",
            max_steps=3,
            image_size=SIZE,
            n_envs=1,
            actor=ActorConfig(type="diffrl", path=str(ckpt), device="cpu"),
            record_env_state=True,
            env_state_dim=112,
            output_dir=str(tmp_path / "ds"),
            progress=False,
        )
    )
    ds = load(result.output)
    assert tuple(ds.meta.features[OBS_ENV_STATE]["shape"]) == (112,)
    values = frames_of(ds, OBS_ENV_STATE)[0]
    assert values.shape == (3, 112)
    assert not values[:, OBJECT_DIM:].any() and (np.abs(values[:, :OBJECT_DIM]) > 1e-4).sum() > 3 * 60
    stats = ds.meta.stats[OBS_ENV_STATE]
    assert not np.asarray(stats["min"])[OBJECT_DIM:].any() and not np.asarray(stats["max"])[OBJECT_DIM:].any()
    actions = frames_of(ds, "action")[0]
    assert actions.std() > 0 and np.abs(actions).max() <= 0.5 + 1e-6  # the 64-d state actor acted
    env = json.loads((result.output / "meta" / "provenance.json").read_text())["env_state"]
    assert env["dim"] == 112 and env["per_task"][f"{SUITE}/0"]["length"] == OBJECT_DIM


def test_width_defaults_to_the_longest_object_state_of_the_tasks(caplog) -> None:
    """Read from the tasks' BDDL files, no simulator: libero_10 scenes hold 8 and 2 objects."""
    cfg = GenerateConfig(suite="libero_10", task_ids="0,2", record_env_state=True)
    dim, layout = resolve_env_state(cfg, resolve_tasks(cfg))
    assert dim == 112 and {k: v["length"] for k, v in layout.items()} == {
        "libero_10/0": 112,
        "libero_10/2": 28,
    }
    assert resolve_env_state(GenerateConfig(suite="libero_10", task_ids="0,2"), [("libero_10", 0)]) == (
        None,
        {},
    )
    with caplog.at_level(logging.WARNING, logger="lerobot_diffrl.data.generation"):
        narrow = GenerateConfig(suite="libero_10", task_ids="0,2", record_env_state=True, env_state_dim=64)
        assert resolve_env_state(narrow, resolve_tasks(narrow))[0] == 64
    assert "cuts the object state of libero_10/0" in caplog.text and "libero_10/2" not in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env_state_dim=64"], "add --record_env_state=true"),
        (["--record_env_state=true", "--env_state_dim=0"], "--env_state_dim must be an integer >= 1"),
    ],
)
def test_bad_env_state_flags_fail_with_one_error_line(args, message, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert generate_cli.main([f"--output_dir={out}", "--progress=false", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert not out.exists() and not work_dir(out).exists()


def _killed_run(out: Path, record_env_state: bool) -> Path:
    """What a run killed before its first episode leaves: ``run.json`` and an empty staging area."""
    cfg = GenerateConfig(suite=SUITE, task_ids="0", record_env_state=record_env_state, output_dir=str(out))
    tasks, shard = resolve_tasks(cfg), ShardSpec(0, 1)
    work = work_dir(out.resolve())
    Staging(work / shard.name / "staging").create()
    write_json_atomic(work / RUN_FILE, _identity(cfg, tasks, shard, resolve_env_state(cfg, tasks)[0]))
    return work / RUN_FILE


@pytest.mark.parametrize(
    ("first", "resume_args", "message"),
    [
        (True, [], "recorded with a 98-d observation.environment_state, this run asks for them without"),
        (True, ["--record_env_state=true", "--env_state_dim=112"], "asks for them with a 112-d"),
        (False, ["--record_env_state=true"], "recorded without observation.environment_state"),
    ],
)
def test_resume_refuses_another_env_state_setting(
    first, resume_args, message, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "ds"
    run_file = _killed_run(out, first)
    saved = run_file.read_text()
    argv = [f"--output_dir={out}", f"--suite={SUITE}", "--task_ids=0", "--resume=true", "--progress=false"]
    assert generate_cli.main(argv + resume_args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err and "new output_dir" in err, err
    hint = "--record_env_state=true --env_state_dim=98" if first else "--record_env_state=false"
    assert hint in err
    assert run_file.read_text() == saved and not out.exists()  # nothing touched


def test_runs_from_before_env_state_resume_without_it(tmp_path: Path) -> None:
    """A run.json written before the field existed (no env_state_dim) resumes as 'no object state'."""
    from lerobot_diffrl.data.generation import _check_resume

    run_file = _killed_run(tmp_path / "ds", False)
    saved = json.loads(run_file.read_text())
    identity = dict(saved)
    del saved["env_state_dim"]
    run_file.write_text(json.dumps(saved))
    _check_resume(run_file.parent, identity)
    with pytest.raises(DatasetError, match="without observation.environment_state"):
        _check_resume(run_file.parent, {**identity, "env_state_dim": 98})


# -- writer, packing and merge: synthetic episodes, no simulator ---------------------------------------------
def episode(seed: int, length: int, env_dim: int | None) -> EpisodeFrames:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (length, SIZE, SIZE, 3), dtype=np.uint8)
    return EpisodeFrames(
        images={"observation.images.image": image, "observation.images.image2": image[:, ::-1].copy()},
        state=rng.normal(size=(length, 8)).astype(np.float32),
        action=rng.uniform(-1, 1, (length, 7)).astype(np.float32),
        reward=np.zeros(length, np.float32),
        done=np.arange(length) == length - 1,
        success=np.zeros(length, bool),
        task="pick up the soup",
        env_state=None if env_dim is None else rng.normal(size=(length, env_dim)).astype(np.float32),
    )


def staged(root: Path, env_dim: int | None, seed: int) -> Staging:
    staging = Staging(root)
    with EpisodeWriter(staging, dataset_features(SIZE, env_dim), FPS, encoder_workers=2) as writer:
        ep = episode(seed, 4, env_dim)
        attempt = make_attempt(0, SUITE, 0, seed, 50)
        writer.add(AttemptRecord.of(attempt, success=False, kept=True, length=4, task=ep.task), ep)
    return staging


def pack(staging: Staging, root: Path, env_dim: int | None) -> Path:
    features = dataset_features(SIZE, env_dim)
    return pack_episodes(
        staging.kept_episodes(), root, repo_id="local/t", features=features, fps=FPS, robot_type=ROBOT_TYPE,
        progress=False,
    )  # fmt: skip


def test_writer_packing_and_merge_refuse_mixing_env_state(tmp_path: Path, capsys) -> None:
    with EpisodeWriter(Staging(tmp_path / "w"), dataset_features(SIZE, 5), FPS) as writer:
        attempt = make_attempt(0, SUITE, 0, 0, 50)
        record = AttemptRecord.of(attempt, success=False, kept=True, length=4, task="t")
        with pytest.raises(
            DatasetError, match="records observation.environment_state but the episode has none"
        ):
            writer.add(record, episode(0, 4, None))
        with pytest.raises(DatasetError, match=r"observation.environment_state: expected shape \(4, 5\)"):
            writer.add(record, episode(0, 4, 6))

    with_env = staged(tmp_path / "a", 5, seed=1)
    with pytest.raises(DatasetError, match=r"has extra \['observation.environment_state'\]"):
        pack(with_env, tmp_path / "bad1", None)
    with pytest.raises(DatasetError, match="has 5 values per frame, the dataset 6"):
        pack(with_env, tmp_path / "bad2", 6)
    with pytest.raises(DatasetError, match=r"lacks \['observation.environment_state'\]"):
        pack(staged(tmp_path / "b", None, seed=2), tmp_path / "bad3", 5)
    assert not any(p.name.startswith(("bad", ".bad")) for p in tmp_path.iterdir())  # nothing half-written

    a = pack(with_env, tmp_path / "ds_a", 5)
    a2 = pack(staged(tmp_path / "a2", 5, seed=3), tmp_path / "ds_a2", 5)
    plain = pack(staged(tmp_path / "c", None, seed=4), tmp_path / "ds_plain", None)
    wide = pack(staged(tmp_path / "d", 6, seed=5), tmp_path / "ds_wide", 6)
    with pytest.raises(DatasetError, match="ds_a has 5-d observation.environment_state; .*ds_plain has no"):
        merge_datasets([a, plain], tmp_path / "m1")
    with pytest.raises(DatasetError, match="ds_a has 5-d .*ds_wide has 6-d"):
        merge_datasets([a, wide], tmp_path / "m2")
    assert merge_cli.main([f"--inputs=[{plain},{a}]", f"--output_dir={tmp_path / 'm3'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot mix datasets with and without the same object state"), err
    assert "--record_env_state" in err and not (tmp_path / "m3").exists()

    merged = load(merge_datasets([a, a2], tmp_path / "m4"))  # same width: joined, values and stats kept
    values = np.concatenate(list(frames_of(merged, OBS_ENV_STATE).values()))
    sources = [frames_of(load(r), OBS_ENV_STATE)[0] for r in (a, a2)]
    np.testing.assert_array_equal(values, np.concatenate(sources))
    np.testing.assert_array_equal(np.asarray(merged.meta.stats[OBS_ENV_STATE]["max"]), values.max(axis=0))
