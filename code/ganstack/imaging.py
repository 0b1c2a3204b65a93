"""Pixel operations as MATLAB does them, because super-resolution results are defined by them.

  imresize(x, scale)    MATLAB's imresize(img, scale, 'bicubic'): Keys' cubic (a = -0.5), the
                        kernel stretched by 1/scale when shrinking (antialiasing), symmetric
                        (mirror) padding at the borders. DIV2K's and the benchmark sets' LR images
                        were made with it. For uint8 images MATLAB rounds to uint8 after each of
                        the two passes; `quantize=True` does the same.
  rgb_to_ycbcr / ycbcr_to_rgb
                        ITU-R BT.601 as MATLAB's rgb2ycbcr: Y in [16, 235] / 255 for RGB in [0, 1].
  modcrop(x, scale)     the bottom/right pixels that make H and W multiples of the scale are cut
                        (MATLAB's modcrop of the SR benchmark scripts).

Everything works on float tensors (..., H, W) or (..., C, H, W) on any device; the resize is two
matrix products with weights built once per (input size, output size, scale).
"""
from __future__ import annotations

import functools
import math

import torch

# MATLAB rgb2ycbcr (BT.601), rows Y, Cb, Cr, for RGB in [0, 1]; offsets in the same units
_YCBCR = torch.tensor([[65.481, 128.553, 24.966],
                       [-37.797, -74.203, 112.0],
                       [112.0, -93.786, -18.214]], dtype=torch.float64) / 255
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's bicubic)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """(out_len, in_len) float64 weights of MATLAB's contributions() for one dimension."""
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)           # the output pixel's centre in input coordinates (1-based)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    distance = u[:, None] - index
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    weights = weights / weights.sum(1, keepdim=True)
    # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
    zero_based = (index - 1).long() % (2 * in_len)
    zero_based = torch.where(zero_based < in_len, zero_based, 2 * in_len - 1 - zero_based)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, zero_based, weights)
    return matrix


def imresize(x: torch.Tensor, scale: float, *, quantize: bool = False, antialias: bool = True) -> torch.Tensor:
    """MATLAB imresize(x, scale, 'bicubic') of a float tensor (..., H, W) in [0, 1] (or any range).
    Output size ceil(scale * size). quantize: round to 1/255 steps and clip to [0, 1] after each
    pass, as MATLAB does for uint8 images. The pass order is MATLAB's: the dimension with the
    smaller scale first, rows (H) first when equal, which here is always rows."""
    h, w = x.shape[-2:]
    out_h, out_w = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    dtype = x.dtype
    y = x.double()
    rows = resize_matrix(h, out_h, float(scale), antialias).to(y.device)
    y = torch.matmul(rows, y)
    if quantize:
        y = y.mul(255).round_().clamp_(0, 255).div_(255)
    cols = resize_matrix(w, out_w, float(scale), antialias).to(y.device)
    y = torch.matmul(y, cols.T)
    if quantize:
        y = y.mul(255).round_().clamp_(0, 255).div_(255)
    return y.to(dtype)


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Cut the bottom rows and right columns beyond the largest multiple of `scale`."""
    h, w = x.shape[-2:]
    return x[..., :h - h % scale, :w - w % scale]


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] units (Y within [16, 235] / 255), float64 math."""
    m = _YCBCR.to(rgb.device)
    out = torch.einsum("ij,...jhw->...ihw", m, rgb.double()) + _OFFSET.to(rgb.device).view(3, 1, 1)
    return out.to(rgb.dtype)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) BT.601 luma in [16, 235] / 255."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """The inverse of rgb_to_ycbcr (MATLAB's ycbcr2rgb), not clipped."""
    inverse = torch.linalg.inv(_YCBCR).to(ycbcr.device)
    centred = ycbcr.double() - _OFFSET.to(ycbcr.device).view(3, 1, 1)
    return torch.einsum("ij,...jhw->...ihw", inverse, centred).to(ycbcr.dtype)


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(..., C, h, w) images in [-1, 1] -> MATLAB bicubic x scale, clipped to [-1, 1]: the SR papers'
    baseline and SRCNN's input."""
    return imresize(x.add(1).div(2), scale).clamp(0, 1).mul(2).sub(1)
