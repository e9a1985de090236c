"""The critic V(s) shared by both policies: observation features -> residual MLP -> scalar.

DPPO's critic sees only the environment observation (not the denoising index), as here. It is built with the
policy and saved with it, but BC never trains it: its parameters start frozen and ``prepare_for_rl`` makes them
trainable (so DDP in ``accelerate launch lerobot-train`` never sees unused trainable parameters).
"""

from __future__ import annotations

from torch import Tensor, nn

from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase
from lerobot_diffrl.policies.common.encoders import ObservationEncoder, ResidualMLP


class ValueNetwork(nn.Module):
    """V(s). With ``critic_encoder="separate"`` it owns an encoder; with ``"shared"`` it is given features."""

    def __init__(self, cfg: RLPolicyConfigBase, shared_feature_dim: int) -> None:
        super().__init__()
        self.encoder: ObservationEncoder | None = None
        in_dim = shared_feature_dim
        if cfg.critic_encoder == "separate":
            self.encoder = ObservationEncoder(cfg)
            in_dim = self.encoder.out_dim
        self.mlp = ResidualMLP(in_dim, cfg.critic_hidden_dim, cfg.critic_num_blocks, 1)

    def forward(self, batch: dict, slots: Tensor, shared_features: Tensor | None = None) -> Tensor:
        if self.encoder is not None:
            feats = self.encoder(batch, slots)
        else:
            assert shared_features is not None, "shared critic needs the actor's features"
            feats = shared_features.detach()
        return self.mlp(feats).squeeze(-1)
