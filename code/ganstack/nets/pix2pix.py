"""Networks of the pix2pix family (Isola et al. 2017; multiscale D from pix2pixHD, Wang et al. 2018).

Generators: the U-Net (encoder-decoder with skips between mirrored layers) and the
ResNet generator (CycleGAN's: 7x7 conv, two downsamplings, residual blocks, two
upsamplings). Both take any input size: the input is reflect-padded up to the next
multiple of what the downsamplings need and the output is cropped back, so 100x60 or
250x250 images run (the original U-Net accepts only multiples of 256).

Discriminators return, for each scale, the list of their layers' activations, the last
being the logits map; the losses read the last (adversarial) or all of them (feature
matching):
  PatchGAN (n_layers; basic = 3 layers, 70x70 receptive field), pixel (1x1 convs),
  multiscale (NUM_D PatchGANs on an image pyramid halved by 3x3 average pooling).
Every D is conditional: it sees the input and the output concatenated on channels.

Layer widths, the norm (batch | instance | none), dropout and the weight init follow
the original code; one change: with no norm layer the convs keep their biases (the
original drops them, leaving the layers without any affine shift).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanstackError
from .init import init_weights  # the original's init, shared with AttnGAN


# ------------------------------------------------------------------ shared pieces
def norm_layer(kind: str):
    """channels -> norm module; batch norm is affine, instance norm is not (as the original)."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    return lambda channels: nn.Identity()


