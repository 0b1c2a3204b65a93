"""SRResNet (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", section 3 and the SRResNet rows of its tables), and what every
super-resolution variant shares (SuperResolution).

One training step of SRResNet, the MSE-optimised network SRGAN starts from:
  1. SR = G(LR) for a batch of LR crops (HR crops made small, or given LR images)
  2. G learns  MSE(SR, HR)  on images in [-1, 1] (the paper's ranges: LR [0, 1], HR [-1, 1])
The paper trains with Adam (beta1 0.9) at 1e-4 on 96 px HR crops, batch 16.

With SR.CHANNELS y the networks see the BT.601 luma only (as SRCNN and many SR papers); sampled
images then get their colour (Cb, Cr) from the bicubic upscaling. `ganstack eval` reports PSNR
and SSIM on Y and RGB beside bicubic's (metrics/superres.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..data import attngan
from ..data.superres import load_lr_inputs, sr_dataset
from ..engine.optim import Updater
from ..imaging import bicubic_upscale, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from ..nets.superres import SRResNet
from .base import Variant, adam

GRID_IMAGES = 4   # TensorBoard: test images, one row each: bicubic | output | target
GRID_LR_SIDE = 32  # the centre crop of their LR side shown


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on [-1, 1] images (peak-to-peak 2)."""
    return 10 * math.log10(4 / mse) if mse > 0 else math.inf


class SuperResolution(Variant):
    """Data, channels, sampling, the TensorBoard grid and evaluation of the SR variants; a subclass
    builds its nets and says how its G maps the LR input (`upscale`)."""
    condition_kind = "image"        # sample.sh takes (LR) input images
    collate = staticmethod(attngan.collate)
    plateau_metric = "score/mse"
    builds_from_data = False        # a checkpoint upscales images with no training data present
    shape_free_keys = ("SR.GLOBAL_RESIDUAL",)

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.scale = cfg.SR.SCALE
        self.luma_only = cfg.SR.CHANNELS == "y"
        self.channels = 1 if self.luma_only else 3
        self._fixed = None

    def dataset(self, split: str, train: bool):
        return sr_dataset(self.cfg, split, train)

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] -> what the networks see: the same, or its luma in [-1, 1] (SR.CHANNELS y)."""
        return rgb_to_y(rgb.add(1).div(2)).mul(2).sub(1) if self.luma_only else rgb

    def pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_net(batch["lr"]), self.to_net(batch["hr"])

    def upscale(self, G, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, conditions: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """SR images (B, 3, H*s, W*s) in [-1, 1] of LR RGB images (B, 3, H, W) in [-1, 1]."""
        lr = conditions.to(self.device).float()
        with self.sampling_net("G") as G:
            out = self.upscale(G, self.to_net(lr)).float().clamp(-1, 1)
        if not self.luma_only:
            return out
        colour = rgb_to_ycbcr(bicubic_upscale(lr, self.scale).add(1).div(2))
        return ycbcr_to_rgb(torch.cat([out.add(1).div(2), colour[:, 1:]], dim=1)).clamp(0, 1).mul(2).sub(1)

    def conditions_from_split(self, split: str, count: int, seed: int):
        """(file names, LR images (any sizes, a list), indices) of the first `count` images of `split`."""
        dataset = self.dataset(split, train=False)
        names, images, indices = [], [], []
        for i in range(min(count, len(dataset)) if count > 0 else len(dataset)):
            item = dataset[i]
            if item is not None:
                names.append(dataset.path(i).name)
                images.append(item["lr"])
                indices.append(i)
        return names, images, indices

    def conditions_from_files(self, paths: list[str]):
        return load_lr_inputs(paths)

    def targets_of_split(self, split: str, indices: list[int]) -> list[torch.Tensor]:
        dataset = self.dataset(split, train=False)
        return [dataset[i]["hr"] for i in indices]

    def visuals(self, batch: dict) -> dict:
        """Centre crops of the first test images, one row each: bicubic | output | target."""
        if self._fixed is None:
            _, images, indices = self.conditions_from_split("test", GRID_IMAGES, seed=0)
            targets = self.targets_of_split("test", indices)
            side = min([GRID_LR_SIDE, *(min(x.shape[-2:]) for x in images)])
            lows, highs = [], []
            for lr, hr in zip(images, targets):
                top, left = (lr.shape[1] - side) // 2, (lr.shape[2] - side) // 2
                s = self.scale
                lows.append(lr[:, top:top + side, left:left + side])
                highs.append(hr[:, top * s:(top + side) * s, left * s:(left + side) * s])
            self._fixed = (torch.stack(lows), torch.stack(highs))
        lows, highs = self._fixed
        rows = torch.stack([bicubic_upscale(lows, self.scale), self.sample(lows).cpu(), highs], dim=1).flatten(0, 1)
        return {"samples/bicubic_output_target": make_grid(rows.add(1).div(2), nrow=3, padding=2)}

    # ----------------------------------------------------------- evaluation
    def evaluate(self, split: str, seed: int) -> dict:
        from ..metrics.superres import sr_metrics
        return sr_metrics(self.cfg, self, split)


class SRResNetVariant(SuperResolution):
    name = "srresnet"

    def build(self, dataset) -> None:
        sr = self.cfg.SR
        self.nets["G"] = SRResNet(self.channels, sr.WIDTH, sr.NUM_BLOCKS, sr.SCALE, batch_norm=sr.NORM == "batch",
                                  global_residual=sr.GLOBAL_RESIDUAL)
        self.optimizers["G"] = adam(self.cfg, self.nets["G"].parameters(), self.cfg.TRAIN.GENERATOR_LR)

    def upscale(self, G, lr: torch.Tensor) -> torch.Tensor:
        return G(lr)

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        lr, hr = self.pair(batch)
        with opt.autocast():
            sr = self.nets["G"](lr)
        mse = F.mse_loss(sr.float(), hr.float())
        opt.update("G", mse, {"loss/G_mse": mse})
        return {"loss/G_mse": mse.item(), "score/mse": mse.item(), "score/psnr": psnr_of_mse(mse.item())}
