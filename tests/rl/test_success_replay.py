"""The success replay: which chunks it keeps, across iterations, and that a run's buffer survives resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_diffrl.rl.metrics_log import read_metrics
from lerobot_diffrl.rl.passage_warmstart import passage_rl_config, pretrain_passage_policy
from lerobot_diffrl.rl.rollout import EpisodeStats, Rollout
from lerobot_diffrl.rl.success_replay import SuccessReplay
from lerobot_diffrl.rl.trainer import REPLAY_STATE, RLTrainer


def _rollout(
    rewards: list[list[float]], terminated: list[list[bool]], truncated: list[list[bool]], base: int
) -> Rollout:
    """A (T, N) rollout whose row r = t * N + i has observation ``base + r`` and action chunk filled with it."""
    r = torch.tensor(rewards, dtype=torch.float32)
    t_len, n = r.shape
    ids = np.arange(t_len * n, dtype=np.float32) + base
    return Rollout(
        obs={"agent_pos": ids[:, None]},
        tasks=[f"task {i}" for _ in range(t_len) for i in range(n)],
        chain=torch.zeros(t_len * n, 2, 4, 7),
        logprobs=torch.zeros(t_len * n, 1, 4, 7),
        actions=torch.as_tensor(ids)[:, None, None].expand(-1, 4, 7).clone(),
        values=torch.zeros(t_len, n),
        rewards=r,
        terminated=torch.tensor(terminated),
        truncated=torch.tensor(truncated),
        next_values=torch.zeros(t_len, n),
        env_steps=0,
        stats=EpisodeStats(),
        seconds=0.0,
    )


def test_keeps_every_chunk_of_a_success_even_across_iterations_and_drops_failures() -> None:
    replay = SuccessReplay(n_envs=2, max_chunks=100)
    # env 0: an episode of rows 0, 2 (iteration 1) and 4 (iteration 2, success); env 1: rows 1, 3 truncated,
    # then row 5 still running at the end
    first = _rollout(
        [[0, 0], [0, 0]], [[False, False], [False, False]], [[False, False], [False, True]], base=0
    )
    assert replay.add(first) == 0 and len(replay) == 0
    second = _rollout([[1, 0]], [[True, False]], [[False, False]], base=4)
    assert replay.add(second) == 1
    assert len(replay) == 3 and replay.episodes == 1
    obs, tasks, actions = replay.sample(64, torch.Generator().manual_seed(0))
    assert set(obs["agent_pos"][:, 0].tolist()) == {0.0, 2.0, 4.0}
    assert set(tasks) == {"task 0"}
    assert torch.equal(actions[:, 0, 0], torch.as_tensor(obs["agent_pos"][:, 0]))  # chunk and obs stay paired
    # a termination without reward (a failure) keeps nothing
    third = _rollout([[0, 0]], [[True, True]], [[False, False]], base=6)
    assert replay.add(third) == 0 and len(replay) == 3


def test_oldest_successes_go_first_and_the_state_round_trips() -> None:
    replay = SuccessReplay(n_envs=1, max_chunks=3)
    replay.add(_rollout([[0], [1]], [[False], [True]], [[False], [False]], base=0))  # rows 0, 1
    replay.add(_rollout([[0], [1]], [[False], [True]], [[False], [False]], base=10))  # rows 10, 11
    obs, _, _ = replay.sample(64, torch.Generator().manual_seed(0))
    assert set(obs["agent_pos"][:, 0].tolist()) == {1.0, 10.0, 11.0}
    copy = SuccessReplay(n_envs=1, max_chunks=3)
    copy.load_state_dict(replay.state_dict())
    assert len(copy) == 3 and copy.episodes == 2
    with pytest.raises(ValueError, match="envs"):
        SuccessReplay(n_envs=2, max_chunks=3).load_state_dict(replay.state_dict())


def test_a_passage_run_fills_the_replay_trains_on_it_and_resumes_with_it(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ckpt = pretrain_passage_policy("diffrl", tmp_path / "bc", steps=200, seed=0)

    def config(iterations: int, resume: bool):
        cfg = passage_rl_config(ckpt, tmp_path / "run", iterations=iterations, seed=0, eval_episodes=0)
        cfg.env.n_envs, cfg.ppo.n_steps, cfg.ppo.batch_size, cfg.ppo.update_epochs = 16, 10, 100, 1
        cfg.ppo.replay_coef, cfg.ppo.replay_batch_size, cfg.ppo.critic_warmup_iters = 1.0, 8, 0
        cfg.resume = resume
        return cfg

    first = RLTrainer(config(2, resume=False))
    first.train()
    kept = len(first.replay)
    records = [r for r in read_metrics(tmp_path / "run") if r.get("event") == "train"]
    successes = sum(r["episodes"] * r["success_rate"] for r in records if r["episodes"])
    assert successes >= 1, "the BC policy should succeed sometimes on the passage task"
    assert kept >= successes  # at least one chunk per successful episode
    assert (tmp_path / "run" / "checkpoints" / "000002" / "training_state" / f"{REPLAY_STATE}.pt").is_file()
    assert records[-1]["replay_loss"] > 0  # the BC term was part of the actor's loss
    resumed = RLTrainer(config(3, resume=True))
    assert len(resumed.replay) == kept and resumed.replay.episodes == first.replay.episodes
    resumed.env.close()
