"""lerobot-diffrl-generate on real LIBERO: the scripted expert, a policy checkpoint, shards + merge, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from gen_helpers import BIN, TASK0, cli_env, run_lerobot_train, save_tiny_policy

from lerobot_diffrl.data.features import dataset_features
from lerobot_diffrl.data.generation import ActorConfig, GenerateConfig, generate, work_dir
from lerobot_diffrl.data.provenance import sha256_file
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts import generate as generate_cli

torch.set_num_threads(2)
SIZE = 64
SHARED_ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "libero_assets"
DEFAULT_COLUMNS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> Path:
    """One successful libero_object task-0 episode by the scripted expert (64x64 cameras)."""
    out = tmp_path_factory.mktemp("gen") / "expert"
    cfg = GenerateConfig(
        suite="libero_object",
        task_ids="0",
        episodes_per_task=1,
        max_steps=200,
        image_size=SIZE,
        n_envs=1,
        output_dir=str(out),
        actor=ActorConfig(type="scripted"),
        progress=False,
    )
    result = generate(cfg)
    assert result.output == out and result.episodes == 1
    return out


@pytest.mark.slow
def test_scripted_expert_dataset_loads_with_lerobot_conventions(scripted: Path) -> None:
    ds = load(scripted)
    assert ds.fps == 20 and ds.num_episodes == 1 and ds.meta.robot_type == "panda"
    assert set(ds.features) == set(dataset_features(SIZE)) | DEFAULT_COLUMNS
    for key, ft in dataset_features(SIZE).items():
        assert (ds.features[key]["dtype"], tuple(ds.features[key]["shape"])) == (
            ft["dtype"],
            tuple(ft["shape"]),
        )
    first, last = ds[0], ds[ds.num_frames - 1]
    assert first["observation.images.image"].shape == (3, SIZE, SIZE) and first[
        "observation.state"
    ].shape == (8,)
    assert first["action"].shape == (7,) and first["task"] == TASK0
    assert bool(last["next.success"]) and bool(last["next.done"]) and float(last["next.reward"]) == 1.0
    assert not bool(first["next.done"]) and ds.num_frames <= 200  # success within the 200-step limit
    prov = json.loads((scripted / "meta" / "provenance.json").read_text())
    assert prov["actor"]["kind"] == "scripted" and prov["per_task"]["libero_object/0"]["kept"] == 1
    assert prov["episodes"][0]["length"] == ds.num_frames and prov["episodes"][0]["init_index"] == 0
    assets = prov["libero_assets"]
    assert assets["stand_in_assets"] == bool(assets["stand_in_textures"]) and prov["versions"]["lerobot"]
    if (
        Path(assets["path"]).resolve() == SHARED_ASSETS.resolve()
    ):  # the offline tree CI uses has 15 flat textures
        assert assets["stand_in_assets"] and len(assets["stand_in_textures"]) == 15
    assert not work_dir(scripted).exists()


@pytest.mark.slow
def test_recorded_images_are_upright_pool_renders(scripted: Path) -> None:
    """Replay the episode's init state and first actions in a fresh pool: the decoded video frames are the
    pool's renders rotated 180 degrees (lerobot's LIBERO orientation), up to codec loss."""
    from lerobot_diffrl.envs.pool import EnvPool, SlotSpec

    ds = load(scripted)
    init_index = json.loads((scripted / "meta" / "provenance.json").read_text())["episodes"][0]["init_index"]
    with EnvPool([SlotSpec("libero_object", 0, 200)], obs_mode="pixels", image_size=(SIZE, SIZE)) as pool:
        pool.set_init_plan(lambda slot, episode: init_index)
        obs, _ = pool.reset(seed=0)
        for t in range(4):
            item = ds[t]
            for name in ("image", "image2"):
                decoded = item[f"observation.images.{name}"].permute(1, 2, 0).numpy() * 255.0
                rendered = obs["pixels"][name][0].astype(np.float64)
                upright_err = np.abs(decoded - rendered[::-1, ::-1]).mean()
                assert upright_err < 6.0, (t, name, upright_err)
                assert np.abs(decoded - rendered).mean() > 2 * upright_err  # not the raw (upside-down) view
            np.testing.assert_allclose(item["observation.state"].numpy(), obs["agent_pos"][0], atol=1e-5)
            obs, *_ = pool.step(item["action"].numpy()[None].astype(np.float64))


@pytest.mark.slow
def test_lerobot_train_trains_diffrl_on_the_generated_dataset(scripted: Path, tmp_path: Path) -> None:
    from lerobot.policies.factory import get_policy_class

    import lerobot_diffrl.policies  # noqa: F401  (registers diffrl in this process)

    out = tmp_path / "train"
    run = run_lerobot_train(
        scripted,
        out,
        "--batch_size=2",
        "--policy.vision_width=8",
        "--policy.unet_down_dims=[16,32]",
        "--policy.time_embed_dim=16",
        "--policy.image_feature_dim=16",
        "--policy.critic_hidden_dim=32",
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    policy = get_policy_class("diffrl").from_pretrained(out / "checkpoints" / "000002" / "pretrained_model")
    assert policy.config.tasks == [TASK0]
    assert set(policy.config.input_features) == {
        "observation.images.image",
        "observation.images.image2",
        "observation.state",
    }


@pytest.mark.slow
def test_torchrun_shards_generate_disjoint_attempts_and_merge(tmp_path: Path) -> None:
    """Two processes (torchrun, as accelerate launch starts them on GPUs): each generates its shard with a tiny
    diffrl checkpoint (keep=all), the main one merges both into output_dir."""
    ckpt = save_tiny_policy(tmp_path / "ckpt")
    out = tmp_path / "ds"
    cmd = [
        str(BIN / "torchrun"),
        "--nproc_per_node=2",
        str(BIN / "lerobot-diffrl-generate"),
        "--suite=libero_object",
        "--task_ids=0",
        "--episodes_per_task=3",
        "--keep=all",
        "--max_steps=5",
        "--image_size=32",
        "--n_envs=1",
        "--actor.type=diffrl",
        f"--actor.path={ckpt}",
        f"--output_dir={out}",
        "--progress=false",
    ]
    run = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(cli_env(), OMP_NUM_THREADS="1"), timeout=900
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert not work_dir(out).exists()
    ds = load(out)
    assert ds.num_episodes == 3 and ds.num_frames == 15 and ds.meta.episodes["episode_index"] == [0, 1, 2]
    prov = json.loads((out / "meta" / "provenance.json").read_text())
    assert [m["shard"] for m in prov["merged_from"]] == [{"index": 0, "count": 2}, {"index": 1, "count": 2}]
    assert [e["attempt"] for e in prov["episodes"]] == [0, 2, 1]  # shard 0 owns attempts 0, 2; shard 1 owns 1
    assert [e["init_index"] for e in prov["episodes"]] == [0, 2, 1]  # disjoint init states
    assert len({e["seed"] for e in prov["episodes"]}) == 3
    entry = prov["per_task"]["libero_object/0"]
    assert (entry["target"], entry["attempts"], entry["kept"]) == (3, 3, 3)
    assert prov["actor"]["model_sha256"] == sha256_file(ckpt / "model.safetensors")
    assert prov["actor"]["policy_type"] == "diffrl"
    actions = torch.stack([ds[i]["action"] for i in range(ds.num_frames)])
    assert actions.abs().max() <= 0.5 + 1e-6 and actions.std() > 0  # unnormalised with the checkpoint's stats
    assert not any(bool(ds[i]["next.success"]) for i in range(ds.num_frames))  # keep=all keeps failures


@pytest.mark.slow
def test_push_offline_is_one_clear_error_after_the_dataset_is_complete(scripted: Path, capsys) -> None:
    """--push_to_hub runs after the dataset is final: offline it fails cleanly and leaves the dataset intact."""
    argv = [f"--output_dir={scripted}", "--resume=true", "--push_to_hub=true", "--repo_id=someone/expert"]
    assert generate_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "offline" in err.lower(), err
    assert (scripted / "README.md").is_file()  # the card was written before the upload was tried
    assert load(scripted).num_episodes == 1


@pytest.mark.parametrize("kind", ["diffrl", "gaussrl"])
def test_policy_actor_batches_replans_and_resizes_images(kind: str, tmp_path: Path) -> None:
    """Per-slot action queues of n_action_steps, re-planning on reset, images resized to the policy's size."""
    from lerobot_diffrl.data.actors import PolicyActor
    from lerobot_diffrl.envs.pool import SlotSpec

    run = tmp_path / "run"  # a training run's output folder: the checkpoint is found inside it
    ckpt = save_tiny_policy(run / "checkpoints" / "last" / "pretrained_model", image_size=16, kind=kind)
    actor = PolicyActor(str(run), [SlotSpec("libero_object", 0)] * 3, expected_type=kind)
    assert actor.policy_type == kind and actor.checkpoint == ckpt.resolve()
    assert actor.obs_mode == "pixels" and actor.n_action_steps == 4 and actor.tasks == [TASK0] * 3
    rng = np.random.default_rng(0)
    obs = {
        "agent_pos": rng.normal(size=(3, 8)).astype(np.float32),
        "pixels": {k: rng.integers(0, 255, (3, 40, 40, 3), dtype=np.uint8) for k in ("image", "image2")},
    }
    planned = []
    original = actor.plan
    actor.plan = lambda o, slots: planned.append(list(slots)) or original(o, slots)
    actions = [actor.act(obs) for _ in range(5)]
    assert planned == [[0, 1, 2], [0, 1, 2]]  # one batched plan per 4 steps
    assert all(a.shape == (3, 7) and np.abs(a).max() <= 0.5 + 1e-6 for a in actions)
    actor.reset(np.array([1]), obs, {})
    actor.act(obs)
    assert planned[-1] == [1]  # only the slot that restarted re-plans
    with pytest.raises(ConfigError, match="cameras"):
        actor.plan({**obs, "pixels": {"image": obs["pixels"]["image"]}}, np.array([0]))  # a camera is missing


