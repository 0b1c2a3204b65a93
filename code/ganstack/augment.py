"""Differentiable augmentation of everything a discriminator sees (Zhao et al. 2020, DiffAugment).

With few training images the discriminator memorises them and stops teaching the
generator; the same random transformation applied to real and generated images (and
differentiable, so the generator's gradient passes through) keeps it honest.
Policies, comma-separated:
  color        brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5]
  translation  shift by up to 1/8 of the side, zero padding
  cutout       a zeroed square of half the side at a random place
Randomness comes from torch's global generator, which checkpoints save: resume is exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import GanstackError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise GanstackError(f"GAN.DIFF_AUGMENT={policy!r}: unknown policy {name!r}; use a comma-separated "
                                f"subset of {', '.join(POLICIES)} (or empty for none)")
    return names


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy.unsqueeze(0) + dy).clamp(-1, h)     # -1 and h index the zero padding
    gx = (gx.unsqueeze(0) + dx).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, gy + 1, gx + 1].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h, (b, 1, 1), device=x.device) - ch // 2   # the square's centre anywhere
    x0 = torch.randint(0, w, (b, 1, 1), device=x.device) - cw // 2
    gy = torch.arange(h, device=x.device).view(1, h, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (gy >= y0) & (gy < y0 + ch) & (gx >= x0) & (gx < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    for name in policy:
        x = _OPS[name](x)
    return x
