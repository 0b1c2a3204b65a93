"""Networks of the super-resolution family.

SRResNet (Ledig et al. 2017, Fig. 4): a 9x9 conv and PReLU; B residual blocks (3x3 conv, BN,
PReLU, 3x3 conv, BN, + input); a 3x3 conv and BN added to the first conv's output (the long
skip); log2(scale) upsampling blocks (3x3 conv to 4x the width, PixelShuffle x2, PReLU); a 9x9
conv to the image. LR inputs enter in [0, 1] and outputs are in [-1, 1], the paper's ranges; the
last conv is linear (the paper's figure has no activation after it). Weights: PyTorch's layer
defaults (the paper does not give an initialisation). SR.NORM none drops the BN layers (EDSR's
finding, not the paper's network). SR.GLOBAL_RESIDUAL bicubic adds the output to the bicubic
upscaling of the input (VDSR's global residual learning, Kim et al. 2016; not the paper's network):
the low frequencies, which the paper's network learns last, are then given.

SRGAN discriminator (Fig. 4): a 3x3 conv (64) and LeakyReLU 0.2; seven 3x3 conv + BN +
LeakyReLU blocks, strides 2, 1, 2, 1, 2, 1, 2 and widths 64, 128, 128, 256, 256, 512, 512; a dense
layer of 1024, LeakyReLU, a dense layer to one logit. The dense layer sees a 6 x 6 map: the
paper's 96 px crops give exactly that, other sizes are average-pooled to it (any input size).

SRCNN (Dong et al. 2014/2016, 9-1-5): 9x9 conv to 64, ReLU, 1x1 conv to 32, ReLU, 5x5 conv to
the image, on the bicubic-upscaled input; weights N(0, 0.001), biases 0, as the paper. The
paper's convs have no padding (the output is 12 px smaller); here they are zero-padded to
keep the size, so whole images are scored as every other model's.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..imaging import bicubic_upscale


def check_scale(scale: int) -> int:
    """The number of x2 upsampling steps of `scale` (2, 4, 8)."""
    steps = int(math.log2(scale)) if scale > 1 else 0
    if scale < 2 or 2 ** steps != scale:
        from ..errors import GanstackError
        raise GanstackError(f"SR.SCALE={scale}: must be 2, 4 or 8 (a power of two)")
    return steps


def _norm(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(width) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, width: int, batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), _norm(width, batch_norm), nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1), _norm(width, batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleBlock(nn.Sequential):
    """x2: conv to 4x the channels, PixelShuffle (sub-pixel convolution, Shi et al. 2016), PReLU."""

    def __init__(self, width: int):
        super().__init__(nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width))


class SRResNet(nn.Module):
    def __init__(self, channels: int = 3, width: int = 64, blocks: int = 16, scale: int = 4, batch_norm: bool = True,
                 global_residual: str = "none"):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width, batch_norm) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1), _norm(width, batch_norm))
        self.upsample = nn.Sequential(*[UpsampleBlock(width) for _ in range(check_scale(scale))])
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        self.scale = scale
        self.global_residual = global_residual

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR in [-1, 1] (shifted to the paper's [0, 1] here) -> SR in [-1, 1] (not clipped)."""
        x = self.head(lr.add(1).mul(0.5))
        out = self.tail(self.upsample(x + self.body(x)))
        if self.global_residual == "bicubic":
            out = out + bicubic_upscale(lr, self.scale).to(out.dtype)
        return out


class SRGANDiscriminator(nn.Module):
    POOLED = 6  # the paper's 96 px crop after four stride-2 convs

    def __init__(self, channels: int = 3, width: int = 64, dense: int = 1024):
        super().__init__()
        plan = [(width, 2), (width * 2, 1), (width * 2, 2), (width * 4, 1), (width * 4, 2), (width * 8, 1),
                (width * 8, 2)]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        cin = width
        for cout, stride in plan:
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(self.POOLED)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin * self.POOLED ** 2, dense), nn.LeakyReLU(0.2),
                                        nn.Linear(dense, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> one logit per image, (B,)."""
        return self.classifier(self.pool(self.features(images))).squeeze(1)


class SRCNN(nn.Module):
    def __init__(self, channels: int = 3, widths: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 1, 5)):
        super().__init__()
        k1, k2, k3 = kernels
        self.body = nn.Sequential(
            nn.Conv2d(channels, widths[0], k1, padding=k1 // 2), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], k2, padding=k2 // 2), nn.ReLU(),
            nn.Conv2d(widths[1], channels, k3, padding=k3 // 2))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 1e-3)
                nn.init.zeros_(m.bias)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        """The bicubic-upscaled LR in [-1, 1] -> SR in [-1, 1] (not clipped)."""
        return self.body(upscaled)
