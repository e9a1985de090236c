"""The episode writer, packing, staging, scheduler and merge: real LeRobotDataset v3 files, no simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_diffrl.data.features import FPS, ROBOT_TYPE, dataset_features
from lerobot_diffrl.data.merge import merge_datasets
from lerobot_diffrl.data.packing import pack_episodes
from lerobot_diffrl.data.scheduler import DISCARD, KEEP, RETRY, AttemptScheduler
from lerobot_diffrl.data.sharding import ShardSpec, make_attempt
from lerobot_diffrl.data.staging import AttemptRecord, Staging
from lerobot_diffrl.data.writer import EpisodeFrames, EpisodeWriter, image_stats
from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.scripts import merge as merge_cli

SIZE = 48
TASKS = ["pick up the soup", "pick up the milk"]


def synthetic_episode(seed: int, length: int, task: str, size: int = SIZE) -> EpisodeFrames:
    """Smooth moving gradients (compressible like rendered scenes) plus per-episode state/action values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    t = np.arange(length)[:, None, None]
    base = np.stack([(xx + 3 * t + seed * 17) % 256, (2 * yy + t) % 256, ((xx + yy) // 2 + 5 * t) % 256], -1)
    image = base.astype(np.uint8)
    success = np.zeros(length, dtype=bool)
    success[-1] = seed % 2 == 0
    return EpisodeFrames(
        images={
            "observation.images.image": image,
            "observation.images.image2": np.ascontiguousarray(image[:, ::-1]),
        },
        state=rng.normal(size=(length, 8)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(length, 7)).astype(np.float32),
        reward=success.astype(np.float32),
        done=np.arange(length) == length - 1,
        success=success,
        task=task,
    )


def write_staged(
    staging: Staging, specs: list[tuple[int, int, int]], size: int = SIZE
) -> dict[str, EpisodeFrames]:
    """Commit episodes (task_id, attempt number, length); returns frames by attempt key."""
    frames = {}
    with EpisodeWriter(staging, dataset_features(size), FPS, encoder_workers=2) as writer:
        for task_id, number, length in specs:
            attempt = make_attempt(0, "libero_object", task_id, number, 50)
            ep = synthetic_episode(1000 * task_id + number, length, TASKS[task_id], size)
            record = AttemptRecord.of(
                attempt, success=bool(ep.success[-1]), kept=True, length=length, task=ep.task
            )
            writer.add(record, ep)
            frames[attempt.key] = ep
    return frames


def pack(staging: Staging, root: Path, size: int = SIZE) -> Path:
    return pack_episodes(
        staging.kept_episodes(),
        root,
        repo_id="local/test",
        features=dataset_features(size),
        fps=FPS,
        robot_type=ROBOT_TYPE,
        progress=False,
        meta_files={"provenance.json": {"generator": "test"}},
    )


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, Staging, dict[str, EpisodeFrames]]:
    base = tmp_path_factory.mktemp("packed")
    staging = Staging(base / "staging")
    # Written out of order on purpose: the dataset orders episodes by (suite, task, attempt number).
    frames = write_staged(staging, [(1, 1, 9), (0, 2, 12), (0, 0, 7), (1, 3, 10)])
    return pack(staging, base / "ds"), staging, frames


def test_image_stats_match_lerobots_estimator_on_uint8_pixels() -> None:
    from lerobot.datasets.compute_stats import get_feature_stats, sample_indices

    rng = np.random.default_rng(0)
    frames = rng.integers(20, 230, size=(150, 40, 40, 3), dtype=np.uint8)
    frames[:, :10] = 255  # skewed distribution: quantiles differ from mean +- std
    ours = image_stats(frames)
    sampled = frames[sample_indices(len(frames))].transpose(0, 3, 1, 2)
    # lerobot >= 0.6 promotes uint8 before squaring (0.4.4 overflowed to std = 0), so its estimator on the raw
    # uint8 pixels and on float64 copies agree, and ours matches both.
    # (lerobot accumulates uint8 input in float32: agreement to 5e-3 there, exact against float64)
    for ref, rtol in (
        (get_feature_stats(sampled.astype(np.float64), axis=(0, 2, 3), keepdims=True), 1e-6),
        (get_feature_stats(sampled, axis=(0, 2, 3), keepdims=True), 5e-3),
    ):
        for key, value in ref.items():
            want = value if key == "count" else np.squeeze(value / 255.0, axis=0)
            np.testing.assert_allclose(ours[key], want, rtol=rtol, atol=1e-9, err_msg=key)
    assert ours["mean"].shape == (3, 1, 1) and ours["count"].tolist() == [100]
    assert np.all(ours["std"] * 255 > 50)


def test_packed_dataset_loads_with_exact_features_frames_and_order(packed) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, staging, frames = packed
    ds = LeRobotDataset("local/test", root=root)
    assert ds.fps == FPS == 20 and ds.meta.robot_type == "panda"
    assert ds.num_episodes == 4 and ds.num_frames == 9 + 12 + 7 + 10
    expected = dataset_features(SIZE)
    for key, ft in expected.items():
        assert ds.features[key]["dtype"] == ft["dtype"] and tuple(ds.features[key]["shape"]) == tuple(
            ft["shape"]
        )
    assert set(ds.features) == set(expected) | {
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    }
    assert ds.meta.video_keys == ["observation.images.image", "observation.images.image2"]
    assert ds.meta.info["features"]["observation.images.image"]["info"]["video.codec"] == "av1"
    assert list(ds.meta.tasks.index) == TASKS
    order = [m["attempt"]["number"] for _, m in staging.kept_episodes()]
    assert order == [0, 2, 1, 3]  # task 0 attempts 0, 2 then task 1 attempts 1, 3
    eps = ds.meta.episodes
    assert eps["episode_index"] == [0, 1, 2, 3] and eps["length"] == [7, 12, 9, 10]
    assert eps["dataset_from_index"] == [0, 7, 19, 28] and eps["dataset_to_index"] == [7, 19, 28, 38]
    keys = [m["attempt"] for _, m in staging.kept_episodes()]
    for ep_index, attempt in enumerate(keys):
        src = frames[f"libero_object__{attempt['task_id']:03d}__{attempt['number']:06d}"]
        start = eps["dataset_from_index"][ep_index]
        for t in (0, len(src) // 2, len(src) - 1):
            item = ds[start + t]
            assert int(item["episode_index"]) == ep_index and int(item["frame_index"]) == t
            assert item["task"] == src.task
            np.testing.assert_array_equal(item["action"].numpy(), src.action[t])
            np.testing.assert_array_equal(item["observation.state"].numpy(), src.state[t])
            assert bool(item["next.success"]) == bool(src.success[t]) and bool(item["next.done"]) == (
                t == len(src) - 1
            )
            for cam in ds.meta.video_keys:
                decoded = item[cam].permute(1, 2, 0).numpy() * 255.0
                assert decoded.shape == (SIZE, SIZE, 3)
                assert np.abs(decoded - src.images[cam][t]).mean() < 8.0  # lossy AV1, CRF 30
    stats = ds.meta.stats
    assert {"q01", "q99", "mean", "std"} <= set(stats["action"]) and stats["observation.images.image"][
        "std"
    ].min() > 0.05
    assert json.loads((root / "meta" / "provenance.json").read_text()) == {"generator": "test"}


def test_pack_refuses_existing_output_and_empty_input(packed, tmp_path: Path) -> None:
    root, staging, _ = packed
    with pytest.raises(DatasetError, match="already exists"):
        pack(staging, root)
    with pytest.raises(DatasetError, match="empty"):
        pack(Staging(tmp_path / "nothing"), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_staging_keeps_committed_attempts_and_drops_leftovers(tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    write_staged(staging, [(0, 0, 5)])
    staging.record_discarded(
        AttemptRecord.of(make_attempt(0, "libero_object", 0, 1, 50), success=False, kept=False, length=9)
    )
    leftover = staging.temp_episode_dir("libero_object__000__000002")  # what a killed writer leaves
    (leftover / "frames.parquet").write_bytes(b"partial")
    assert [r.number for r in staging.finished()] == [0, 1]
    assert staging.clean_partial() == 1 and not leftover.exists()
    assert [(r.number, r.kept) for r in staging.finished()] == [(0, True), (1, False)]


def test_writer_rejects_malformed_episodes(tmp_path: Path) -> None:
    ep = synthetic_episode(0, 5, "task")
    ep.action = ep.action[:, :6]
    with EpisodeWriter(Staging(tmp_path), dataset_features(SIZE), FPS) as writer:
        with pytest.raises(DatasetError, match="action"):
            writer.add(
                AttemptRecord.of(
                    make_attempt(0, "libero_object", 0, 0, 50), success=False, kept=True, length=5
                ),
                ep,
            )
    with pytest.raises(ConfigError, match="vcodec"):
        EpisodeWriter(Staging(tmp_path), dataset_features(SIZE), FPS, vcodec="mjpeg")


def test_merge_joins_datasets_and_refuses_mismatched_features(packed, tmp_path: Path, capsys) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, _, _ = packed
    other_staging = Staging(tmp_path / "s2")
    write_staged(other_staging, [(1, 5, 6)])
    other = pack(other_staging, tmp_path / "ds2")
    merged = merge_datasets([root, other], tmp_path / "merged")
    ds = LeRobotDataset("local/merged", root=merged)
    assert ds.num_episodes == 5 and ds.num_frames == 38 + 6
    assert ds.meta.episodes["episode_index"] == [0, 1, 2, 3, 4]
    last = ds[ds.num_frames - 1]
    assert int(last["episode_index"]) == 4 and last["task"] == TASKS[1]
    assert last["observation.images.image"].shape == (3, SIZE, SIZE)

    cli_out = tmp_path / "merged_cli"
    assert merge_cli.main([f"--inputs=[{root},{other}]", f"--output_dir={cli_out}"]) == 0
    assert "5 episodes, 44 frames" in capsys.readouterr().out
    assert LeRobotDataset("local/m", root=cli_out).num_episodes == 5

    small_staging = Staging(tmp_path / "s3")
    write_staged(small_staging, [(0, 7, 5)], size=32)
    small = pack(small_staging, tmp_path / "ds32", size=32)
    with pytest.raises(DatasetError, match="observation.images.image"):
        merge_datasets([root, small], tmp_path / "bad")
    assert merge_cli.main([f"--inputs=[{root},{small}]", f"--output_dir={tmp_path / 'bad'}"]) == 2
    assert capsys.readouterr().err.startswith("error: feature 'observation.images.image' differs")
    with pytest.raises(DatasetError, match="already exists"):
        merge_datasets([root, other], merged)
    with pytest.raises(DatasetError, match="no meta/info.json"):
        merge_datasets([root, tmp_path / "s3"], tmp_path / "bad2")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


# -- scheduling and sharding ---------------------------------------------------------------------------
def run_scheduler(sched: AttemptScheduler, outcome) -> list:
    """Drive a scheduler with one slot until done; ``outcome(attempt) -> (success, aborted)``."""
    log = []
    while not sched.done():
        attempt = sched.next_attempt()
        assert attempt is not None
        success, aborted = outcome(attempt)
        log.append((attempt, sched.finish(attempt, success=success, aborted=aborted)))
    return log


def test_shards_own_disjoint_attempts_with_deterministic_init_states_and_seeds() -> None:
    tasks = [(("libero_object", 0), 50), (("libero_object", 1), 50)]
    seen = {}
    for k in range(3):
        sched = AttemptScheduler(tasks, target=7, max_attempts=7, keep="all", seed=5, shard=ShardSpec(k, 3))
        log = run_scheduler(sched, lambda a: (False, False))
        targets = [s.target for s in sched.tasks.values()]
        assert targets == [2 + (k == 0), 2 + (k == 1)]  # the extra episode of task i goes to shard i
        for attempt, outcome in log:
            assert outcome == KEEP and attempt.number % 3 == k
            assert attempt.init_index == (5 + attempt.number) % 50
            assert attempt == make_attempt(5, attempt.suite, attempt.task_id, attempt.number, 50)
            key = (attempt.task_id, attempt.number)
            assert key not in seen
            seen[key] = attempt.seed
    assert sorted(n for t, n in seen if t == 0) == list(range(7))  # the shards together make attempts 0..6
    assert sum(1 for t, _ in seen if t == 1) == 7
    assert len(set(seen.values())) == len(seen)


def test_success_mode_replaces_failures_caps_attempts_and_retries_aborts() -> None:
    tasks = [(("libero_object", 0), 50)]
    sched = AttemptScheduler(tasks, target=3, max_attempts=10, keep="success", seed=0, shard=ShardSpec())
    log = run_scheduler(
        sched, lambda a: (a.number % 2 == 1, a.number == 2 and not sched.tasks[a.task_ref].retries)
    )
    outcomes = [(a.number, o) for a, o in log]
    assert outcomes[:4] == [(0, DISCARD), (1, KEEP), (2, RETRY), (2, DISCARD)]
    assert sched.tasks[("libero_object", 0)].kept == 3 and outcomes[-1] == (5, KEEP)

    never = AttemptScheduler(tasks, target=2, max_attempts=4, keep="success", seed=0, shard=ShardSpec())
    assert len(run_scheduler(never, lambda a: (False, False))) == 4
    assert never.short() == {("libero_object", 0): (0, 2)}
    with pytest.raises(ConfigError):
        AttemptScheduler(tasks, target=0, max_attempts=4, keep="success", seed=0, shard=ShardSpec())
    with pytest.raises(ConfigError):
        AttemptScheduler(tasks, target=2, max_attempts=4, keep="some", seed=0, shard=ShardSpec())


def test_resumed_scheduler_skips_finished_attempts() -> None:
    tasks = [(("libero_object", 0), 50)]
    finished = [
        AttemptRecord.of(make_attempt(0, "libero_object", 0, n, 50), success=n != 1, kept=n != 1, length=5)
        for n in (0, 1, 3)
    ]
    sched = AttemptScheduler(
        tasks, target=4, max_attempts=20, keep="success", seed=0, shard=ShardSpec(), finished=finished
    )
    log = run_scheduler(sched, lambda a: (True, False))
    assert [a.number for a, _ in log] == [2, 4]  # 0 and 3 kept before, 1 failed before
    assert sched.tasks[("libero_object", 0)].finished == 5


def test_lerobots_own_dataset_tools_accept_a_packed_dataset(packed, tmp_path: Path) -> None:
    """lerobot 0.6.1's split_dataset, merge_datasets and aggregate_datasets take the writer's output as it is."""
    from lerobot.datasets.aggregate import aggregate_datasets
    from lerobot.datasets.dataset_tools import merge_datasets as lerobot_merge
    from lerobot.datasets.dataset_tools import split_dataset
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, _, _ = packed
    source = LeRobotDataset("local/test", root=root)
    lengths = source.meta.episodes["length"]
    parts = split_dataset(source, {"a": [0, 2], "b": [1, 3]}, output_dir=tmp_path / "split")
    assert parts["a"].num_episodes == 2 and parts["a"].num_frames == lengths[0] + lengths[2]
    assert parts["b"].num_frames == lengths[1] + lengths[3]
    # the second split's first frame is the source's episode 1, first frame
    start = source.meta.episodes["dataset_from_index"][1]
    np.testing.assert_array_equal(parts["b"][0]["action"].numpy(), source[start]["action"].numpy())

    merged = lerobot_merge([parts["a"], parts["b"]], "local/merged", output_dir=tmp_path / "merged")
    assert merged.num_episodes == 4 and merged.num_frames == source.num_frames
    assert set(merged.meta.tasks.index) == set(TASKS)

    aggregate_datasets(
        ["local/test", "local/test2"], "local/aggr", roots=[root, root], aggr_root=tmp_path / "aggr"
    )
    aggr = LeRobotDataset("local/aggr", root=tmp_path / "aggr")
    assert aggr.num_episodes == 8 and aggr.num_frames == 2 * source.num_frames
    np.testing.assert_array_equal(aggr[source.num_frames]["action"].numpy(), source[0]["action"].numpy())
    assert aggr[source.num_frames]["observation.images.image"].shape == (3, SIZE, SIZE)


def test_packed_episodes_carry_their_quality_figures_through_a_merge(packed, tmp_path: Path) -> None:
    """The generator stores each episode's figures as quality/<name> columns; lerobot's aggregate keeps them."""
    from lerobot.datasets.aggregate import aggregate_datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_diffrl.data import metrics as M
    from lerobot_diffrl.data.quality import QUALITY_NAMES, episode_quality, stored_quality

    root, staging, frames = packed
    quality = stored_quality(root)
    assert sorted(quality) == [0, 1, 2, 3]
    for index, (_, meta) in enumerate(staging.kept_episodes()):
        attempt = meta["attempt"]
        src = frames[f"libero_object__{attempt['task_id']:03d}__{attempt['number']:06d}"]
        want = episode_quality(src.action, src.state[:, :3], fs=FPS)
        assert list(quality[index]) == list(QUALITY_NAMES)
        assert quality[index] == pytest.approx(want, rel=1e-12, nan_ok=True)
        assert quality[index]["length"] == len(src)
        assert quality[index]["jerk"] == pytest.approx(M.mean_squared_jerk(src.action[:, :6]), rel=1e-12)
    assert LeRobotDataset("local/test", root=root).meta.episodes["quality/length"] == [7, 12, 9, 10]
    aggregate_datasets(["local/a", "local/b"], "local/aggr", roots=[root, root], aggr_root=tmp_path / "aggr")
    merged = stored_quality(tmp_path / "aggr")
    assert sorted(merged) == list(range(8))
    for i in range(8):
        assert merged[i] == pytest.approx(quality[i % 4], nan_ok=True)
