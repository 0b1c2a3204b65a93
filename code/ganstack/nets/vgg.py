"""VGG19 feature extractor for perceptual losses, loaded from a local torchvision weights file.

Only the convolutional trunk up to the deepest layer asked is built (the classifier's 120 M
parameters are never allocated); layer indices match torchvision's ``vgg19().features``, so the
file is torchvision's ``vgg19-dcbb9e9d.pth`` (or any state dict with its ``features.N.*`` keys).
Layers are named as the papers do: conv<i>_<j> / relu<i>_<j>, the j-th convolution (before / after
its ReLU) of the i-th block, e.g. pix2pixHD's relu1_1 ... relu5_1 and SRGAN's relu5_4 ("VGG54").
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import GanstackError

# torchvision's configuration "E": conv widths, M = 2x2 max pool
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
PIX2PIXHD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def layer_indices() -> dict[str, int]:
    """conv<i>_<j> and relu<i>_<j> -> their index in torchvision's vgg19().features."""
    names, index, block, conv = {}, 0, 1, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            index, block, conv = index + 1, block + 1, 0
        else:
            conv += 1
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = index, index + 1
            index += 2
    return names
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _trunk(length: int) -> nn.Sequential:
    """The first `length` modules of vgg19().features."""
    layers, cin = [], 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=False)]
            cin = item
    return nn.Sequential(*layers[:length])


class VGG19Features(nn.Module):
    """Images in [-1, 1] (1 or 3 channels) -> the activations of `layers`, in that order; frozen.
    `key` and `off` name the config setting of the weights file and how to do without it, for errors."""

    def __init__(self, weights_path: str | Path, layers: tuple[str, ...] = PIX2PIXHD_LAYERS, *,
                 key: str = "PIX2PIX.VGG_WEIGHTS", off: str = "set PIX2PIX.LAMBDA_PERCEPTUAL=0"):
        super().__init__()
        known = layer_indices()
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise GanstackError(f"VGG19 layer {unknown[0]!r} does not exist; use conv<i>_<j> or relu<i>_<j> with "
                                "i 1-5 (e.g. relu5_4, relu2_2)")
        self.taps = [known[name] for name in layers]
        self.features = _trunk(max(self.taps) + 1)
        path = Path(weights_path)
        if not path.is_file():
            raise GanstackError(f"{key}={path}: file not found; put torchvision's vgg19-dcbb9e9d.pth "
                                f"there (or {off})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise GanstackError(f"{key}={path}: unreadable ({type(e).__name__}); expected a torchvision "
                                "vgg19 state dict") from None
        wanted = {k.removeprefix("features."): v for k, v in state.items()
                  if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)}
        try:
            self.features.load_state_dict(wanted)
        except RuntimeError as e:
            raise GanstackError(f"{key}={path}: not VGG19 weights "
                                f"({str(e).strip().splitlines()[0]})") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # always a fixed feature extractor

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images[:, :3]
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        found = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                found[i] = x
        return [found[i] for i in self.taps]
