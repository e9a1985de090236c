"""Behaviour cloning of a state expert with the dataset held in memory: ``lerobot-train``'s loop without its loader.

Why: a state expert's model is tiny (an MLP denoiser: ~30 ms per step of 128 samples on one core), but
``LeRobotDataset.__getitem__`` costs ~3-5 ms per sample on this machine (``datasets``' column indexing deep-copies
the features three times per item for the 16-step action chunk), so ``lerobot-train`` spends ~0.45 s per step on
data and 4000 steps take 30 min instead of 2. Experiments that train many experts (``benchmarks/method_libero.py``)
use this; ``lerobot-train`` remains the documented command and gives the same model (the same policy ``forward``,
lerobot's own optimizer and scheduler presets, its samples drawn as lerobot's ``EpisodeAwareSampler`` draws them:
every frame except the last ``drop_n_last_frames`` of each episode, action chunks padded by repeating the last
action, as lerobot's delta-timestamp query does).

The checkpoint is written with lerobot's ``save_checkpoint`` (``checkpoints/<step>/{pretrained_model,
training_state}`` and ``checkpoints/last``, with ``train_config.json``), so everything downstream (``lerobot-eval``,
``lerobot-diffrl-rl``, ``lerobot-diffrl-generate``, ``lerobot-train --resume``) reads it as a ``lerobot-train``
checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from lerobot.configs.train import TrainPipelineConfig
from tqdm import tqdm

from lerobot_diffrl.data.dataset_io import open_lerobot_dataset
from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.run_files import last_pretrained_model

ACTION = "action"


def _chunk_tables(columns: dict[str, np.ndarray], keys: list[str], horizon: int, drop_last: int) -> dict:
    """Per-sample observations and (horizon, A) action chunks, episode-aware as lerobot samples them."""
    episodes = columns["episode_index"]
    starts = np.flatnonzero(np.r_[True, episodes[1:] != episodes[:-1]])
    ends = np.r_[starts[1:], len(episodes)]
    rows, chunks = [], []
    for start, end in zip(starts, ends, strict=True):
        for t in range(start, max(start, end - drop_last)):
            rows.append(t)
            chunks.append(np.minimum(np.arange(t, t + horizon), end - 1))
    if not rows:
        raise DatasetError("the dataset has no frame to train on (every episode is shorter than the chunk)")
    index, chunk_index = np.asarray(rows), np.asarray(chunks)
    out = {key: torch.as_tensor(np.asarray(columns[key][index], dtype=np.float32)) for key in keys}
    out[ACTION] = torch.as_tensor(np.asarray(columns[ACTION], dtype=np.float32)[chunk_index])
    out["task_index"] = np.asarray(columns["task_index"][index])
    return out


def _load_columns(dataset) -> dict[str, np.ndarray]:
    table = dataset.hf_dataset.with_format("numpy")[:]
    return {k: np.stack(v) if v.dtype == object else v for k, v in table.items()}


def train_state_bc(cfg: TrainPipelineConfig) -> Path:
    """Train and save as ``lerobot-train`` would with the same ``cfg``; returns ``checkpoints/last/pretrained_model``.

    ``cfg`` is ``lerobot-train``'s own config (parse its flags with draccus); only state policies of this
    package's types, on a dataset without cameras, are accepted.
    """
    from lerobot.common.train_utils import get_step_checkpoint_dir, save_checkpoint, update_last_checkpoint
    from lerobot.optim.factory import make_optimizer_and_scheduler
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase

    if not isinstance(cfg.policy, RLPolicyConfigBase) or cfg.policy.use_images:
        raise ConfigError(
            "in-memory BC trains a state policy: --policy.type=diffrl|gaussrl --policy.use_images=false"
        )
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ConfigError(f"--steps and --batch_size must be >= 1; got {cfg.steps} and {cfg.batch_size}")
    if cfg.output_dir is not None and Path(cfg.output_dir).exists():
        raise ConfigError(f"output_dir {cfg.output_dir} exists; remove it or choose another")
    cfg.validate()  # lerobot's: optimizer and scheduler from the policy's presets, output_dir, job name
    if "OMP_NUM_THREADS" not in os.environ:
        # ~0.2 M parameters: a second thread only adds synchronisation, and beside simulator workers it spins
        # against them (measured 33 steps/s with one thread, 1.5 with two next to an RL run on 2 cores)
        torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    root = Path(cfg.dataset.root).expanduser() if cfg.dataset.root else None
    if root is not None and not (root / "meta" / "info.json").is_file():
        raise DatasetError(f"dataset folder {cfg.dataset.root} does not exist or is not a LeRobotDataset")
    dataset = open_lerobot_dataset(cfg.dataset.repo_id, root, str(cfg.dataset.root or cfg.dataset.repo_id))
    if dataset.meta.camera_keys:
        raise ConfigError(
            "in-memory BC reads no camera: strip the dataset's cameras first "
            "(lerobot-edit-dataset --operation.type=remove_feature)"
        )
    policy = make_policy(cfg.policy, ds_meta=dataset.meta)
    pre, post = make_pre_post_processors(cfg.policy, dataset_stats=dataset.meta.stats)
    inputs = list(cfg.policy.input_features)
    data = _chunk_tables(_load_columns(dataset), inputs, cfg.policy.horizon, cfg.policy.drop_n_last_frames)
    optimizer, scheduler = make_optimizer_and_scheduler(cfg, policy)
    _fit(policy, pre, data, [str(t) for t in dataset.meta.tasks.index], optimizer, scheduler, cfg)
    checkpoint = get_step_checkpoint_dir(Path(cfg.output_dir), cfg.steps, cfg.steps)
    tmp = checkpoint.with_name(checkpoint.name + ".tmp")
    save_checkpoint(tmp, cfg.steps, cfg, policy, optimizer, scheduler, pre, post)
    tmp.rename(checkpoint)  # a killed save leaves no checkpoint that looks complete
    update_last_checkpoint(checkpoint)
    return last_pretrained_model(Path(cfg.output_dir))


def _fit(policy, pre, data: dict, tasks: list[str], optimizer, scheduler, cfg: TrainPipelineConfig) -> None:
    """The loop of ``lerobot-train``'s ``update_policy``: forward, backward, clip, step, EMA update."""
    n = len(data["task_index"])
    generator = torch.Generator().manual_seed(cfg.seed)
    policy.train()
    bar = tqdm(range(cfg.steps), desc="state BC", unit="step", mininterval=5)
    for step in bar:
        idx = torch.randint(0, n, (cfg.batch_size,), generator=generator)
        batch = {k: v[idx] for k, v in data.items() if k != "task_index"}
        batch["task"] = [tasks[int(i)] for i in data["task_index"][idx.numpy()]]
        flat = {**batch, ACTION: batch[ACTION].reshape(-1, batch[ACTION].shape[-1])}
        normalised = pre(flat)
        normalised[ACTION] = normalised[ACTION].reshape(batch[ACTION].shape)
        loss, _ = policy.forward(normalised)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.optimizer.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        policy.update()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
