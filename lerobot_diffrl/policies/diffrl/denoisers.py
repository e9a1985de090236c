"""Noise-prediction networks eps(x_t, t, cond) over a normalised action chunk x_t of shape (B, H, A).

* :class:`ConditionalUnet1D`: Diffusion Policy's FiLM-conditioned 1-D temporal U-Net (convolutions over the
  chunk's time axis, FiLM scale and bias from [time embedding, observation features] in every residual
  block), sized down to DPPO's scale (channels 64/128/256 instead of 512/1024/2048).
* :class:`MLPDenoiser`: residual MLP over the flattened chunk (DPPO's ``DiffusionMLP``): fewer FLOPs,
  the fast choice for state-only RL.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lerobot_diffrl.policies.common.encoders import ResidualMLP, SinusoidalPosEmb


def time_mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))


class Conv1dBlock(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, groups: int) -> None:
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2), nn.GroupNorm(groups, out_ch), nn.Mish()
        )


class FiLMResBlock1D(nn.Module):
    """Two conv blocks; the conditioning vector modulates the first block's output (scale and bias)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(in_ch, out_ch, kernel, groups)
        self.block2 = Conv1dBlock(out_ch, out_ch, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block1(x) * (1 + scale) + bias
        return self.block2(h) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """FiLM-conditioned temporal U-Net; input/output (B, H, A)."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...],
        kernel: int,
        groups: int,
        time_dim: int,
    ) -> None:
        super().__init__()
        self.time_mlp = time_mlp(time_dim)
        c = time_dim + cond_dim
        dims = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for level, (i, o) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = level == len(down_dims) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        FiLMResBlock1D(i, o, c, kernel, groups),
                        FiLMResBlock1D(o, o, c, kernel, groups),
                        nn.Conv1d(o, o, 3, 2, 1) if not last else nn.Identity(),
                    ]
                )
            )
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock1D(mid, mid, c, kernel, groups) for _ in range(2)])
        self.up = nn.ModuleList()
        rev = list(down_dims[::-1])
        # As in Diffusion Policy: every up level upsamples, and the finest skip is not concatenated.
        for o, i in zip(rev[:-1], rev[1:], strict=True):
            self.up.append(
                nn.ModuleList(
                    [
                        FiLMResBlock1D(2 * o, i, c, kernel, groups),
                        FiLMResBlock1D(i, i, c, kernel, groups),
                        nn.ConvTranspose1d(i, i, 4, 2, 1),
                    ]
                )
            )
        self.final = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel, groups), nn.Conv1d(down_dims[0], action_dim, 1)
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        h = x.transpose(1, 2)  # (B, A, H)
        c = torch.cat([self.time_mlp(t), cond], dim=-1)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, c), c))
        return self.final(h).transpose(1, 2)


class MLPDenoiser(nn.Module):
    """Residual MLP eps-network over the flattened chunk; input/output (B, H, A)."""

    def __init__(
        self, horizon: int, action_dim: int, cond_dim: int, hidden: int, num_blocks: int, time_dim: int
    ) -> None:
        super().__init__()
        self.time_mlp = time_mlp(time_dim)
        self.horizon, self.action_dim = horizon, action_dim
        self.mlp = ResidualMLP(
            horizon * action_dim + time_dim + cond_dim, hidden, num_blocks, horizon * action_dim
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        h = torch.cat([x.flatten(1), self.time_mlp(t), cond], dim=-1)
        return self.mlp(h).view(-1, self.horizon, self.action_dim)
