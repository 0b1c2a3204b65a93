"""AttnGAN's networks (Xu et al. 2018) as reusable blocks; OP-GAN builds on the same pieces.

Generator (G_NET): conditioning augmentation turns the sentence embedding into c;
the first stage maps [c, z] to a 64x64 feature map (a linear layer and four GLU
up-blocks); every further stage attends from each pixel to the words (GlobalAttention),
concatenates the word context, refines with residual blocks and doubles the size.
Each stage has a 3x3 conv + tanh image head (AttnDCGAN: only the last one).

Discriminators (D_NET64/128/256, generalised to any stage): the image is encoded to
(ndf*8, 4, 4); an unconditional head and a conditional head (sentence tiled 4x4,
joined by a 3x3 conv) each give one logit per image. Sigmoids are left to the loss.

Module and parameter names are the original's, so the authors' checkpoints load as
they are (tests/fixtures/attngan_state_dict_manifest.json).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanstackError


def _log2(size: int, key: str, minimum: int) -> int:
    exponent = int(size).bit_length() - 1
    if size < minimum or 2 ** exponent != size:
        raise GanstackError(f"{key}={size}: AttnGAN sizes are powers of two from {minimum}; set e.g. 64")
    return exponent


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0, bias=False)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


class GLU(nn.Module):
    """Gated linear unit over channels: first half * sigmoid(second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if x.requires_grad and nhwc:  # TRAIN.CHANNELS_LAST
            # glu's backward returns an NCHW gradient, and batch norm's backward on an NHWC input with
            # an NCHW gradient takes a slow strided path (10x on CPU): hand it back in the input's layout.
            x.register_hook(lambda grad: grad.contiguous(memory_format=torch.channels_last))
        return F.glu(x, dim=1)  # one fused kernel: its backward is 3x faster on CPU than slices'


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest 2x upsampling -> 3x3 conv -> BN -> GLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, cout * 2),
                         nn.BatchNorm2d(cout * 2), GLU())


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(conv3x3(channels, channels * 2), nn.BatchNorm2d(channels * 2), GLU(),
                                   conv3x3(channels, channels), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ConditioningAugmentation(nn.Module):
    """CA_NET: sentence embedding -> (mu, logvar) -> c = mu + sigma * eps (KL-regularised)."""

    def __init__(self, embedding_dim: int, condition_dim: int):
        super().__init__()
        self.condition_dim = condition_dim
        self.fc = nn.Linear(embedding_dim, condition_dim * 4)
        self.relu = GLU()

    def forward(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.relu(self.fc(sentence))
        mu, logvar = x[:, :self.condition_dim], x[:, self.condition_dim:]
        c = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return c, mu, logvar


class GlobalAttention(nn.Module):
    """Each image location attends over the words: the word context at every pixel.

    query (B, idf, H, W), words (B, cdf, L) -> context (B, idf, H, W), attention (B, L, H, W).
    Padding words (mask True) get no attention."""

    def __init__(self, idf: int, cdf: int):
        super().__init__()
        self.conv_context = conv1x1(cdf, idf)

    def forward(self, query: torch.Tensor, words: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, idf, h, w = query.shape
        source = self.conv_context(words.unsqueeze(3)).squeeze(3)           # (B, idf, L)
        scores = torch.bmm(query.reshape(b, idf, h * w).transpose(1, 2), source)  # (B, HW, L)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, :], float("-inf"))
        attention = F.softmax(scores, dim=2).transpose(1, 2)                   # (B, L, HW)
        context = torch.bmm(source, attention)                                 # (B, idf, HW)
        return context.view(b, idf, h, w), attention.reshape(b, -1, h, w)


class InitStage(nn.Module):
    """INIT_STAGE_G: [c, z] -> (ngf/16, 64, 64) through a linear layer and four up-blocks.

    Any other first-stage size S (a power of two >= 8) takes log2(S/4) up-blocks from
    ngf = out_channels * 2^blocks channels; AttnGAN's 64 px stage is the case of four."""

    def __init__(self, ngf: int, in_dim: int, blocks: int = 4):
        super().__init__()
        self.ngf, self.blocks = ngf, blocks
        self.fc = nn.Sequential(nn.Linear(in_dim, ngf * 4 * 4 * 2, bias=False), nn.BatchNorm1d(ngf * 4 * 4 * 2), GLU())
        for i in range(1, blocks + 1):
            setattr(self, f"upsample{i}", up_block(ngf // 2 ** (i - 1), ngf // 2 ** i))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([c, z], dim=1)).view(-1, self.ngf, 4, 4)
        for i in range(1, self.blocks + 1):
            x = getattr(self, f"upsample{i}")(x)
        return x


class NextStage(nn.Module):
    """NEXT_STAGE_G: features + word context -> residual blocks -> 2x larger features."""

    def __init__(self, ngf: int, word_dim: int, residual_blocks: int):
        super().__init__()
        self.att = GlobalAttention(ngf, word_dim)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(residual_blocks)])
        self.upsample = up_block(ngf * 2, ngf)

    def forward(self, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        context, attention = self.att(h, words, mask)
        return self.upsample(self.residual(torch.cat([h, context], dim=1))), attention


class ImageHead(nn.Module):
    """GET_IMAGE_G: features -> RGB in [-1, 1]."""

    def __init__(self, ngf: int):
        super().__init__()
        self.img = nn.Sequential(conv3x3(ngf, 3), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.img(h)


class AttnGenerator(nn.Module):
    """G_NET (dcgan=False: an image at every stage) or G_DCGAN (dcgan=True: the last stage only).

    forward(z, sentence, words, mask) -> (images per stage, attention maps per later stage, mu, logvar).
    """

    def __init__(self, *, stages: int = 3, gf_dim: int = 32, z_dim: int = 100, condition_dim: int = 100,
                 embedding_dim: int = 256, residual_blocks: int = 2, dcgan: bool = False, base_size: int = 64):
        super().__init__()
        blocks = _log2(base_size, "TREE.BASE_SIZE", minimum=8) - 2
        self.stages, self.dcgan = stages, dcgan
        self.ca_net = ConditioningAugmentation(embedding_dim, condition_dim)
        self.h_net1 = InitStage(gf_dim * 2 ** blocks, z_dim + condition_dim, blocks)
        for i in range(2, stages + 1):
            setattr(self, f"h_net{i}", NextStage(gf_dim, embedding_dim, residual_blocks))
        if dcgan:
            self.img_net = ImageHead(gf_dim)
        else:
            for i in range(1, stages + 1):
                setattr(self, f"img_net{i}", ImageHead(gf_dim))

    def forward(self, z: torch.Tensor, sentence: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor | None = None):
        c, mu, logvar = self.ca_net(sentence)
        h = self.h_net1(z, c)
        images, attentions = [], []
        for i in range(1, self.stages + 1):
            if i > 1:
                h, attention = getattr(self, f"h_net{i}")(h, words, mask)
                attentions.append(attention)
            if not self.dcgan:
                images.append(getattr(self, f"img_net{i}")(h))
        if self.dcgan:
            images.append(self.img_net(h))
        return images, attentions, mu, logvar


# ------------------------------------------------------------------ discriminators
def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


D_NORMS = ("batch", "spectral", "none")


def _d_norm(kind: str, channels: int) -> nn.Module:
    # spectral: the weights are normalised instead (nets.init.spectrally_normalised), activations are not
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


def encode_by_16(ndf: int, norm: str = "batch", *, image_size: int = 64) -> nn.Sequential:
    """Four 4x4 stride-2 convs: (3, S, S) -> (ndf*8, S/16, S/16); no norm on the first. Smaller
    images keep a 4x4 code with 3x3 stride-1 convs last: one for 32 px, two for 16 px (the CPU-sized
    16 -> 32 px trees' first stage). Convs carry a bias only where no batch norm follows them."""
    bias = norm != "batch"
    halvings = min(_log2(image_size, "discriminator image size", minimum=16) - 2, 4)  # to 4x4, at most /16
    strides = [2 if i < halvings else 1 for i in range(4)]

    def conv(cin: int, cout: int, stride: int) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, 4, 2, 1, bias=bias) if stride == 2 else nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)

    return nn.Sequential(
        conv(3, ndf, strides[0]), _leaky(),
        conv(ndf, ndf * 2, strides[1]), _d_norm(norm, ndf * 2), _leaky(),
        conv(ndf * 2, ndf * 4, strides[2]), _d_norm(norm, ndf * 4), _leaky(),
        conv(ndf * 4, ndf * 8, strides[3]), _d_norm(norm, ndf * 8), _leaky())


def down_block(cin: int, cout: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=norm != "batch"), _d_norm(norm, cout), _leaky())


def block3x3(cin: int, cout: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=norm != "batch"), _d_norm(norm, cout), _leaky())


class LogitHead(nn.Module):
    """D_GET_LOGITS: (ndf*8, 4, 4) [+ sentence tiled 4x4, joined by a 3x3 block] -> one logit."""

    def __init__(self, ndf: int, embedding_dim: int, conditional: bool, norm: str = "batch"):
        super().__init__()
        self.embedding_dim = embedding_dim
        if conditional:
            self.jointConv = block3x3(ndf * 8 + embedding_dim, ndf * 8, norm)
        self.outlogits = nn.Sequential(nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=4))

    def forward(self, code: torch.Tensor, sentence: torch.Tensor | None = None) -> torch.Tensor:
        if sentence is not None:
            tiled = sentence.view(-1, self.embedding_dim, 1, 1).expand(-1, -1, code.shape[2], code.shape[3])
            code = self.jointConv(torch.cat([code, tiled], dim=1))
        return self.outlogits(code).flatten()


