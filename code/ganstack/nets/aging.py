"""IPCGAN's conditional PatchGAN: the age-group maps join the image features after the first layer."""
from __future__ import annotations

import torch
from torch import nn

from .pix2pix import conv_bias, norm_layer


def group_maps(groups: torch.Tensor, count: int, height: int, width: int) -> torch.Tensor:
    """One-hot age groups (B,) -> (B, count, H, W) constant maps, as IPCGAN feeds its conditions."""
    onehot = torch.nn.functional.one_hot(groups.long(), count).float()
    return onehot[:, :, None, None].expand(-1, -1, height, width)


class ConditionalPatchDiscriminator(nn.Module):
    """4x4 convs ndf (stride 2), then [features, group maps] through 2ndf, 4ndf (stride 2) and 8ndf
    (stride 1) with norm and LeakyReLU 0.2, and a 1-channel map of logits (IPCGAN's last conv has 512
    channels, each an LSGAN output; one channel is the PatchGAN convention)."""

    def __init__(self, groups: int, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.groups = groups
        self.head = nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True))
        layers, width = [], ndf + groups
        for out, stride in ((ndf * 2, 2), (ndf * 4, 2), (ndf * 8, 1)):
            layers += [nn.Conv2d(width, out, 4, stride, 1, bias=bias), make_norm(out), nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.body = nn.Sequential(*layers)

    def min_size(self) -> int:
        return 32

    def forward(self, images: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        h = self.head(images)
        maps = group_maps(groups, self.groups, h.shape[2], h.shape[3]).to(h.dtype)
        return self.body(torch.cat([h, maps], 1))
