"""Pictures for people: attention maps over images, strips of tiles with text labels, any
channel count shown as RGB.

Images here are (3, H, W) float tensors in [0, 1].
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont


def attention_overlay(image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Each map (K, h, w), scaled to its own maximum and resized to the image, laid over a
    dimmed copy of the image: (K, 3, H, W), bright where the map attends."""
    maps = maps.float()
    maps = maps / maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    maps = F.interpolate(maps[:, None], size=image.shape[-2:], mode="bilinear", align_corners=False)
    return (image[None] * 0.35 + maps.expand(-1, 3, -1, -1) * 0.65).clamp(0, 1)


def labelled_strip(tiles: torch.Tensor, labels: list[str], *, tile_size: int = 96, pad: int = 2,
                   label_height: int = 14) -> torch.Tensor:
    """Tiles (N, 3, h, w) side by side at tile_size, each with its label written underneath:
    (3, tile_size + label_height, N * (tile_size + pad)) on white."""
    tiles = F.interpolate(tiles.float(), size=(tile_size, tile_size), mode="nearest")
    width = len(tiles) * (tile_size + pad)
    canvas = Image.new("RGB", (width, tile_size + label_height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, (tile, label) in enumerate(zip(tiles, labels)):
        x = k * (tile_size + pad)
        array = (tile.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        canvas.paste(Image.fromarray(array), (x, 0))
        text = label if draw.textlength(label, font=font) <= tile_size else label[: tile_size // 7] + "…"
        draw.text((x + 2, tile_size + 1), text, fill="black", font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def png_bytes(image: torch.Tensor) -> bytes:
    """(3, H, W) in [-1, 1] -> PNG bytes, rounded to uint8 (sample galleries, the serve API)."""
    array = image.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def three_channels(images: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) with any C -> 3 channels for viewing: grey repeated, channels beyond the third dropped."""
    return images.expand(*images.shape[:-3], 3, *images.shape[-2:]) if images.shape[-3] == 1 else images[..., :3, :, :]


def boxes_overlay(image: torch.Tensor, boxes, names: list[str], *, size: int = 256) -> torch.Tensor:
    """The image at size x size with each box ([x, y, w, h] normalised) outlined and its name
    written at its top left: (3, size, size) in [0, 1]."""
    big = F.interpolate(image[None].float(), size=(size, size), mode="nearest")[0]
    canvas = Image.fromarray((big.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy())
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    palette = ("#ff3030", "#30c0ff", "#ffe030", "#40ff60", "#ff60ff", "#ffffff")
    for k, (box, name) in enumerate(zip(boxes, names)):
        x, y, w, h = (float(v) * size for v in box)
        colour = palette[k % len(palette)]
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=2)
        left, top, right, bottom = draw.textbbox((x + 2, y + 1), name, font=font)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill="black")
        draw.text((x + 2, y + 1), name, fill=colour, font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255