def test_an_episodes_policy_actions_depend_on_its_own_seed_not_on_its_slot_or_neighbours(
    tmp_path: Path,
) -> None:
    """Sharded, resumed and re-run generations repeat each episode only if its actions follow from its attempt:
    the same observation and episode seed give the same chunk in any slot, beside any other episode."""
    from lerobot_diffrl.data.actors import PolicyActor
    from lerobot_diffrl.envs.pool import SlotSpec

    ckpt = save_tiny_policy(tmp_path / "policy", image_size=16, kind="diffrl")
    rng = np.random.default_rng(0)
    obs_a, obs_b = (
        {
            "agent_pos": rng.normal(size=(1, 8)).astype(np.float32),
            "pixels": {k: rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8) for k in ("image", "image2")},
        }
        for _ in range(2)
    )

    def stack(*parts: dict) -> dict:
        return {
            "agent_pos": np.concatenate([p["agent_pos"] for p in parts]),
            "pixels": {k: np.concatenate([p["pixels"][k] for p in parts]) for k in ("image", "image2")},
        }

    def first_chunk(obs: dict, seeds: list[int]) -> np.ndarray:
        actor = PolicyActor(str(ckpt), [SlotSpec("libero_object", 0)] * len(seeds))
        actor.reset(np.arange(len(seeds)), obs, {"episode_seed": np.array(seeds)})
        return actor.plan(obs, np.arange(len(seeds)))

    together = first_chunk(stack(obs_a, obs_b), [11, 22])
    swapped = first_chunk(stack(obs_b, obs_a), [22, 11])
    alone = first_chunk(obs_a, [11])
    np.testing.assert_array_equal(together[0], swapped[1])
    np.testing.assert_array_equal(together[0], alone[0])
    assert not np.allclose(first_chunk(obs_a, [12])[0], alone[0])  # another episode seed, other noise


