"""SRGAN (Ledig et al. 2017): SRResNet's generator trained against a discriminator with a
perceptual loss, starting from the MSE-trained SRResNet (TRAIN.NET_G: its run folder, a checkpoint or
state dict).

One training step:
  1. SR = G(LR)
  2. D learns   HR -> real, SR -> fake               (sigmoid cross-entropy)
  3. G learns   l_SR = l_X + 1e-3 * l_Gen, with
                l_X   = 0.006 * MSE(phi(SR), phi(HR)), phi = VGG19 relu5_4 ("VGG54"; the paper
                        rescales the features by 1/12.75, i.e. the MSE by 0.006)
                l_Gen = -log D(SR)
SR.LOSS_WEIGHTS paper_mse is the paper's SRGAN-MSE (pixel MSE + 1e-3 adversarial, no VGG), and
switches to the two reference repositories' weights (leftthomas/SRGAN: + pixel
MSE x 1 and TV x 2e-8; tensorlayer/srgan: MSE x 1 + VGG x 2e-6 + 1e-3 adversarial), or custom
(SR.MSE_COEF, VGG_COEF, ADV_COEF, TV_COEF). The paper trains 1e5 steps at 1e-4 and 1e5 at 1e-5
(Adam, beta1 0.9).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..engine.checkpoint import check_same_settings, latest_checkpoint, load_checkpoint, net_weights
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import discriminator_term, generator_term
from ..nets.superres import SRGANDiscriminator
from .base import adam, frozen, unwrap
from .srresnet import SRResNetVariant

LOSS_WEIGHTS = {  # (pixel MSE, VGG feature MSE, adversarial, total variation)
    "paper": {"mse": 0.0, "vgg": 0.006, "adv": 1e-3, "tv": 0.0},
    "paper_mse": {"mse": 1.0, "vgg": 0.0, "adv": 1e-3, "tv": 0.0},  # the paper's SRGAN-MSE (no VGG file needed)
    "leftthomas": {"mse": 1.0, "vgg": 0.006, "adv": 1e-3, "tv": 2e-8},
    "tensorlayer": {"mse": 1.0, "vgg": 2e-6, "adv": 1e-3, "tv": 0.0},
}


def loss_weights(sr) -> dict[str, float]:
    if sr.LOSS_WEIGHTS == "custom":
        return {"mse": sr.MSE_COEF, "vgg": sr.VGG_COEF, "adv": sr.ADV_COEF, "tv": sr.TV_COEF}
    return LOSS_WEIGHTS[sr.LOSS_WEIGHTS]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """2 x (mean squared vertical + mean squared horizontal neighbour difference), leftthomas's TVLoss."""
    return 2 * ((x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean())


def load_generator(net: torch.nn.Module, path: str, cfg) -> None:
    """G's weights from a ganstack checkpoint (its EMA copy when kept, else G), a bare state dict, or a
    run folder (its latest checkpoint). A checkpoint trained with another SR.GLOBAL_RESIDUAL (which no
    weight shape shows) is refused."""
    if not Path(path).exists():
        raise GanstackError(f"TRAIN.NET_G={path}: not found; train the SRResNet first (e.g. cfg/srresnet/photos.yml "
                            "for cfg/srgan/photos.yml), or set TRAIN.NET_G to its run folder or checkpoint "
                            "(empty: start from random weights)")
    if Path(path).is_dir():
        folder = Path(path) / "checkpoints" if (Path(path) / "checkpoints").is_dir() else Path(path)
        latest = latest_checkpoint(folder)
        if latest is None:
            raise GanstackError(f"TRAIN.NET_G={path}: a folder without checkpoints; train cfg/srresnet first "
                                "or point TRAIN.NET_G at a checkpoint file")
        path = str(latest)
    state = load_checkpoint(path)
    check_same_settings(state, cfg, SRGANVariant.shape_free_keys, f"TRAIN.NET_G={path}")
    weights = net_weights(state, "G") if "nets" in state else state  # a ganstack checkpoint, or G's state dict
    if not isinstance(weights, dict) or not weights:
        raise GanstackError(f"TRAIN.NET_G={path}: holds no generator G (a srresnet checkpoint or state dict)")
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise GanstackError(f"TRAIN.NET_G={path}: its G does not match SR.WIDTH / NUM_BLOCKS / SCALE / CHANNELS "
                            f"of this config ({str(e).strip().splitlines()[0]})") from None


class SRGANVariant(SRResNetVariant):
    name = "srgan"
    net_g_initialises = True

    def build(self, dataset) -> None:
        super().build(dataset)  # G (SRResNet) and its optimizer
        cfg, sr = self.cfg, self.cfg.SR
        if cfg.TRAIN.NET_G:
            load_generator(self.nets["G"], cfg.TRAIN.NET_G, cfg)
        self.nets["D"] = SRGANDiscriminator(self.channels, sr.D_WIDTH, sr.D_DENSE)
        self.optimizers["D"] = adam(cfg, self.nets["D"].parameters(), cfg.TRAIN.DISCRIMINATOR_LR)
        self.weights = loss_weights(sr)
        self.vgg = None  # loaded at the first training step: sampling and eval need no VGG file

    def perceptual_features(self, images: torch.Tensor) -> torch.Tensor:
        if self.vgg is None:
            from ..nets.vgg import VGG19Features
            sr = self.cfg.SR
            self.vgg = VGG19Features(sr.VGG_WEIGHTS, (sr.VGG_LAYER,), key="SR.VGG_WEIGHTS",
                                     off="SR.LOSS_WEIGHTS: custom with SR.VGG_COEF: 0").to(self.device)
        return self.vgg(images)[0]

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        lr, hr = self.pair(batch)
        G, D, w = self.nets["G"], self.nets["D"], self.weights

        # 1-2. Discriminator: HR -> real, G(LR) -> fake.
        with opt.autocast():
            sr = G(lr)
            real_logits, fake_logits = D(hr), D(sr.detach())
            d_terms = {"loss/D_real": discriminator_term("bce", real_logits, True),
                       "loss/D_fake": discriminator_term("bce", fake_logits, False)}
        opt.update("D", sum(d_terms.values()), d_terms)

        # 3. Generator: content loss + 1e-3 x adversarial loss.
        with frozen(unwrap(D)) as d_plain, opt.autocast():
            g_terms = {"loss/G_adversarial": w["adv"] * generator_term("bce", d_plain(sr))}
            if w["vgg"] > 0:
                with torch.no_grad():
                    target = self.perceptual_features(hr).float()
                g_terms["loss/G_vgg"] = w["vgg"] * F.mse_loss(self.perceptual_features(sr).float(), target)
            if w["mse"] > 0:
                g_terms["loss/G_mse"] = w["mse"] * F.mse_loss(sr.float(), hr.float())
            if w["tv"] > 0:
                g_terms["loss/G_tv"] = w["tv"] * total_variation(sr.float())
        opt.update("G", sum(g_terms.values()), g_terms)

        mse = F.mse_loss(sr.detach().float(), hr.float()).item()
        scalars = {k: v.item() for k, v in {**d_terms, **g_terms}.items()}
        scalars.update({"score/mse": mse, "score/real_logit": real_logits.float().mean().item(),
                        "score/fake_logit": fake_logits.float().mean().item()})
        return scalars
