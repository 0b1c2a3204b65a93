"""OP-GAN's networks (Hinz et al., "Semantic Object Accuracy for Generative Text-to-Image
Synthesis", TPAMI 2020): AttnGAN's stages with an object pathway beside the global one.

Layouts are boxes normalised to the image, rows [x, y, w, h] (padding rows -1), and
one-hot labels with the last class meaning "no object". A spatial transformer
(affine_grid / grid_sample) moves features between the image and each box:

  crop   (box_to_patch): a patch of the image region inside the box;
  paste  (patch_to_box): a patch placed into the box of an otherwise empty map.

A padding box (-1) maps outside the grid, so it crops and pastes zeros. Where pasted
objects overlap, the later one replaces the earlier one wherever its features are
non-zero (the authors' merge; objects come largest first).

Generator, first stage: every object's feature (its label, the conditioning-augmented
sentence and a local z) becomes a 16x16 patch pasted at its box (the object pathway);
the same features, pasted into a layout and encoded to a vector, join [c, z] of the
global pathway; at 16x16 the two are concatenated. Every later stage attends over the
words as AttnGAN's, and its object pathway cuts each box's region out of the incoming
features, refines it with the label and the sentence, and pastes it back.
Discriminators: every stage's has an object pathway (the image and the one-hot label cut
to each box) whose features join the global ones at a quarter of the image size.

Module and parameter names are the authors' (OP-GAN/code/model.py), so that their
checkpoints map onto these modules.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attngan import (D_NORMS, GLU, ConditioningAugmentation, GlobalAttention, ImageHead, LogitHead, ResBlock,
                      _d_norm, _leaky, _log2, block3x3, down_block, up_block)


# ------------------------------------------------------------ spatial transformer
def box_to_patch(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) boxes [x, y, w, h] -> (..., 2, 3) affine maps from patch to image coordinates:
    sampling the image through them crops the box (the authors' compute_transformation_matrix)."""
    x, y, w, h = boxes.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([w, zero, 2 * (x + w / 2) - 1], -1),
                        torch.stack([zero, h, 2 * (y + h / 2) - 1], -1)], -2)


def patch_to_box(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) boxes -> (..., 2, 3) maps from image to patch coordinates: sampling a patch
    through them pastes it into the box (compute_transformation_matrix_inverse)."""
    x, y, w, h = boxes.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([1 / w, zero, (1 - 2 * x - w) / w], -1),
                        torch.stack([zero, 1 / h, (1 - 2 * y - h) / h], -1)], -2)


def warp(features: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Resample (B, C, H, W) features through (B, 2, 3) maps onto a size x size grid."""
    grid = F.affine_grid(theta.to(features.dtype), [features.shape[0], features.shape[1], size, size],
                         align_corners=False)
    return F.grid_sample(features, grid, align_corners=False)


def merge(layout: torch.Tensor | None, pasted: torch.Tensor) -> torch.Tensor:
    """The authors' overlap rule: the new object's non-zero features replace what is there."""
    return pasted if layout is None else torch.where(pasted != 0, pasted, layout)


class Layout:
    """One batch's layouts: (B, M, 4) boxes, (B, M, C) one-hot labels and the box maps."""

    def __init__(self, boxes: torch.Tensor, one_hot: torch.Tensor):
        self.boxes, self.one_hot = boxes, one_hot
        self.crop, self.paste = box_to_patch(boxes.float()), patch_to_box(boxes.float())

    @property
    def objects(self) -> int:
        return self.boxes.shape[1]

    def shuffled(self) -> "Layout":
        """The boxes of another image (the batch reversed, as the authors' wrong-box pairs); labels stay."""
        return Layout(self.boxes.flip(0), self.one_hot)

    def paste_all(self, patches, size: int) -> torch.Tensor | None:
        """Paste patches[k] (B, C, h, w) into box k of a size x size map, merging in order."""
        out = None
        for k, patch in enumerate(patches):
            out = merge(out, warp(patch, self.paste[:, k], size))
        return out

    def tiled_labels(self, k: int, size: int) -> torch.Tensor:
        return self.one_hot[:, k, :, None, None].expand(-1, -1, size, size)