def conv_bias(norm: str) -> bool:
    """Batch norm's shift makes a conv bias redundant; instance norm (not affine) and no norm need it."""
    return norm != "batch"


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W (bottom/right) up to multiples of `multiple`; returns the original size."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        # reflect needs the pad smaller than the side; replicate covers tiny inputs
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def with_noise(x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """Concatenate z (B, Z) tiled over x's positions as Z extra channels (noise injection)."""
    if z is None or z.shape[1] == 0:
        return x
    return torch.cat([x, z[:, :, None, None].to(x.dtype).expand(-1, -1, *x.shape[-2:])], dim=1)


# ------------------------------------------------------------------ U-Net
class UnetGenerator(nn.Module):
    """pix2pix's U-Net with `depth` downsamplings (unet_256: 8, unet_128: 7).

    Encoder level i: LeakyReLU(0.2), 4x4 stride-2 conv, norm (none on the first and the
    innermost). Decoder level i: ReLU, 4x4 stride-2 transposed conv over [its input, the
    mirrored encoder output], norm, and dropout in the max(0, depth - 5) levels just above
    the innermost; the outermost ends in tanh. Widths: ngf, 2ngf, 4ngf, then 8ngf.
    With noise_dim > 0, z enters tiled at the input and at the bottleneck.
    """

    def __init__(self, input_nc: int, output_nc: int, depth: int = 8, ngf: int = 64, norm: str = "batch",
                 dropout: float = 0.5, noise_dim: int = 0):
        super().__init__()
        if depth < 2:
            raise GanstackError(f"PIX2PIX.UNET_DEPTH={depth}: a U-Net needs at least 2 levels")
        self.depth, self.noise_dim = depth, noise_dim
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        widths = [min(ngf * 2 ** i, ngf * 8) for i in range(depth)]  # encoder outputs, outermost first
        self.down = nn.ModuleList()
        for i in range(depth):
            cin = input_nc + noise_dim if i == 0 else widths[i - 1]
            layers = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=bias))
            if 0 < i < depth - 1:
                layers.append(make_norm(widths[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in range(depth):  # up[i] mirrors down[i]; it runs innermost first
            cin = widths[i] + noise_dim if i == depth - 1 else widths[i] * 2
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, output_nc, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                          make_norm(widths[i - 1])]
                if dropout > 0 and depth - 1 - max(0, depth - 5) <= i < depth - 1:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 2 ** self.depth)
        skips = []
        h_ = with_noise(x, z)
        for down in self.down:
            h_ = down(h_)
            skips.append(h_)
        h_ = self.up[-1](with_noise(skips[-1], z))
        for i in range(self.depth - 2, -1, -1):
            h_ = self.up[i](torch.cat([skips[i], h_], dim=1))
        return h_[..., :h, :w]


# ------------------------------------------------------------------ ResNet
class ResnetBlock(nn.Module):
    """x + (reflect pad, 3x3 conv, norm, ReLU, [dropout], reflect pad, 3x3 conv, norm)(x)."""

    def __init__(self, dim: int, norm: str, dropout: float, bias: bool | None = None):
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm) if bias is None else bias
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim), nn.ReLU(True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN/pix2pix's resnet_6blocks / resnet_9blocks (z, if any, enters tiled at the input).
    `bias` None: conv biases only where the norm has no shift (CycleGAN's); True: every conv has one
    (Fast-AgingGAN's models.py, whose released weights then load by name)."""

    def __init__(self, input_nc: int, output_nc: int, blocks: int = 9, ngf: int = 64, norm: str = "batch",
                 dropout: float = 0.0, noise_dim: int = 0, bias: bool | None = None):
        super().__init__()
        self.noise_dim = noise_dim
        make_norm, bias = norm_layer(norm), conv_bias(norm) if bias is None else bias
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc + noise_dim, ngf, 7, bias=bias), make_norm(ngf),
                  nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=bias), make_norm(ngf * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout, bias) for _ in range(blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                       make_norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 4)
        return self.model(with_noise(x, z))[..., :h, :w]


# ------------------------------------------------------------------ discriminators
def stage_outputs(stages: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """Every stage's activation (the last are the logits): what feature matching compares."""
    feats = []
    for stage in stages:
        x = stage(x)
        feats.append(x)
    return feats


def _sn(module: nn.Module, spectral: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if spectral else module


class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs ndf, 2ndf, ... (stride 2, `n_layers` of them), one more at stride 1,
    then a 1-channel map of logits; each logit sees a 70x70 patch for n_layers 3."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 spectral: bool = False):
        super().__init__()
        if spectral:
            norm = "none"  # spectral norm replaces the activation norm; convs keep their biases
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.n_layers = n_layers
        stages = [[_sn(nn.Conv2d(input_nc, ndf, 4, 2, 1), spectral), nn.LeakyReLU(0.2, True)]]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            stages.append([_sn(nn.Conv2d(width, out, 4, stride, 1, bias=bias), spectral), make_norm(out),
                           nn.LeakyReLU(0.2, True)])
            width = out
        stages.append([_sn(nn.Conv2d(width, 1, 4, 1, 1), spectral)])
        self.stages = nn.ModuleList(nn.Sequential(*s) for s in stages)

    def min_size(self) -> int:
        """The smallest input side that leaves a logits map: n_layers halvings, then two 4x4 stride-1 convs."""
        return 3 * 2 ** self.n_layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stages, x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (pixelGAN): judges colour per pixel, no spatial structure."""

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch", spectral: bool = False):
        super().__init__()
        if spectral:
            norm = "none"
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.stages = nn.ModuleList([
            nn.Sequential(_sn(nn.Conv2d(input_nc, ndf, 1), spectral), nn.LeakyReLU(0.2, True)),
            nn.Sequential(_sn(nn.Conv2d(ndf, ndf * 2, 1, bias=bias), spectral), make_norm(ndf * 2),
                          nn.LeakyReLU(0.2, True)),
            nn.Sequential(_sn(nn.Conv2d(ndf * 2, 1, 1, bias=bias), spectral))])

    def min_size(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stages, x)


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD: `num_d` PatchGANs, the k-th on the input average-pooled k times (3x3, stride 2)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 spectral: bool = False, num_d: int = 3):
        super().__init__()
        self.scales = nn.ModuleList(NLayerDiscriminator(input_nc, ndf, n_layers, norm, spectral)
                                    for _ in range(num_d))

    def min_size(self) -> int:
        return self.scales[0].min_size() * 2 ** (len(self.scales) - 1)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for k, d in enumerate(self.scales):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


class ConditionalDiscriminator(nn.Module):
    """Any of the Ds above on concat(input, output): returns one feature list per scale."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        side = min(image.shape[-2:])
        if side < self.body.min_size():
            raise GanstackError(f"images of {side} px are too small for this discriminator (it needs "
                                f"{self.body.min_size()} px): lower PIX2PIX.N_LAYERS_D or PIX2PIX.NUM_D, "
                                "or use larger images")
        out = self.body(torch.cat([condition, image.to(condition.dtype)], dim=1))
        return out if isinstance(self.body, MultiscaleDiscriminator) else [out]


# ------------------------------------------------------------------ label-map inputs
class LabelOneHot(nn.Module):
    """An RGB label map in [-1, 1] (B, 3, H, W) -> (B, N, H, W) one-hot of each pixel's nearest palette
    colour (pix2pixHD's encode_input with --label_nc N): G and D see classes, not colours. Nearest,
    not exact, so a resized or re-encoded map still decodes (up to its blurred borders)."""

    def __init__(self, palette):
        super().__init__()
        self.register_buffer("palette", torch.as_tensor(palette, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.float().add(1).mul(127.5)
        # |c|^2 - 2 c.rgb orders the colours as |rgb - c|^2 does (|rgb|^2 is the same for all), without
        # the (B, N, 3, H, W) difference tensor: this runs on every training step. In fp32 even under
        # autocast: a bf16 einsum of 0-255 values mislabels about 0.2 % of pixels between close hues.
        with torch.autocast(x.device.type, enabled=False):
            distance = (self.palette.square().sum(1)[None, :, None, None]
                        - 2 * torch.einsum("nc,bchw->bnhw", self.palette, rgb))  # (B, N, H, W)
        ids = distance.argmin(1)
        return F.one_hot(ids, len(self.palette)).permute(0, 3, 1, 2).to(x.dtype).contiguous()


def input_channels(cfg) -> int:
    """Channels G takes (and D beside the image): DATA.LABEL_NC one-hot classes, else DATA.INPUT_NC."""
    return cfg.DATA.LABEL_NC or cfg.DATA.INPUT_NC


# ------------------------------------------------------------------ builders from the config
def build_generator(cfg) -> nn.Module:
    p, d = cfg.PIX2PIX, cfg.DATA
    if p.NET_G == "unet":
        depth = p.UNET_DEPTH or max(2, (d.CROP_SIZE - 1).bit_length())  # log2, rounded up
        net = UnetGenerator(input_channels(cfg), d.OUTPUT_NC, depth, p.NGF, p.NORM, p.DROPOUT, p.NOISE_DIM)
    else:
        blocks = int(p.NET_G.split("_")[1].removesuffix("blocks"))
        net = ResnetGenerator(input_channels(cfg), d.OUTPUT_NC, blocks, p.NGF, p.NORM, p.DROPOUT, p.NOISE_DIM)
    return init_weights(net, p.INIT_TYPE, p.INIT_GAIN)


def build_discriminator(cfg) -> ConditionalDiscriminator:
    p, d = cfg.PIX2PIX, cfg.DATA
    channels = input_channels(cfg) + d.OUTPUT_NC
    if p.NET_D in ("basic", "n_layers"):
        body = NLayerDiscriminator(channels, p.NDF, 3 if p.NET_D == "basic" else p.N_LAYERS_D, p.NORM,
                                   p.SPECTRAL_NORM)
    elif p.NET_D == "pixel":
        body = PixelDiscriminator(channels, p.NDF, p.NORM, p.SPECTRAL_NORM)
    else:
        body = MultiscaleDiscriminator(channels, p.NDF, p.N_LAYERS_D, p.NORM, p.SPECTRAL_NORM, p.NUM_D)
    if d.PREPROCESS != "none" and d.CROP_SIZE < body.min_size():
        raise GanstackError(f"PIX2PIX.NET_D={p.NET_D} needs images of at least {body.min_size()} px, but "
                            f"DATA.CROP_SIZE={d.CROP_SIZE}: lower PIX2PIX.N_LAYERS_D or PIX2PIX.NUM_D")
    return ConditionalDiscriminator(init_weights(body, p.INIT_TYPE, p.INIT_GAIN))
