"""Diffusion schedule and the exact Gaussian transitions of DDIM / DDPM sampling.

Why not diffusers' schedulers: their ``step()`` draws the noise internally and returns only the next sample,
while DPPO needs each denoising transition's mean and std (to draw it with clipped noise and a floored std, and
to evaluate its log-density later under new parameters). The formulas here follow DPPO's ``diffusion.py``:

* cosine-beta schedule (Nichol & Dhariwal, s = 0.008, betas clipped at 0.999), epsilon prediction;
* DDIM timesteps ``t_i = (n-1-i) * (K // n)`` for i = 0 .. n-1 (i = 0 is the noisiest step);
* at DDIM step i: x0 = (x - sqrt(1-a) eps) / sqrt(a), clipped to ±denoised_clip; eps re-derived from the
  clipped x0; sigma = eta * sqrt((1-a')/(1-a) * (1-a/a')); mean = sqrt(a') x0 + sqrt(1-a'-sigma^2) eps,
  with a = alpha_bar(t_i) and a' = alpha_bar(t_{i+1}) (1 after the last step).

With n = K and eta = 1 this mean and sigma equal the DDPM posterior q(x_{t-1} | x_t, x0) (tested).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def cosine_beta_schedule(num_steps: int, s: float = 0.008) -> Tensor:
    """Betas of the cosine schedule, float64 for accuracy of the cumulative products."""
    steps = num_steps + 1
    x = torch.linspace(0, steps, steps, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


def _gather(values: Tensor, index: Tensor | int, like: Tensor) -> Tensor:
    """values[index] broadcast against ``like`` (index scalar or (N,) matching like's first dim)."""
    v = values[index]
    if v.dim() == 0:
        return v.to(like.dtype)
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class DiffusionSchedule(nn.Module):
    """Buffers of the K-step schedule and of the n-step DDIM sub-sequence (not saved: derived from config)."""

    def __init__(self, num_train_timesteps: int, ddim_steps: int) -> None:
        super().__init__()
        k, n = num_train_timesteps, ddim_steps
        betas = cosine_beta_schedule(k)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.num_train_timesteps, self.ddim_steps = k, n
        stride = k // n
        ddim_t = torch.arange(n - 1, -1, -1, dtype=torch.long) * stride  # descending: noisiest first
        a = alphas_cumprod[ddim_t]
        a_prev = torch.cat([alphas_cumprod[ddim_t[1:]], torch.ones(1, dtype=torch.float64)])
        sigma_eta1 = ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
        for name, value in {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "ddim_alpha": a,
            "ddim_alpha_prev": a_prev,
            "ddim_sigma_eta1": sigma_eta1,
        }.items():
            self.register_buffer(name, value.float(), persistent=False)
        self.register_buffer("ddim_t", ddim_t, persistent=False)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Forward diffusion x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps (BC training)."""
        a = _gather(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def ddim_transition(
        self, x: Tensor, eps: Tensor, step: Tensor | int, eta: float, denoised_clip: float | None
    ) -> tuple[Tensor, Tensor]:
        """Mean and (unfloored) std of DDIM step ``step`` (index into the DDIM sequence, 0 = noisiest).

        ``step`` may be an int or a (N,) tensor matching ``x``'s first dim (vectorised re-evaluation).
        """
        a = _gather(self.ddim_alpha, step, x)
        a_prev = _gather(self.ddim_alpha_prev, step, x)
        sqrt_1ma = (1 - a).sqrt()
        x0 = (x - sqrt_1ma * eps) / a.sqrt()
        if denoised_clip is not None:
            x0 = x0.clamp(-denoised_clip, denoised_clip)
            eps = (x - a.sqrt() * x0) / sqrt_1ma  # re-derive eps from the clipped x0 (as DPPO does)
        sigma = eta * _gather(self.ddim_sigma_eta1, step, x)
        dir_coef = (1 - a_prev - sigma**2).clamp(min=0).sqrt()
        mean = a_prev.sqrt() * x0 + dir_coef * eps
        return mean, sigma.expand_as(mean)

    def ddpm_posterior(self, x_t: Tensor, x0: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Mean and std of the DDPM posterior q(x_{t-1} | x_t, x0) (reference for the DDIM test)."""
        a, a_prev, beta = self.alphas_cumprod[t], self.alphas_cumprod_prev[t], self.betas[t]
        coef_x0 = beta * a_prev.sqrt() / (1 - a)
        coef_xt = (1 - a_prev) * (1 - beta).sqrt() / (1 - a)
        var = beta * (1 - a_prev) / (1 - a)
        return coef_x0 * x0 + coef_xt * x_t, var.sqrt().expand_as(x_t)

    def predict_x0(self, x_t: Tensor, eps: Tensor, t: int) -> Tensor:
        a = self.alphas_cumprod[t]
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()
