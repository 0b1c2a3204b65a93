"""SRCNN (Dong et al. 2014 / TPAMI 2016, "Image Super-Resolution Using Deep Convolutional Networks").

The LR image is first upscaled by bicubic interpolation (MATLAB's imresize, ganstack.imaging);
a three-layer network (9x9 patch extraction to 64 maps, 1x1 non-linear mapping to 32, 5x5
reconstruction) then restores it. One training step:
  1. Y = bicubic(LR) upscaled x SR.SCALE
  2. F learns  MSE(F(Y), HR)
The paper trains on the luma (SR.CHANNELS y) with SGD, momentum 0.9, rate 1e-4 and 1e-5 for the
last layer (SR.OPTIMIZER sgd); SR.OPTIMIZER adam (the default) converges far sooner on a CPU
budget. Weights N(0, 0.001), biases 0, as the paper; the convs are zero-padded (see nets/superres).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..engine.optim import OptimizerSpec, Updater
from ..imaging import bicubic_upscale
from ..nets.superres import SRCNN
from .base import adam
from .srresnet import SuperResolution, psnr_of_mse


class SRCNNVariant(SuperResolution):
    name = "srcnn"

    def build(self, dataset) -> None:
        cfg, sr = self.cfg, self.cfg.SR
        net = SRCNN(self.channels, tuple(sr.SRCNN_WIDTHS), tuple(sr.SRCNN_KERNELS))
        self.nets["G"] = net
        rate = cfg.TRAIN.GENERATOR_LR
        if sr.OPTIMIZER == "sgd":  # the paper: the reconstruction layer learns 10x slower
            last = list(net.body[-1].parameters())
            rest = [p for p in net.parameters() if all(p is not q for q in last)]
            optimizer = torch.optim.SGD([{"params": rest, "lr": rate}, {"params": last, "lr": rate * 0.1}],
                                        lr=rate, momentum=0.9)
            self.optimizers["G"] = OptimizerSpec(optimizer, clip_params=list(net.parameters()),
                                                 clip_norm=cfg.TRAIN.GRAD_CLIP)
        else:
            self.optimizers["G"] = adam(cfg, net.parameters(), rate)

    def upscale(self, G, lr: torch.Tensor) -> torch.Tensor:
        return G(bicubic_upscale(lr, self.scale))

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        lr, hr = self.pair(batch)
        upscaled = bicubic_upscale(lr, self.scale)
        with opt.autocast():
            sr = self.nets["G"](upscaled)
        mse = F.mse_loss(sr.float(), hr.float())
        opt.update("G", mse, {"loss/G_mse": mse})
        return {"loss/G_mse": mse.item(), "score/mse": mse.item(), "score/psnr": psnr_of_mse(mse.item())}
