"""Side-by-side CPU benchmark: ``diffrl`` (DDIM, K' = 10 steps) against lerobot's DiffusionPolicy (defaults).

Same inputs for both: two cameras at 128x128, 8-d state, 7-d actions, batch 1 and batch 32. Reports parameter
counts, action-chunk latency (reset + select_action: one full chunk from a fresh observation) and one BC step
(forward + backward + AdamW step) at batch 32. The last stdout line is a JSON object with at least
``diffrl_chunk_ms``, ``lerobot_chunk_ms``, ``speedup``, ``diffrl_params_m``, ``lerobot_params_m``.

Usage::

    python benchmarks/policy_latency.py            # batch 1 (median of 3) and batch 32, BC step at batch 32
    python benchmarks/policy_latency.py --quick    # batch 1 only, one lerobot chunk, BC step at batch 8
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from lerobot.configs.types import FeatureType, PolicyFeature

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def features() -> tuple[dict, dict]:
    inp = {
        f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, 128, 128))
        for c in ("image", "image2")
    }
    inp["observation.state"] = PolicyFeature(FeatureType.STATE, (8,))
    return inp, {"action": PolicyFeature(FeatureType.ACTION, (7,))}


def make_batch(b: int, horizon: int, n_obs: int = 1) -> dict:
    g = torch.Generator().manual_seed(0)
    shape = (b,) if n_obs == 1 else (b, n_obs)
    batch = {
        f"observation.images.{c}": torch.rand(*shape, 3, 128, 128, generator=g) for c in ("image", "image2")
    }
    batch["observation.state"] = torch.randn(*shape, 8, generator=g)
    batch["action"] = torch.rand(b, horizon, 7, generator=g) * 2 - 1
    batch["action_is_pad"] = torch.zeros(b, horizon, dtype=torch.bool)
    batch["task"] = ["put the bowl on the plate"] * b
    return batch


def timed(fn: Callable[[], object], reps: int) -> float:
    """Median wall time in ms of ``reps`` calls (after one warm-up call when reps > 1)."""
    if reps > 1:
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def chunk_fn(policy: torch.nn.Module, batch: dict) -> Callable[[], object]:
    obs = {k: v for k, v in batch.items() if k not in ("action", "action_is_pad")}

    def run() -> object:
        policy.reset()
        with torch.no_grad():
            return policy.select_action(dict(obs))

    return run


def bc_step_fn(policy: torch.nn.Module, batch: dict) -> Callable[[], object]:
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)

    def run() -> object:
        loss, _ = policy.forward(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(policy, "update"):
            policy.update()
        return loss

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="batch 1 only, fewer repetitions, BC step at batch 8"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (the dev machines have 2 cores)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    import lerobot_diffrl.policies  # noqa: F401
    from lerobot_diffrl.policies import DiffRLConfig
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy

    inp, out = features()
    ours = DiffRLPolicy(
        DiffRLConfig(
            input_features=dict(inp),
            output_features=dict(out),
            device="cpu",
            tasks=["put the bowl on the plate"],
        )
    )
    theirs = DiffusionPolicy(
        # lerobot's defaults, but a randomly initialised ResNet-18 (0.6 defaults to ImageNet weights, a download;
        # the architecture and so the timing are the same)
        DiffusionConfig(
            input_features=dict(inp),
            output_features=dict(out),
            device="cpu",
            pretrained_backbone_weights=None,
        )
    )
    ours_params = sum(p.numel() for p in ours.parameters() if p.requires_grad) + sum(
        p.numel() for p in ours.critic.parameters()
    )
    theirs_params = sum(p.numel() for p in theirs.parameters())
    ours.eval()
    theirs.eval()

    batch_sizes = [1] if args.quick else [1, 32]
    rows = []
    result: dict[str, float | str | int] = {}
    for b in batch_sizes:
        reps_ours = 5 if b == 1 else 2
        reps_theirs = 1 if (args.quick or b > 1) else 3
        ours_ms = timed(chunk_fn(ours, make_batch(b, 16)), reps_ours)
        theirs_ms = timed(chunk_fn(theirs, make_batch(b, 16)), reps_theirs)
        rows.append((f"action chunk, batch {b}", ours_ms, theirs_ms))
        if b == 1:
            result.update(
                diffrl_chunk_ms=round(ours_ms, 1),
                lerobot_chunk_ms=round(theirs_ms, 1),
                speedup=round(theirs_ms / ours_ms, 1),
            )
        else:
            result.update(
                {f"diffrl_chunk_ms_b{b}": round(ours_ms, 1), f"lerobot_chunk_ms_b{b}": round(theirs_ms, 1)}
            )

    bc_b = 8 if args.quick else 32
    ours.train()
    theirs.train()
    ours_bc = timed(bc_step_fn(ours, make_batch(bc_b, 16)), 3)
    # lerobot's DiffusionPolicy trains on its own n_obs_steps (2) observations and horizon (64 in 0.6.1) actions.
    theirs_bc = timed(
        bc_step_fn(theirs, make_batch(bc_b, theirs.config.horizon, n_obs=theirs.config.n_obs_steps)), 1
    )
    rows.append((f"BC step (fwd+bwd+AdamW), batch {bc_b}", ours_bc, theirs_bc))
    result.update(
        {
            f"diffrl_bc_step_ms_b{bc_b}": round(ours_bc, 1),
            f"lerobot_bc_step_ms_b{bc_b}": round(theirs_bc, 1),
            "diffrl_params_m": round(ours_params / 1e6, 2),
            "lerobot_params_m": round(theirs_params / 1e6, 2),
            "threads": args.threads,
            "lerobot_version": importlib.metadata.version("lerobot"),
            "quick": args.quick,
            "diffrl_sampling": f"DDIM {ours.config.ddim_steps} steps (K'={ours.config.ft_denoising_steps})",
            "lerobot_sampling": f"{theirs.config.noise_scheduler_type} {theirs.config.num_train_timesteps} steps",
        }
    )

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    print(f"{'':40s} {'diffrl':>12s} {'lerobot diffusion':>18s}")
    print(f"{'parameters (M)':40s} {ours_params / 1e6:12.2f} {theirs_params / 1e6:18.2f}")
    for name, a, b in rows:
        print(f"{name + ' (ms)':40s} {a:12.1f} {b:18.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