BAD_INPUT = [
    (["--suite=libero_nope"], "unknown LIBERO suite"),
    (["--task_ids=99"], "task id 99"),
    (["--episodes_per_task=0"], "episodes_per_task"),
    (["--actor.type=human"], "unknown --actor.type"),
    (["--actor.type=policy"], "needs --actor.path"),
    (["--actor.type=policy", "--actor.path=/nonexistent/ckpt"], "does not exist"),
    (["--actor.type=diffrl", "--actor.path=someone/not-cached-policy"], "Hugging Face Hub"),
    (["--keep=some"], "--keep"),
    (["--shard_index=1", "--num_shards=4", "--task_ids=0", "--episodes_per_task=1"], "gets no episodes"),
    (["--shard_index=1"], "both --shard_index and --num_shards"),
    (["--push_to_hub=true"], "--repo_id"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_fails_with_one_error_line_and_writes_nothing(
    args, message, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code = generate_cli.main([f"--output_dir={out}", "--progress=false", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1], err
    assert not out.exists() and not work_dir(out).exists()


def test_foreign_checkpoints_and_existing_output_are_refused(tmp_path: Path, capsys) -> None:
    six = save_tiny_policy(tmp_path / "six", action_dim=6)
    out = tmp_path / "out"
    assert generate_cli.main([f"--output_dir={out}", "--actor.type=policy", f"--actor.path={six}"]) == 2
    assert "7-d actions" in capsys.readouterr().err
    (six / "model.safetensors").unlink()
    assert generate_cli.main([f"--output_dir={out}", "--actor.type=policy", f"--actor.path={six}"]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
    assert not out.exists() and not work_dir(out).exists()

    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert generate_cli.main([f"--output_dir={out}"]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert not work_dir(out).exists()


@pytest.mark.slow
def test_report_measures_the_generated_dataset(scripted: Path, tmp_path: Path, capsys) -> None:
    """The issue's chain: scripted expert -> dataset -> lerobot-diffrl-report (success from provenance)."""
    from lerobot_diffrl.scripts.report import main as report_main

    out = tmp_path / "report"
    assert report_main([f"--datasets=[{scripted}]", "--labels=[expert]", f"--output_dir={out}"]) == 0
    (ds,) = json.loads((out / "report.json").read_text())["datasets"]
    overall = ds["overall"]
    assert ds["label"] == "expert" and ds["fps"] == 20 and ds["n_episodes"] == 1
    assert ds["success_source"].startswith("provenance")
    assert overall["success_rate"] == 1.0  # one attempt, one success (keep=success)
    assert overall["length_mean"] == load(scripted).num_frames
    assert 0.0 < overall["jerk"] < 1.0 and 0.0 < overall["abs_delta_action"] < 1.0
    assert 0.3 < overall["path_length_mean"] < 3.0  # metres: reach, lift, carry to the basket
    assert (out / "report.md").is_file() and list(out.glob("*.png"))
    # the generator stored the episode's figures with the dataset: the same numbers the report computes
    from lerobot_diffrl.data.quality import stored_quality

    [stored] = stored_quality(scripted).values()
    assert stored["length"] == overall["length_mean"]
    for key in ("jerk", "abs_delta_action", "path_length", "sparc", "ldlj"):
        assert stored[key] == pytest.approx(overall["path_length_mean" if key == "path_length" else key]), key
    # reach, grasp, lift, carry: several submovements, less smooth than one minimum-jerk reach (-1.40, -5.32)
    assert overall["sparc"] < -1.4 and overall["ldlj"] < -5.3
