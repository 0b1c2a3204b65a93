"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

G translates an input image x (label map, edges, ...) into an output y_hat; a conditional D
judges (x, y) pairs. The objective, G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), in one
training step:

  1. y_hat = G(x [, z])
  2. D learns   (x, y) -> real,  (x, y_hat) -> fake;  its loss is halved, as the paper, so D
                learns slower than G. wgangp adds the gradient penalty; POOL_SIZE > 0 shows D
                older (x, y_hat) pairs from an image pool.
  3. G learns   (x, y_hat) -> real,  + LAMBDA_L1 |y - y_hat|_1
                [+ LAMBDA_PERCEPTUAL VGG19 feature loss, + LAMBDA_FEAT D feature matching
                 (pix2pixHD), + LAMBDA_DIVERSITY mode seeking between two z (with NOISE_DIM)]

GAN.LOSS: vanilla | lsgan | hinge | wgangp. With the multiscale D every term is averaged over
its scales. Stochastic outputs: the paper's G ignores z and keeps dropout as its only noise;
PIX2PIX.TEST_DROPOUT keeps dropout on when sampling (K different outputs per input), and
NOISE_DIM with LAMBDA_DIVERSITY injects z and makes G use it.

Batch norm with batch size 1 (the paper's setting) normalises each image by its own
statistics at test time too, as the original, which never switches G to eval mode.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from ..data import attngan
from ..data.aligned import image_dataset, label_palette, load_inputs
from ..engine.optim import Updater
from ..image_pool import ImagePool
from ..losses import (PIX2PIX_LOSSES, discriminator_feature_matching, discriminator_term, generator_term,
                      gradient_penalty, mode_seeking, multiscale_mean, perceptual_loss)
from ..nets.pix2pix import LabelOneHot, build_discriminator, build_generator
from ..visual import three_channels
from .base import adam, Variant, frozen, unwrap

GRID_INPUTS = 8  # TensorBoard: fixed test inputs, one row each: input | output | target


def logits_of(scales: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [features[-1] for features in scales]


class Pix2Pix(Variant):
    name = "pix2pix"
    lr_schedule = "linear"          # constant for TRAIN.LR_CONSTANT_EPOCHS, then linear to LR_MIN_FACTOR
    plateau_metric = "score/l1"     # TRAIN.LR_SCHEDULE plateau watches the epoch's mean L1 to the target
    collate = staticmethod(attngan.collate)
    condition_kind = "image"        # sample.sh takes input images, not captions
    takes_label_maps = True         # DATA.LABEL_NC: label-map inputs reach G and D as one-hot classes

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.adv = PIX2PIX_LOSSES[cfg.GAN.LOSS]
        self.z_dim = cfg.PIX2PIX.NOISE_DIM
        self.pool = ImagePool(cfg.PIX2PIX.POOL_SIZE)
        self.vgg = None
        self._fixed = None
        self.encode_input = nn.Identity()  # DATA.LABEL_NC: palette colours -> one-hot classes (build)

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        return image_dataset(self.cfg, split, train)

    def build(self, dataset) -> None:
        cfg, p = self.cfg, self.cfg.PIX2PIX
        if cfg.DATA.LABEL_NC:
            self.encode_input = LabelOneHot(label_palette(cfg)).to(self.device)
        self.nets["G"] = build_generator(cfg)
        self.nets["D"] = build_discriminator(cfg)
        for name, lr in (("D", cfg.TRAIN.DISCRIMINATOR_LR), ("G", cfg.TRAIN.GENERATOR_LR)):
            self.optimizers[name] = adam(cfg, self.nets[name].parameters(), lr)
        if p.LAMBDA_PERCEPTUAL > 0:
            from ..nets.vgg import VGG19Features
            self.vgg = VGG19Features(p.VGG_WEIGHTS).to(self.device)

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        p, gan = self.cfg.PIX2PIX, self.cfg.GAN
        G, D = self.nets["G"], self.nets["D"]
        x, y = self.encode_input(batch["A"]), batch["B"]
        z = torch.randn(x.shape[0], self.z_dim, device=x.device) if self.z_dim else None

        # 1-2. Discriminator: real pairs -> real, generated pairs (maybe from the pool) -> fake.
        with opt.autocast():
            fake = G(x, z)
            pooled = self.pool.query(torch.cat([x, fake.detach().to(x.dtype)], dim=1))
            real_scales = D(x, y)
            fake_scales = D(pooled[:, :x.shape[1]], pooled[:, x.shape[1]:])
            d_terms = {
                "loss/D_real": 0.5 * multiscale_mean(discriminator_term(self.adv, lg, True)
                                                     for lg in logits_of(real_scales)),
                "loss/D_fake": 0.5 * multiscale_mean(discriminator_term(self.adv, lg, False)
                                                     for lg in logits_of(fake_scales))}
            if gan.LOSS == "wgangp":
                critic = lambda image: sum(lg.flatten(1).mean(1) for lg in logits_of(D(x, image)))  # noqa: E731
                d_terms["loss/D_gradient_penalty"] = gan.GP_LAMBDA * gradient_penalty(critic, y, fake)
        opt.update("D", sum(d_terms.values()), d_terms)

        # 3. Generator: fool D on (x, y_hat), stay close to y.
        d_plain = unwrap(D)  # D's weights stay put here; the bare module keeps DDP's hooks out of it
        with frozen(d_plain), opt.autocast():
            scales = d_plain(x, fake)
            l1 = F.l1_loss(fake.float(), y.float())
            g_terms = {"loss/G_adversarial": multiscale_mean(generator_term(self.adv, lg) for lg in logits_of(scales))}
            if p.LAMBDA_L1 > 0:
                g_terms["loss/G_l1"] = p.LAMBDA_L1 * l1
            if p.LAMBDA_FEAT > 0:
                g_terms["loss/G_feature_matching"] = p.LAMBDA_FEAT * discriminator_feature_matching(scales, real_scales)
            if self.vgg is not None:
                g_terms["loss/G_perceptual"] = p.LAMBDA_PERCEPTUAL * perceptual_loss(self.vgg, fake, y)
            if z is not None and p.LAMBDA_DIVERSITY > 0:
                z2 = torch.randn_like(z)
                g_terms["loss/G_mode_seeking"] = p.LAMBDA_DIVERSITY * mode_seeking(fake, G(x, z2), z, z2)
        opt.update("G", sum(g_terms.values()), g_terms)

        scalars = {k: v.item() for k, v in {**d_terms, **g_terms}.items()}
        scalars["score/l1"] = l1.item()
        scalars["score/real_logit"] = multiscale_mean(lg.float().mean() for lg in logits_of(real_scales)).item()
        scalars["score/fake_logit"] = multiscale_mean(lg.float().mean() for lg in logits_of(fake_scales)).item()
        return scalars

    def training_state(self) -> dict:
        return {"pool": self.pool.state_dict()} if self.pool.size else {}

    def load_training_state(self, state: dict) -> None:
        if "pool" in state:
            self.pool.load_state_dict(state["pool"], self.device)

    # ------------------------------------------------------------- sampling
    @contextlib.contextmanager
    def _test_mode(self, G):
        """Dropout on when TEST_DROPOUT; batch norm on per-image statistics when trained with batch 1."""
        per_image = self.cfg.TRAIN.BATCH_SIZE == 1 and self.cfg.PIX2PIX.NORM == "batch"
        changed = []
        for m in G.modules():
            keep_on = (isinstance(m, torch.nn.Dropout) and self.cfg.PIX2PIX.TEST_DROPOUT) or \
                      (isinstance(m, torch.nn.BatchNorm2d) and per_image)
            if keep_on:
                changed.append((m, getattr(m, "momentum", None)))
                m.train()
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.momentum = 0.0  # use the batch's statistics, leave the running ones as they are
        try:
            yield per_image
        finally:
            for m, momentum in changed:
                m.eval()
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.momentum = momentum

    @torch.no_grad()
    def sample(self, conditions: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs in [-1, 1] for input images `conditions` (B, INPUT_NC, H, W)."""
        x = self.encode_input(conditions.to(self.device).float())
        z = None if noise is None or self.z_dim == 0 else noise.to(self.device).float()
        with self.sampling_net("G") as G, self._test_mode(G) as per_image:
            if not per_image:
                return G(x, z).float().clamp(-1, 1)
            return torch.cat([G(x[i:i + 1], None if z is None else z[i:i + 1]) for i in range(len(x))]
                             ).float().clamp(-1, 1)

    def conditions_from_split(self, split: str, count: int, seed: int) -> tuple[list[str], torch.Tensor, list[int]]:
        """(file names, input images, indices) of the first `count` items of `split` (all when count <= 0),
        with the evaluation preprocessing."""
        dataset = self.dataset(split, train=False)
        indices = list(range(min(count, len(dataset)) if count > 0 else len(dataset)))
        items = [dataset[i] for i in indices]
        keep = [k for k, item in enumerate(items) if item is not None]
        return ([dataset.path(indices[k]).name for k in keep], torch.stack([items[k]["A"] for k in keep]),
                [indices[k] for k in keep])

    def conditions_from_files(self, paths: list[str]) -> tuple[list[str], list[torch.Tensor]]:
        """Input images of `ganstack sample --input` (files or folders), each at its own size."""
        return load_inputs(paths, self.cfg)

    def targets_of_split(self, split: str, indices: list[int]) -> torch.Tensor:
        dataset = self.dataset(split, train=False)
        return torch.stack([dataset[i]["B"] for i in indices])

    def visuals(self, batch: dict) -> dict:
        """Fixed test inputs, one row each: input | output | target."""
        if self._fixed is None:
            names, inputs, indices = self.conditions_from_split("test", GRID_INPUTS, seed=0)
            self._fixed = (names, inputs, self.targets_of_split("test", indices), self.noise(len(names), seed=0))
        names, inputs, targets, noise = self._fixed
        outputs = self.sample(inputs, noise).cpu()
        rows = torch.stack([three_channels(inputs), three_channels(outputs), three_channels(targets)], dim=1).flatten(0, 1)
        return {"samples/input_output_target": make_grid(rows.add(1).div(2), nrow=3, padding=2),
                "samples/inputs": "\n".join(f"row {i}: {n}" for i, n in enumerate(names))}

    # ----------------------------------------------------------- evaluation
    def evaluate(self, split: str, seed: int) -> dict:
        from ..metrics.translation import translation_metrics
        return translation_metrics(self.cfg, self, split, seed)
