"""StackGAN++'s tree generator (Zhang et al., TPAMI 2018; the authors' code/model.py G_NET),
built from AttnGAN's blocks (nets/attngan.py), which came from it.

Conditional (GAN.B_CONDITION): conditioning augmentation turns the text embedding (TEXT.DIMENSION,
1024 for char-CNN-RNN) into c (GAN.EMBEDDING_DIM, 128). Unconditional: c is z itself.

  stage 1   [c, z] (or z) -> linear -> 4x4 x 16 ngf -> four GLU up-blocks -> ngf x 64 x 64
  stage i   h, c tiled -> joint 3x3 conv (GLU) -> GAN.R_NUM residual blocks -> up-block:
            half the channels, twice the size (stages beyond the third: one residual block,
            as the authors' recommended deeper trees)
  each      a 3x3 conv + tanh image head: one image per scale (64, 128, 256 by default)

The discriminators are AttnGAN's StageDiscriminator (the same D_NET64/128/256 layers) with the
CA mean as the condition. Module and parameter names are the authors', so their released
generators (netG_210000.pth for birds, netG_*.pth for LSUN) load as they are
(tests/fixtures/stackgan2_state_dict_manifest.json).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GanstackError
from .attngan import GLU, ConditioningAugmentation, ImageHead, InitStage, ResBlock, _log2, conv3x3, up_block


def joint_block(cin: int, cout: int) -> nn.Sequential:
    """Block3x3_relu: 3x3 conv -> BN -> GLU, keeping the size."""
    return nn.Sequential(conv3x3(cin, cout * 2), nn.BatchNorm2d(cout * 2), GLU())


class TreeStage(nn.Module):
    """NEXT_STAGE_G: features and the tiled condition -> residual blocks -> twice the size, half the channels."""

    def __init__(self, ngf: int, condition_dim: int, residual_blocks: int):
        super().__init__()
        self.condition_dim = condition_dim
        self.jointConv = joint_block(ngf + condition_dim, ngf)
        self.residual = nn.Sequential(*[ResBlock(ngf) for _ in range(residual_blocks)])
        self.upsample = up_block(ngf, ngf // 2)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        tiled = c.view(-1, self.condition_dim, 1, 1).expand(-1, -1, h.shape[2], h.shape[3])
        return self.upsample(self.residual(self.jointConv(torch.cat([tiled, h], dim=1))))


class TreeGenerator(nn.Module):
    """G_NET. forward(z, embedding=None) -> (images per stage, mu, logvar); mu and logvar are
    None when unconditional."""

    def __init__(self, *, stages: int = 3, gf_dim: int = 64, z_dim: int = 100, condition_dim: int = 128,
                 text_dim: int = 1024, residual_blocks: int = 2, conditional: bool = True, base_size: int = 64):
        super().__init__()
        blocks = _log2(base_size, "TREE.BASE_SIZE", minimum=8) - 2
        if gf_dim % 2 ** (stages - 1) or gf_dim < 2 ** stages:
            raise GanstackError(f"GAN.GF_DIM={gf_dim} halves at each of the {stages - 1} later stages; use a "
                                f"multiple of {2 ** (stages - 1)} of at least {2 ** stages}")
        self.stages, self.conditional, self.z_dim = stages, conditional, z_dim
        c_dim = condition_dim if conditional else z_dim   # the unconditional tree feeds z to every stage
        if conditional:
            self.ca_net = ConditioningAugmentation(text_dim, condition_dim)
        self.h_net1 = InitStage(gf_dim * 2 ** blocks, z_dim + (condition_dim if conditional else 0), blocks)
        self.img_net1 = ImageHead(gf_dim)
        for i in range(2, stages + 1):
            ngf = gf_dim // 2 ** (i - 2)
            setattr(self, f"h_net{i}", TreeStage(ngf, c_dim, residual_blocks if i <= 3 else 1))
            setattr(self, f"img_net{i}", ImageHead(ngf // 2))

    def forward(self, z: torch.Tensor, embedding: torch.Tensor | None = None):
        if self.conditional:
            if embedding is None:
                raise ValueError("a conditional StackGAN++ generator needs the text embedding")
            c, mu, logvar = self.ca_net(embedding)
            h = self.h_net1(z, c)
        else:
            c, mu, logvar = z, None, None
            h = self.h_net1(z, z[:, :0])   # [c, z] with no c: z alone
        images = [self.img_net1(h)]
        for i in range(2, self.stages + 1):
            h = getattr(self, f"h_net{i}")(h, c)
            images.append(getattr(self, f"img_net{i}")(h))
        return images, mu, logvar


def mean_and_covariance(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the colour mean (B, C, 1, 1) and the C x C covariance of its pixels (B, C, C)."""
    b, ch, h, w = images.shape
    mu = images.mean(dim=(2, 3), keepdim=True)
    centred = (images - mu).reshape(b, ch, h * w)
    return mu, torch.bmm(centred, centred.transpose(1, 2)) / (h * w)


def colour_consistency(finer: torch.Tensor, coarser: torch.Tensor, weight: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """StackGAN++'s colour-consistency terms between adjacent scales: weight x MSE of the colour
    means and 5 x weight x MSE of the covariances; the coarser image is a fixed target."""
    mu1, cov1 = mean_and_covariance(finer)
    mu2, cov2 = mean_and_covariance(coarser.detach())
    return (weight * nn.functional.mse_loss(mu1, mu2),
            5 * weight * nn.functional.mse_loss(cov1, cov2))


def colour_variance(images: torch.Tensor) -> torch.Tensor:
    """The mean over images of each image's pixel variance (over positions, averaged over
    channels): near 0 when a generator collapses to flat colours."""
    return images.float().flatten(2).var(dim=2).mean()
