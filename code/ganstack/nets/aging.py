"""Face-aging discriminators: Fast-AgingGAN's PatchGAN, whose patch logits are averaged to one per
image, and IPCGAN's conditional PatchGAN, where the age-group maps join after the first layer."""
from __future__ import annotations

import torch
from torch import nn

from .pix2pix import conv_bias, norm_layer


def group_maps(groups: torch.Tensor, count: int, height: int, width: int) -> torch.Tensor:
    """One-hot age groups (B,) -> (B, count, H, W) constant maps, as IPCGAN feeds its conditions."""
    onehot = torch.nn.functional.one_hot(groups.long(), count).float()
    return onehot[:, :, None, None].expand(-1, -1, height, width)


class AveragedPatchDiscriminator(nn.Module):
    """Fast-AgingGAN's discriminator (models.py): 4x4 convs ndf (stride 2, no norm), 2ndf (stride 2,
    batch norm), 4ndf (stride 2, instance norm), 8ndf (stride 1, instance norm), LeakyReLU 0.2, a
    1-channel map of patch logits, averaged over the map: one LSGAN output per image. Its layer
    names are the original's, so its weights load by name."""

    def __init__(self, ndf: int = 32):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1), nn.InstanceNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 1, 1), nn.InstanceNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 1))

    def min_size(self) -> int:
        return 32  # the two stride-1 4x4 convs need a 4x4 map after three halvings

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).mean((2, 3))


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