def conv3x3_stride(cin: int, cout: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


# ------------------------------------------------------------------ generator
class LayoutEncoder(nn.Module):
    """BBOX_NET: the objects' label features pasted into a layout_size map, summed, and encoded by
    three stride-2 convs to a vector for the global pathway (label_dim/8 x (layout_size/8)^2)."""

    def __init__(self, label_dim: int, layout_size: int):
        super().__init__()
        self.label_dim, self.layout_size = label_dim, layout_size
        self.encode = nn.Sequential(
            conv3x3_stride(label_dim, label_dim // 2, 2), _leaky(),
            conv3x3_stride(label_dim // 2, label_dim // 4, 2), nn.BatchNorm2d(label_dim // 4), _leaky(),
            conv3x3_stride(label_dim // 4, label_dim // 8, 2), nn.BatchNorm2d(label_dim // 8), _leaky())

    @property
    def out_dim(self) -> int:
        return self.label_dim // 8 * (self.layout_size // 8) ** 2

    def forward(self, labels: torch.Tensor, layout: Layout) -> torch.Tensor:
        size = self.layout_size
        total = labels.new_zeros(labels.shape[0], self.label_dim, size, size)
        for k in range(layout.objects):
            tiled = labels[:, k, :, None, None].expand(-1, -1, size, size)
            total = total + warp(tiled, layout.paste[:, k], size)
        return self.encode(total).flatten(1)


class ObjectInitStage(nn.Module):
    """INIT_STAGE_G with the object pathway: [c, z, layout code] -> 4x4 -> 16x16, where the
    objects' 16x16 features join, -> the first stage's size (two up-blocks to 16 px, then one
    per doubling: AttnGAN's 64 px first stage has four)."""

    def __init__(self, ngf: int, blocks: int, condition_dim: int, z_dim: int, local_z_dim: int, classes: int,
                 label_dim: int, layout_size: int = 16):
        super().__init__()
        if blocks < 2:
            raise ValueError("OP-GAN's first stage is at least 16 px (objects join at 16x16)")
        self.ngf, self.blocks, self.label_dim = ngf, blocks, label_dim
        self.bbox_net = LayoutEncoder(label_dim, layout_size)
        self.fc = nn.Sequential(nn.Linear(condition_dim + z_dim + self.bbox_net.out_dim, ngf * 4 * 4 * 2, bias=False),
                                nn.BatchNorm1d(ngf * 4 * 4 * 2), GLU())
        # object pathway: one feature per object, 4x4 -> 16x16, pasted at its box
        self.label = nn.Sequential(nn.Linear(condition_dim + classes + local_z_dim, label_dim, bias=False),
                                   nn.BatchNorm1d(label_dim), nn.ReLU(inplace=True))
        self.local1 = up_block(label_dim, ngf // 2)
        self.local2 = up_block(ngf // 2, ngf // 4)
        # global pathway: 4 -> 8 -> 16, joined by the objects' ngf/4 channels, then on to the stage's size
        self.upsample1 = up_block(ngf, ngf // 2)
        self.upsample2 = up_block(ngf // 2, ngf // 4)
        self.upsample3 = up_block(ngf // 2, ngf // 8)
        for i in range(4, blocks + 1):
            setattr(self, f"upsample{i}", up_block(ngf // 2 ** (i - 1), ngf // 2 ** i))

    def forward(self, z: torch.Tensor, local_z: torch.Tensor, c: torch.Tensor, layout: Layout) -> torch.Tensor:
        b = z.shape[0]
        labels = torch.stack([self.label(torch.cat([c, layout.one_hot[:, k], local_z], 1))
                              for k in range(layout.objects)], 1)                     # (B, M, label_dim)
        patches = (self.local2(self.local1(labels[:, k, :, None, None].expand(-1, -1, 4, 4)))
                   for k in range(layout.objects))
        objects = layout.paste_all(patches, 16)
        if objects is None:  # no object rows at all
            objects = z.new_zeros(b, self.ngf // 4, 16, 16)
        x = self.fc(torch.cat([c, z, self.bbox_net(labels, layout)], 1)).view(b, self.ngf, 4, 4)
        x = torch.cat([self.upsample2(self.upsample1(x)), objects], 1)
        for i in range(3, self.blocks + 1):
            x = getattr(self, f"upsample{i}")(x)
        return x


class ObjectNextStage(nn.Module):
    """NEXT_STAGE_G with the object pathway: AttnGAN's attention and residual blocks; each box's
    region of the incoming features (at a quarter of the size) with its label and the sentence,
    two up-blocks, pasted back; both joined before the up-block."""

    def __init__(self, ngf: int, word_dim: int, residual_blocks: int, condition_dim: int, classes: int,
                 label_dim: int):
        super().__init__()
        self.ngf, self.label_dim = ngf, label_dim
        self.att = GlobalAttention(ngf, word_dim)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(residual_blocks)])
        self.upsample = up_block(ngf * 3, ngf)
        self.label = nn.Sequential(nn.Linear(condition_dim + classes, label_dim, bias=False),
                                   nn.BatchNorm1d(label_dim), nn.ReLU(inplace=True))
        self.local1 = up_block(label_dim + ngf, ngf * 2)
        self.local2 = up_block(ngf * 2, ngf)

    def forward(self, h: torch.Tensor, c: torch.Tensor, words: torch.Tensor, mask: torch.Tensor | None,
                layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
        size = h.shape[2]
        context, attention = self.att(h, words, mask)
        out = self.residual(torch.cat([h, context], 1))

        def refined(k: int) -> torch.Tensor:
            label = self.label(torch.cat([c, layout.one_hot[:, k]], 1))
            patch = warp(h, layout.crop[:, k], size // 4)
            tiled = label.to(patch.dtype)[:, :, None, None].expand(-1, -1, *patch.shape[2:])
            return self.local2(self.local1(torch.cat([patch, tiled], 1)))

        objects = layout.paste_all((refined(k) for k in range(layout.objects)), size)
        if objects is None:
            objects = h.new_zeros(h.shape[0], self.ngf, size, size)
        return self.upsample(torch.cat([out, objects], 1)), attention


class OPGenerator(nn.Module):
    """G_NET of OP-GAN. forward(z, local_z, sentence, words, mask, layout) -> (images per stage,
    attention maps per later stage, mu, logvar), as AttnGenerator's."""

    def __init__(self, *, stages: int = 3, gf_dim: int = 48, z_dim: int = 100, local_z_dim: int = 32,
                 condition_dim: int = 100, embedding_dim: int = 256, residual_blocks: int = 3, classes: int = 81,
                 init_label_dim: int = 100, next_label_dim: int = 128, layout_size: int = 16, base_size: int = 64):
        super().__init__()
        blocks = _log2(base_size, "TREE.BASE_SIZE", minimum=16) - 2
        self.stages = stages
        self.ca_net = ConditioningAugmentation(embedding_dim, condition_dim)
        self.h_net1 = ObjectInitStage(gf_dim * 2 ** blocks, blocks, condition_dim, z_dim, local_z_dim, classes,
                                      init_label_dim, layout_size)
        self.img_net1 = ImageHead(gf_dim)
        for i in range(2, stages + 1):
            setattr(self, f"h_net{i}", ObjectNextStage(gf_dim, embedding_dim, residual_blocks, condition_dim,
                                                       classes, next_label_dim))
            setattr(self, f"img_net{i}", ImageHead(gf_dim))

    def forward(self, z: torch.Tensor, local_z: torch.Tensor, sentence: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor | None, layout: Layout):
        c, mu, logvar = self.ca_net(sentence)
        h = self.h_net1(z, local_z, c, layout)
        images, attentions = [self.img_net1(h)], []
        for i in range(2, self.stages + 1):
            h, attention = getattr(self, f"h_net{i}")(h, c, words, mask, layout)
            attentions.append(attention)
            images.append(getattr(self, f"img_net{i}")(h))
        return images, attentions, mu, logvar


# -------------------------------------------------------------- discriminators
class ObjectStageDiscriminator(nn.Module):
    """D_NET64 / D_NET128 / D_NET256 of OP-GAN (and 32 px, whose last conv keeps the size).

    Object pathway: each box's region of the image at a quarter of the image size, with its
    one-hot label tiled, through `local` (one 4x4 conv up to 64 px, two above), pasted back.
    Global pathway: two stride-2 convs to a quarter of the size, joined by the objects'
    2*ndf channels, then down to (ndf*8, 4, 4) for AttnGAN's logit heads.
    norm: batch (the authors') | spectral (no batch norm, convs with biases; wrap the weights
    with nets.init.spectrally_normalised after initialising) | none."""

    def __init__(self, image_size: int, *, df_dim: int = 96, embedding_dim: int = 256, classes: int = 81,
                 norm: str = "batch"):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"discriminator norm {norm!r} is not one of {D_NORMS}")
        ndf, bias = df_dim, norm != "batch"
        self.image_size, self.ndf = image_size, ndf
        self.quarter = image_size // 4
        doublings = max(_log2(image_size, "discriminator image size", minimum=32) - 6, 0)  # past 64 px
        self.act = _leaky()

        def conv(cin: int, cout: int, k: int = 4, s: int = 2, p: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, k, s, p, bias=bias)

        if doublings == 0:  # D_NET64's flat names
            self.conv1, self.conv2 = conv(3, ndf), conv(ndf, ndf * 2)
            self.bn2 = _d_norm(norm, ndf * 2)
            self.conv3, self.bn3 = conv(ndf * 4, ndf * 4), _d_norm(norm, ndf * 4)
            self.conv4 = conv(ndf * 4, ndf * 8) if image_size > 32 else conv(ndf * 4, ndf * 8, 3, 1, 1)
            self.bn4 = _d_norm(norm, ndf * 8)
            self.local = nn.Sequential(conv(3 + classes, ndf * 2, s=1), _d_norm(norm, ndf * 2), _leaky())
            self._after = []
        else:               # D_NET128, D_NET256 and beyond
            self.encode_img = nn.Sequential(conv(3, ndf), _leaky(), conv(ndf, ndf * 2), _d_norm(norm, ndf * 2),
                                            _leaky())
            self.encode_final = nn.Sequential(conv(ndf * 4, ndf * 4), _d_norm(norm, ndf * 4), _leaky(),
                                              conv(ndf * 4, ndf * 8), _d_norm(norm, ndf * 8), _leaky())
            self.local = nn.Sequential(conv(3 + classes, ndf, s=1), _d_norm(norm, ndf), _leaky(),
                                       conv(ndf, ndf * 2, s=1), _d_norm(norm, ndf * 2), _leaky())
            self._after, width, size = [], ndf * 8, 16
            for _ in range(doublings):             # halve the map, double the channels
                size *= 2
                self._after.append(f"img_code_s{size}")
                setattr(self, self._after[-1], down_block(width, width * 2, norm))
                width *= 2
            for j in range(1, doublings + 1):      # back to ndf*8 with 3x3 blocks
                self._after.append(f"img_code_s{size}_{j}")
                setattr(self, self._after[-1], block3x3(width, width // 2, norm))
                width //= 2
        self.UNCOND_DNET = LogitHead(ndf, embedding_dim, conditional=False, norm=norm)
        self.COND_DNET = LogitHead(ndf, embedding_dim, conditional=True, norm=norm)

    def objects(self, images: torch.Tensor, layout: Layout) -> torch.Tensor:
        size = self.quarter

        def local(k: int) -> torch.Tensor:
            patch = warp(images, layout.crop[:, k], size)
            return self.local(torch.cat([patch, layout.tiled_labels(k, size).to(patch.dtype)], 1))

        patches = (local(k) for k in range(layout.objects))
        pasted = layout.paste_all(patches, size)
        return pasted if pasted is not None else images.new_zeros(images.shape[0], self.ndf * 2, size, size)

    def forward(self, images: torch.Tensor, layout: Layout) -> torch.Tensor:
        """images (B, 3, S, S) and their layouts -> image code (B, ndf*8, 4, 4) for the heads."""
        objects = self.objects(images, layout)
        if not self._after:
            x = self.act(self.bn2(self.conv2(self.act(self.conv1(images)))))
            x = self.act(self.bn3(self.conv3(torch.cat([x, objects], 1))))
            return self.act(self.bn4(self.conv4(x)))
        x = self.encode_final(torch.cat([self.encode_img(images), objects], 1))
        for name in self._after:
            x = getattr(self, name)(x)
        return x