class StageDiscriminator(nn.Module):
    """D_NET64, D_NET128, D_NET256 and beyond (any power-of-two image_size >= 16): encodes the
    image to (ndf*8, 4, 4); `COND_DNET` and `UNCOND_DNET` score it with and without the sentence
    (either may be left out: conditional=False, unconditional=False).
    norm: batch (the original) | spectral (batch norm removed, convs with biases; apply
    `nets.init.spectrally_normalised` after initialising) | none."""

    def __init__(self, image_size: int, *, df_dim: int = 64, embedding_dim: int = 256, unconditional: bool = True,
                 conditional: bool = True, norm: str = "batch"):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"discriminator norm {norm!r} is not one of {D_NORMS}")
        ndf, size = df_dim, 16
        stage = max(_log2(image_size, "discriminator image size", minimum=16) - 6, 0)  # down-blocks after /16
        self.image_size = image_size
        self.img_code_s16 = encode_by_16(ndf, norm=norm, image_size=image_size)
        width = ndf * 8
        self._after_s16 = []                        # the original's names, in forward order
        for _ in range(stage):                      # halve the map, double the channels
            size *= 2
            self._after_s16.append(f"img_code_s{size}")
            setattr(self, self._after_s16[-1], down_block(width, width * 2, norm))
            width *= 2
        for j in range(1, stage + 1):               # back to ndf*8 channels with 3x3 blocks
            self._after_s16.append(f"img_code_s{size}_{j}")
            setattr(self, self._after_s16[-1], block3x3(width, width // 2, norm))
            width //= 2
        if unconditional:
            self.UNCOND_DNET = LogitHead(ndf, embedding_dim, conditional=False, norm=norm)
        if conditional:  # StackGAN++'s unconditional mode has the unconditional head alone
            self.COND_DNET = LogitHead(ndf, embedding_dim, conditional=True, norm=norm)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> image code (B, ndf*8, 4, 4); score it with the heads."""
        code = self.img_code_s16(images)
        for name in self._after_s16:
            code = getattr(self, name)(code)
        return code
