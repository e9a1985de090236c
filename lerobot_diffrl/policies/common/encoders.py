"""Observation encoders shared by ``diffrl`` and ``gaussrl`` (and their critics).

Design choices, and why:

* **ResNet-18 with GroupNorm**: BatchNorm statistics drift between BC batches and small RL batches, and a
  frozen copy of the actor would disagree with the live one; GroupNorm (as in Diffusion Policy) has no running
  statistics. Module names mirror torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so
  torchvision's pretrained weights load into the convolutions and the norms' affine terms directly.
* **Configurable width**: width 64 is the standard 11.2 M-parameter ResNet-18; the default 32 (2.8 M) keeps
  two per-camera trunks plus denoiser and critic within ~10-15 M parameters and fast on CPU.
* **Task embedding**: one learned vector per task string (``nn.Embedding``), slot 0 reserved for "no / unknown task", so a policy
  trained on several LIBERO tasks knows which one it is solving (lerobot's DiffusionPolicy has no task input).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase

logger = logging.getLogger(__name__)

OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
TASK_KEY = "task"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with groups of ~16 channels (Diffusion Policy's choice)."""
    return nn.GroupNorm(max(1, channels // 16), channels)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock with GroupNorm (same parameter names)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = group_norm(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), group_norm(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18GN(nn.Module):
    """ResNet-18 trunk (no pooling / fc) with GroupNorm and base width ``width``; output stride 32."""

    def __init__(self, width: int = 64, pretrained_weights: str | None = None) -> None:
        super().__init__()
        w = width
        self.out_channels = 8 * w
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = group_norm(w)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
        if pretrained_weights is not None:
            self._load_torchvision(pretrained_weights)

    def _load_torchvision(self, weights_name: str) -> None:
        """Copy torchvision ResNet-18 weights (convs, norm affine terms); BN running stats are dropped."""
        import torchvision

        try:
            weights = torchvision.models.get_weight(weights_name)
            state = torchvision.models.resnet18(weights=weights).state_dict()
        except Exception as exc:  # network/cache failures surface as many exception types
            raise ConfigError(
                f"Could not load torchvision weights {weights_name!r} ({exc}). They need network access or a "
                "populated torch hub cache; use pretrained_backbone_weights=null to train from scratch."
            ) from exc
        state = {
            k: v
            for k, v in state.items()
            if not k.startswith("fc.") and "running_" not in k and "num_batches_tracked" not in k
        }
        self.load_state_dict(state, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SpatialSoftmax(nn.Module):
    """Spatial soft-argmax keypoints (Levine et al. 2016), as in Diffusion Policy: (B,C,H,W) -> (B, 2K)."""

    def __init__(self, in_channels: int, height: int, width: int, num_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("pos", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.keypoints(x).flatten(2)  # (B, K, HW)
        attn = F.softmax(feat, dim=-1)
        return (attn @ self.pos).flatten(1)  # (B, 2K)


def random_shift(images: Tensor, pad: int) -> Tensor:
    """DrQ random-shift augmentation: replicate-pad by ``pad`` then crop back at a random integer offset.

    One offset per sample, implemented with ``grid_sample`` so it is a single batched op.
    """
    if pad <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    hp, wp = h + 2 * pad, w + 2 * pad
    # Base grid sampling the central crop (pixel centres) in the padded image's normalised coordinates.
    ys = torch.linspace(-1.0 + 1.0 / hp, 1.0 - 1.0 / hp, hp, device=images.device)[pad : pad + h]
    xs = torch.linspace(-1.0 + 1.0 / wp, 1.0 - 1.0 / wp, wp, device=images.device)[pad : pad + w]
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(b, h, w, 2)
    shift = torch.randint(-pad, pad + 1, (b, 1, 1, 2), device=images.device).to(images.dtype)
    shift = shift * torch.tensor([2.0 / wp, 2.0 / hp], device=images.device, dtype=images.dtype)
    return F.grid_sample(padded, base + shift, mode="nearest", padding_mode="border", align_corners=False)


class CameraEncoder(nn.Module):
    """Trunk + pooling + projection for one camera (or shared by all cameras)."""

    def __init__(self, cfg: RLPolicyConfigBase, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.trunk = ResNet18GN(cfg.vision_width, cfg.pretrained_backbone_weights)
        h, w = cfg.image_resize or image_shape[1:]
        fh, fw = math.ceil(h / 32), math.ceil(w / 32)
        if cfg.image_pooling == "spatial_softmax":
            self.pool: nn.Module = SpatialSoftmax(
                self.trunk.out_channels, fh, fw, cfg.spatial_softmax_num_keypoints
            )
            pooled = 2 * cfg.spatial_softmax_num_keypoints
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            pooled = self.trunk.out_channels
        self.proj = nn.Sequential(nn.Linear(pooled, cfg.image_feature_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.pool(self.trunk(x)))


def task_slots(
    known_tasks: list[str],
    tasks: list[str] | str | None,
    batch_size: int,
    device: torch.device,
    warned: set[str] | None = None,
) -> Tensor:
    """Map task strings to embedding slots: ``known_tasks[i]`` -> i + 1; missing or unknown -> 0.

    Slot 0 is the "no task / unknown task" embedding. The string -> slot map is ``config.tasks``, saved in
    ``config.json``; adding tasks appends to it (``policy.add_tasks``) so existing slots never move.
    """
    if tasks is None:
        return torch.zeros(batch_size, dtype=torch.long, device=device)
    if isinstance(tasks, str):
        tasks = [tasks] * batch_size
    index = {t: i + 1 for i, t in enumerate(known_tasks)}
    out = []
    for t in tasks:
        slot = index.get(t, 0)
        if slot == 0 and warned is not None and t not in warned:
            warned.add(t)
            logger.warning(
                "Unknown task %r: using the 'no task' embedding (add it with policy.add_tasks).", t
            )
        out.append(slot)
    if len(out) != batch_size:
        raise ConfigError(f"batch['task'] has {len(out)} entries for a batch of {batch_size}.")
    return torch.tensor(out, dtype=torch.long, device=device)


class ObservationEncoder(nn.Module):
    """Cameras + state + task -> one conditioning vector of size ``out_dim``.

    Input batches are the preprocessed ones: ``observation.state`` (B, S) min-max normalised,
    ``observation.images.<cam>`` (B, 3, H, W) in [0, 1], ``task`` a list of B strings (optional).
    """

    def __init__(self, cfg: RLPolicyConfigBase) -> None:
        super().__init__()
        self.image_keys = sorted(cfg.used_image_features)
        self.resize = tuple(cfg.image_resize) if cfg.image_resize else None
        self.shift_pad = cfg.random_shift_pad
        self.cameras = nn.ModuleDict()
        if self.image_keys:
            shapes = {k: tuple(cfg.used_image_features[k].shape) for k in self.image_keys}
            if cfg.share_camera_trunk:
                self.cameras["shared"] = CameraEncoder(cfg, shapes[self.image_keys[0]])
            else:
                for k in self.image_keys:
                    self.cameras[k.replace(".", "_")] = CameraEncoder(cfg, shapes[k])
        self.register_buffer("img_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        state = cfg.robot_state_feature
        env_state = cfg.env_state_feature
        # The privileged object state (state-based experts) joins the robot state in one MLP.
        self.state_keys = [k for k, ft in ((OBS_STATE, state), (OBS_ENV_STATE, env_state)) if ft is not None]
        self.state_dim = sum(int(ft.shape[0]) for ft in (state, env_state) if ft is not None)
        self.state_mlp: nn.Module | None = None
        if self.state_dim:
            self.state_mlp = nn.Sequential(
                nn.Linear(self.state_dim, cfg.state_feature_dim),
                nn.Mish(),
                nn.Linear(cfg.state_feature_dim, cfg.state_feature_dim),
            )
        self.task = nn.Embedding(cfg.max_tasks, cfg.task_embedding_dim)
        nn.init.normal_(self.task.weight, std=0.02)
        self.out_dim = (
            len(self.image_keys) * cfg.image_feature_dim
            + (cfg.state_feature_dim if self.state_dim else 0)
            + cfg.task_embedding_dim
        )

    def batch_size(self, batch: dict) -> int:
        key = self.state_keys[0] if self.state_dim else self.image_keys[0]
        return int(batch[key].shape[0])

    def forward(self, batch: dict, slots: Tensor, augment: bool = False) -> Tensor:
        """Encode a batch. ``slots`` (B,) are task-embedding slots (see :func:`task_slots`); ``augment``
        applies the random shift (BC training only, never when sampling or re-evaluating log-probs)."""
        b = self.batch_size(batch)
        feats: list[Tensor] = []
        if self.image_keys:
            imgs = [batch[k] for k in self.image_keys]
            if self.resize is not None:
                imgs = [
                    F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False) for x in imgs
                ]
            if augment:
                imgs = [random_shift(x, self.shift_pad) for x in imgs]
            imgs = [(x - self.img_mean) / self.img_std for x in imgs]
            if "shared" in self.cameras:
                out = self.cameras["shared"](torch.cat(imgs, dim=0))
                feats.extend(out.split(b, dim=0))
            else:
                feats.extend(
                    self.cameras[k.replace(".", "_")](x) for k, x in zip(self.image_keys, imgs, strict=True)
                )
        if self.state_mlp is not None:
            states = [batch[k] for k in self.state_keys]
            feats.append(self.state_mlp(states[0] if len(states) == 1 else torch.cat(states, dim=-1)))
        feats.append(self.task(slots))
        return torch.cat(feats, dim=-1)


class SinusoidalPosEmb(nn.Module):
    """Sinusoidal embedding of the (integer) diffusion timestep."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, device=t.device) * (-math.log(10000) / (half - 1)))
        arg = t.float()[:, None] * freq[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class ResidualMLP(nn.Module):
    """Linear -> [x + Linear(Mish(Linear(Mish(LayerNorm x))))] * n -> Linear, the MLP used by heads and critics."""

    def __init__(self, in_dim: int, hidden: int, num_blocks: int, out_dim: int) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden),
                nn.Mish(),
                nn.Linear(hidden, hidden),
                nn.Mish(),
                nn.Linear(hidden, hidden),
            )
            for _ in range(num_blocks)
        )
        self.out = nn.Sequential(nn.Mish(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)
