"""Mixing the project's dataset with another LeRobotDataset at a frame ratio, and selecting LIBERO suites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import write_tiny_libero_dataset

from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.recipes.mixing import (
    MixSource,
    build_mixed_dataset,
    plan_mix,
    select_suite_episodes,
    subsample_to_frames,
)

OBJECT_TASKS = (
    "pick up the alphabet soup and place it in the basket",
    "pick up the cream cheese and place it in the basket",
)
GOAL_TASK = "open the top drawer and put the bowl inside"


def test_plan_cuts_only_the_over_represented_source_to_the_closest_whole_episodes() -> None:
    lengths = [np.full(10, 100), np.full(4, 50)]  # 1000 frames vs 200
    candidates = [list(range(10)), list(range(4))]
    keep_a, keep_b = plan_mix(lengths, candidates, ratio=0.5, seed=0)
    assert keep_b == [0, 1, 2, 3] and len(keep_a) == 2  # 200 frames of A for 200 of B
    keep_a, keep_b = plan_mix(lengths, candidates, ratio=0.8, seed=0)
    assert len(keep_a) == 8 and len(keep_b) == 4  # 800 / (800 + 200)
    keep_a, keep_b = plan_mix(lengths, candidates, ratio=0.95, seed=0)
    assert (
        len(keep_a) == 10 and len(keep_b) == 1
    )  # A is short: cut B to 1000 * 0.05 / 0.95 = 52.6 -> 1 episode
    # seeded: the same seed picks the same episodes, another seed other ones
    assert plan_mix(lengths, candidates, 0.5, seed=3) == plan_mix(lengths, candidates, 0.5, seed=3)
    picks = {tuple(plan_mix(lengths, candidates, 0.5, seed=s)[0]) for s in range(10)}
    assert len(picks) > 1


def test_subsample_keeps_at_least_one_episode_and_stops_at_the_closest_total() -> None:
    lengths = np.array([30, 30, 30, 30])
    assert len(subsample_to_frames([0, 1, 2, 3], lengths, target=1, seed=0)) == 1
    assert len(subsample_to_frames([0, 1, 2, 3], lengths, target=50, seed=0)) == 2  # 60 is closer than 30
    assert len(subsample_to_frames([0, 1, 2, 3], lengths, target=500, seed=0)) == 4


def test_ratio_must_be_a_share() -> None:
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        plan_mix([np.ones(2), np.ones(2)], [[0, 1], [0, 1]], ratio=1.0)


def test_suite_selection_matches_instructions() -> None:
    tasks = [[OBJECT_TASKS[0]], [GOAL_TASK], ["Pick up the  cream cheese and place it in the basket"], []]
    instructions = {" ".join(t.split()) for t in OBJECT_TASKS}
    assert select_suite_episodes(tasks, instructions) == [0, 2]
    assert select_suite_episodes(tasks, None) == [0, 1, 2, 3]


@pytest.mark.slow
def test_mixed_dataset_has_the_ratio_provenance_and_real_frames(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rl = write_tiny_libero_dataset(
        tmp_path / "rl", repo_id="local/rl", episodes=4, frames=10, tasks=OBJECT_TASKS
    )
    human = write_tiny_libero_dataset(
        tmp_path / "human", repo_id="local/human", episodes=3, frames=12, tasks=(OBJECT_TASKS[1], GOAL_TASK)
    )
    out = tmp_path / "mix"
    # libero_object keeps all 4 RL episodes (40 frames) and human episodes 0 and 2 (24 frames); a 25% RL share
    # asks for 0.25 / 0.75 * 24 = 8 RL frames: one episode of 10.
    build_mixed_dataset(
        MixSource("local/rl", rl),
        "local/mix",
        out,
        mix_with=MixSource("local/human", human),
        ratio=0.25,
        suites=["libero_object"],
        seed=0,
    )
    record = json.loads((out / "meta" / "mixing.json").read_text())
    rl_src, human_src = record["sources"]
    assert (rl_src["episodes_used"], rl_src["frames_used"]) == (1, 10)
    assert human_src["source_episode_indices"] == [0, 2] and human_src["frames_used"] == 24
    assert record["achieved_ratio"] == pytest.approx(10 / 34)
    assert human_src["mixed_episode_range"] == [1, 3]

    mixed = LeRobotDataset("local/mix", root=out)
    assert mixed.meta.total_episodes == 3 and mixed.meta.total_frames == 34
    assert set(mixed.meta.tasks.index) <= set(OBJECT_TASKS)  # the other suite's episode was left out
    assert {"q01", "q99"} <= set(mixed.meta.stats["action"])  # pi05's quantile normalisation works on it
    # Frame 0 of the mix is the first frame of the chosen RL episode, unchanged.
    source = LeRobotDataset("local/rl", root=rl)
    chosen = rl_src["source_episode_indices"][0]
    start = int(source.meta.episodes["dataset_from_index"][chosen])
    assert np.allclose(mixed[0]["action"].numpy(), source[start]["action"].numpy())
    assert mixed[0]["task"] == source[start]["task"]
    assert not list(tmp_path.glob(".*mixing-tmp"))

    # The model card of a policy trained on the mix names both sources and the achieved ratio.
    from lerobot_diffrl.recipes.vla_card import render_vla_card

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"type": "pi05", "chunk_size": 10}))
    train = {
        "job_name": "pi05_mix",
        "steps": 30000,
        "batch_size": 32,
        "dataset": {"repo_id": "local/mix", "root": str(out)},
        "policy": {
            "type": "pi05",
            "pretrained_path": "lerobot/pi05_base",
            "chunk_size": 10,
            "n_action_steps": 10,
        },
        "optimizer": {"type": "adamw", "lr": 5e-5},
        "scheduler": {
            "type": "cosine_decay_with_warmup",
            "num_warmup_steps": 10000,
            "num_decay_steps": 30000,
        },
    }
    (ckpt / "train_config.json").write_text(json.dumps(train))
    card = render_vla_card(ckpt)
    assert "base_model: lerobot/pi05_base" in card
    assert "- local/mix" in card and "- local/rl" in card and "- local/human" in card
    assert "`local/rl` 29.4%, `local/human` 70.6%" in card
    assert "`local/human`: 2 of 3 episodes, 24 frames" in card
    assert "schedule as run" not in card  # 30000 steps: the schedule runs as configured
    assert "Not evaluated yet" in card


@pytest.mark.slow
def test_mismatched_features_are_refused_before_writing(tmp_path: Path) -> None:
    a = write_tiny_libero_dataset(tmp_path / "a", repo_id="local/a", episodes=1, frames=4)
    b = write_tiny_libero_dataset(
        tmp_path / "b", repo_id="local/b", episodes=1, frames=4, size=16, state_dim=9
    )
    out = tmp_path / "mix"
    with pytest.raises(DatasetError) as err:
        build_mixed_dataset(
            MixSource("local/a", a), "local/mix", out, mix_with=MixSource("local/b", b), ratio=0.5
        )
    message = str(err.value)
    assert "observation.state: float32 [8] vs float32 [9]" in message
    assert "observation.images.image: image [32, 32, 3] vs image [16, 16, 3]" in message
    assert "convert one to the other's features first" in message
    with pytest.raises(DatasetError):  # shapes are never "harmonized"
        build_mixed_dataset(
            MixSource("local/a", a),
            "local/mix",
            out,
            mix_with=MixSource("local/b", b),
            ratio=0.5,
            harmonize=True,
        )
    assert not out.exists() and not list(tmp_path.glob(".*mixing-tmp"))


@pytest.mark.slow
def test_unshared_features_and_labels_are_harmonized_on_request(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    names = ["eef_x", "eef_y", "eef_z", "ax", "ay", "az", "g0", "g1"]
    rl = write_tiny_libero_dataset(tmp_path / "rl", repo_id="local/rl", episodes=2, frames=6, env_state_dim=4,
                                   state_names=names)  # fmt: skip
    human = write_tiny_libero_dataset(tmp_path / "human", repo_id="local/human", episodes=2, frames=6)
    out = tmp_path / "mix"
    with pytest.raises(DatasetError) as err:
        build_mixed_dataset(MixSource("local/rl", rl), "local/mix", out, MixSource("local/human", human), 0.5)
    assert "observation.environment_state only in the first" in str(err.value) and "harmonize" in str(
        err.value
    )
    build_mixed_dataset(
        MixSource("local/rl", rl), "local/mix", out, MixSource("local/human", human), 0.5, harmonize=True
    )
    mixed = LeRobotDataset("local/mix", root=out)
    assert "observation.environment_state" not in mixed.meta.features
    assert mixed.meta.features["observation.state"]["names"] == names
    assert mixed.meta.total_episodes == 4 and len(mixed) == 24
    record = json.loads((out / "meta" / "mixing.json").read_text())
    assert record["harmonized"] == {
        "dropped_features": [["observation.environment_state"], []],
        "relabelled": True,
    }
    # the sources are untouched
    assert "observation.environment_state" in LeRobotDataset("local/rl", root=rl).meta.features


@pytest.mark.slow
def test_mix_command_reports_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    from lerobot_diffrl.scripts.mix import main

    a = write_tiny_libero_dataset(tmp_path / "a", repo_id="local/a", episodes=1, frames=4)
    assert main(["--dataset.repo_id=local/a", f"--dataset.root={a}", "--repo_id=local/out"]) == 2
    assert "nothing to do" in capsys.readouterr().err
    code = main(
        [
            "--dataset.repo_id=local/a",
            f"--dataset.root={a}",
            f"--mix_with.root={tmp_path / 'missing'}",
            "--mix_with.repo_id=local/missing",
            "--ratio=0.5",
            "--repo_id=local/out",
            f"--root={tmp_path / 'out'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: dataset root {tmp_path / 'missing'} does not exist"
    ]
    assert (
        main(["--dataset.repo_id=local/a", f"--dataset.root={a}", "--suites=libero_foo", "--repo_id=x/y"])
        == 2
    )
    assert "unknown LIBERO suite" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
