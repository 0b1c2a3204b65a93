"""Conditional DCGAN of GAN-INT-CLS (Reed et al. 2016), at any power-of-two size >= 16.

Generator: the text embedding is projected (Linear -> BN -> LeakyReLU 0.2) to
``proj_dim`` and concatenated with z; transposed 4x4 convolutions grow it from
4x4, halving the channels each time (ngf*8 ... ngf at 64 px), tanh output.

Discriminator: stride-2 4x4 convolutions shrink the image to 4x4 (ndf ... ndf*8
at 64 px, no norm on the first); the projected embedding is tiled 4x4 and
concatenated, then (Reed et al., Sec. 3.1) a 1x1 convolution with norm and
LeakyReLU mixes image and text, and a 4x4 convolution gives one logit. Without
that 1x1 layer the text only adds an image-independent bias to the logit, so
the matching-aware (CLS) discriminator cannot tell a right caption from a wrong
one (the reference PyTorch code drops it). The 4x4 feature map before the text
joins is returned too: the generator's feature-matching target.
Unconditional (vanilla_*) discriminators and generators simply skip the text.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import GanstackError
from .init import spectrally_normalised


def _levels(image_size: int) -> int:
    """Number of 2x steps between 4x4 and image_size."""
    levels = math.log2(image_size / 4) if image_size > 0 else -1
    if image_size < 16 or levels != int(levels):
        raise GanstackError(f"TREE.BASE_SIZE {image_size}: GAN-INT-CLS needs a power of two >= 16 (e.g. 64)")
    return int(levels)


def _init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class TextProjection(nn.Sequential):
    """Embedding -> Linear -> BN -> LeakyReLU(0.2), as in both of Reed's networks."""

    def __init__(self, embed_dim: int, proj_dim: int, norm: bool = True):
        super().__init__(nn.Linear(embed_dim, proj_dim), nn.BatchNorm1d(proj_dim) if norm else nn.Identity(),
                         nn.LeakyReLU(0.2, inplace=True))


class Generator(nn.Module):
    def __init__(self, *, embed_dim: int, z_dim: int = 100, proj_dim: int = 128, ngf: int = 64,
                 image_size: int = 64, conditional: bool = True):
        super().__init__()
        levels = _levels(image_size)
        self.z_dim = z_dim
        self.project = TextProjection(embed_dim, proj_dim) if conditional else None
        width = ngf * 2 ** (levels - 1)
        layers = [nn.ConvTranspose2d(z_dim + (proj_dim if conditional else 0), width, 4, 1, 0, bias=False),
                  nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(levels - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_dcgan(self)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, z_dim), embedding (B, embed_dim) -> images (B, 3, S, S) in [-1, 1]."""
        x = z if self.project is None else torch.cat([z, self.project(embedding)], dim=1)
        return self.net(x[:, :, None, None])


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: per sample, how close it is to the rest of the batch.

    Features (B, A) -> M (B, n_kernels, kernel_dim); o_b(x_i) = sum_j exp(-|M_ib - M_jb|_1);
    returns (B, n_kernels), which lets D spot a generator that collapsed.
    """

    def __init__(self, in_features: int, n_kernels: int = 32, kernel_dim: int = 16):
        super().__init__()
        self.n_kernels, self.kernel_dim = n_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, n_kernels * kernel_dim) * 0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = (features.flatten(1) @ self.T).view(-1, self.n_kernels, self.kernel_dim)
        distance = (m[:, None] - m[None]).abs().sum(-1)       # (B, B, n_kernels)
        return torch.exp(-distance).sum(1) - 1.0                # minus the sample itself


def _norm(kind: str, channels: int) -> nn.Module:
    # WGAN-GP penalises per-sample gradients, which batch statistics would mix: layer norm there.
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()  # spectral / none: no activation normalisation


class Discriminator(nn.Module):
    def __init__(self, *, embed_dim: int, proj_dim: int = 128, ndf: int = 64, image_size: int = 64,
                 conditional: bool = True, norm: str = "batch", minibatch_kernels: int = 0):
        super().__init__()
        levels = _levels(image_size)
        layers = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(levels - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), _norm(norm, width * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.minibatch = MinibatchDiscrimination(width * 16, minibatch_kernels) if minibatch_kernels else None
        self.project = TextProjection(embed_dim, proj_dim, norm=norm in ("batch", "layer")) if conditional else None
        joined = width + (proj_dim if conditional else 0) + minibatch_kernels
        self.joint = None if joined == width else nn.Sequential(
            nn.Conv2d(joined, width, 1, bias=False), _norm(norm, width), nn.LeakyReLU(0.2, inplace=True))
        self.logit = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        _init_dcgan(self)
        if norm == "spectral":
            spectrally_normalised(self)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) -> (logits (B,), 4x4 features (B, ndf*8, 4, 4))."""
        feats = self.features(images)
        parts = [feats]
        if self.project is not None:
            parts.append(self.project(embedding)[:, :, None, None].expand(-1, -1, 4, 4))
        if self.minibatch is not None:
            parts.append(self.minibatch(feats)[:, :, None, None].expand(-1, -1, 4, 4))
        joined = feats if self.joint is None else self.joint(torch.cat(parts, dim=1))
        return self.logit(joined).flatten(), feats
