"""VGG19 feature extractor for perceptual losses, loaded from a local torchvision weights file.

Only the convolutional trunk up to relu5_1 is built (the classifier's 120 M parameters are
never allocated); layer indices match torchvision's ``vgg19().features``, so the file is
torchvision's ``vgg19-dcbb9e9d.pth`` (or any state dict with its ``features.N.*`` keys).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import GanstackError

# torchvision's configuration "E": conv widths, M = 2x2 max pool
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
RELU_X_1 = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _trunk() -> nn.Sequential:
    layers, cin = [], 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=False)]
            cin = item
    return nn.Sequential(*layers)  # ends at relu5_1 (index 29)


class VGG19Features(nn.Module):
    """Images in [-1, 1] (1 or 3 channels) -> [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1]; frozen."""

    def __init__(self, weights_path: str | Path):
        super().__init__()
        self.features = _trunk()
        path = Path(weights_path)
        if not path.is_file():
            raise GanstackError(f"PIX2PIX.VGG_WEIGHTS={path}: file not found; put torchvision's vgg19-dcbb9e9d.pth "
                                "there (or set PIX2PIX.LAMBDA_PERCEPTUAL=0)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise GanstackError(f"PIX2PIX.VGG_WEIGHTS={path}: unreadable ({type(e).__name__}); expected a torchvision "
                                "vgg19 state dict") from None
        wanted = {k.removeprefix("features."): v for k, v in state.items()
                  if k.startswith("features.") and int(k.split(".")[1]) < len(self.features)}
        try:
            self.features.load_state_dict(wanted)
        except RuntimeError as e:
            raise GanstackError(f"PIX2PIX.VGG_WEIGHTS={path}: not VGG19 weights "
                                f"({str(e).strip().splitlines()[0]})") from None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # always a fixed feature extractor

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images[:, :3]
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in RELU_X_1:
                out.append(x)
        return out
