"""The variant contract: a variant owns its networks, optimizers and losses;
the trainer (engine/trainer.py) owns devices, precision, EMA, checkpoints and logs.

A variant subclass implements:
  dataset(split, train)       the dataset it trains and evaluates on
  build(dataset)              fill self.nets and self.optimizers (OptimizerSpec per name)
  train_step(batch, step, opt) one iteration through opt.update(name, loss); returns scalars
and may implement visuals(batch) (images, or text, for TensorBoard), training_state() /
load_training_state(state) (what exact resume needs beyond nets and optimizers), export(folder)
(files later variants load, e.g. DAMSM encoders) and evaluate(split, seed) (the
metrics `ganstack eval` reports). Generators also implement the sampling side
that `ganstack sample` and evaluation use:
  conditions_from_text(texts)  free-text captions -> conditions
  conditions_from_split(split, count, seed)  (captions, conditions) of dataset items
  sample(conditions, noise)    images in [-1, 1] from the EMA generator
and inherit noise(count, seed, truncation) and interpolate(a, b, steps).
Nets are always reached through self.nets: the trainer may wrap them for DDP.
"""
from __future__ import annotations

from pathlib import Path

import contextlib

import torch
from torch import nn

from ..augment import diff_augment, parse_policy
from ..config import Config
from ..errors import GanstackError
from ..engine.optim import OptimizerSpec, Updater, fused_adam


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


@contextlib.contextmanager
def frozen(*nets: nn.Module):
    """No parameter gradients for these nets inside (e.g. the Ds while G's loss flows through them)."""
    params = [p for net in nets for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield nets[0] if len(nets) == 1 else nets
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def truncated_normal(shape: tuple[int, ...], generator: torch.Generator, truncation: float = 0.0) -> torch.Tensor:
    """N(0, 1) samples; with truncation > 0 every value beyond +-truncation is redrawn."""
    z = torch.randn(shape, generator=generator)
    if truncation > 0:
        while (bad := z.abs() > truncation).any():
            z[bad] = torch.randn(int(bad.sum()), generator=generator)
    return z


def adam(cfg: Config, params, lr: float, weight_decay: float = 0.0) -> OptimizerSpec:
    """The GAN optimizer: Adam with TRAIN.BETA1/BETA2, its gradient norm clipped at TRAIN.GRAD_CLIP (0 = off)."""
    params = list(params)
    return OptimizerSpec(fused_adam(params, lr=lr, betas=(cfg.TRAIN.BETA1, cfg.TRAIN.BETA2),
                                    weight_decay=weight_decay),
                         clip_params=params, clip_norm=cfg.TRAIN.GRAD_CLIP)


class Variant:
    name = ""
    ema_nets: tuple[str, ...] = ()   # nets the trainer keeps an EMA copy of (none at TRAIN.EMA_DECAY 0)
    lr_schedule = "none"             # what TRAIN.LR_SCHEDULE: auto means for this variant
    plateau_metric = ""              # the logged scalar TRAIN.LR_SCHEDULE: plateau watches (epoch means)
    collate = staticmethod(torch.utils.data.default_collate)  # batches of the variant's dataset
    takes_diff_augment = False       # whether its discriminators take GAN.DIFF_AUGMENT (through augment())
    takes_r1 = False                 # whether its discriminators take GAN.R1_GAMMA (through r1_weight())
    takes_hard_mismatch = False      # whether its matching-aware Ds take GAN.HARD_MISMATCH
    takes_label_maps = False         # whether its inputs may be one-hot label maps (DATA.LABEL_NC)
    builds_from_data = True          # build() reads the dataset (vocabulary...); False: sampling needs no data
    net_g_initialises = False        # TRAIN.NET_G: the checkpoint to sample (False) or G's starting weights (SRGAN)
    shape_free_keys: tuple[str, ...] = ()  # config keys that change a net but no weight shape: a checkpoint
                                            # saved with other values is refused when loaded

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, OptimizerSpec] = {}
        self.ema: dict[str, nn.Module] = {}   # set by the trainer when ema_nets is not empty
        if cfg.TRAIN.EMA_DECAY <= 0:  # no average: G itself samples (the aging papers' cacd.yml)
            self.ema_nets = ()
        self.unloaded: dict[str, str] = {}    # net -> the weight file that lacked it (a bare generator file)
        self.sampling_dtype: torch.dtype | None = None  # autocast of sampling nets (sample --precision); None: fp32
        self.augment_policy = parse_policy(cfg.GAN.DIFF_AUGMENT)
        if self.augment_policy and not self.takes_diff_augment:
            raise GanstackError(f"GAN.DIFF_AUGMENT={cfg.GAN.DIFF_AUGMENT!r}: the {self.name} variant does not "
                                "augment its inputs; leave GAN.DIFF_AUGMENT empty")
        if cfg.GAN.R1_GAMMA > 0 and not self.takes_r1:
            raise GanstackError(f"GAN.R1_GAMMA={cfg.GAN.R1_GAMMA}: the {self.name} variant has no R1 penalty; "
                                "set GAN.R1_GAMMA: 0")
        if cfg.GAN.HARD_MISMATCH > 0 and not self.takes_hard_mismatch:
            raise GanstackError(f"GAN.HARD_MISMATCH={cfg.GAN.HARD_MISMATCH}: the {self.name} variant has no "
                                "matching-aware discriminator; set GAN.HARD_MISMATCH: 0")
        if cfg.DATA.LABEL_NC and not self.takes_label_maps:
            raise GanstackError(f"DATA.LABEL_NC={cfg.DATA.LABEL_NC}: the {self.name} variant takes no one-hot "
                                "label maps; set DATA.LABEL_NC: 0")

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """GAN.DIFF_AUGMENT on a discriminator input (identity when empty); variants apply it to every
        image their discriminators see, real and generated alike."""
        return diff_augment(images, self.augment_policy) if self.augment_policy else images

    def r1_weight(self, step: int) -> float:
        """The weight of the R1 penalty at this step: GAN.R1_GAMMA / 2, times GAN.R1_INTERVAL on every
        R1_INTERVAL-th step and 0 on the others (lazy R1, as StyleGAN2); 0 when R1 is off."""
        gan = self.cfg.GAN
        if gan.R1_GAMMA <= 0 or step % gan.R1_INTERVAL:
            return 0.0
        return gan.R1_GAMMA / 2 * gan.R1_INTERVAL

    def dataset(self, split: str, train: bool):
        raise NotImplementedError

    def build(self, dataset) -> None:
        raise NotImplementedError

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        raise NotImplementedError

    def visuals(self, batch: dict) -> dict[str, torch.Tensor]:
        return {}

    def export(self, folder: Path) -> list[Path]:
        return []

    def training_state(self) -> dict:
        """State beyond nets and optimizers that exact resume needs (tensors, numbers, lists, dicts)."""
        return {}

    def load_training_state(self, state: dict) -> None:
        pass

    def evaluate(self, split: str, seed: int) -> dict:
        return {}

    # ------------------------------------------------------------ sampling
    z_dim = 0

    def noise(self, count: int, seed: int, truncation: float = 0.0) -> torch.Tensor:
        return truncated_normal((count, self.z_dim), torch.Generator().manual_seed(seed), truncation)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """Conditions on the straight line from a (1, ...) to b (1, ...), ends included."""
        w = torch.linspace(0, 1, steps).view(-1, *([1] * (a.dim() - 1)))
        return a * (1 - w) + b * w

    def conditions_from_text(self, texts: list[str]):
        raise GanstackError(f"VARIANT={self.name} does not take captions")

    def conditions_from_split(self, split: str, count: int, seed: int):
        raise GanstackError(f"VARIANT={self.name} does not sample from dataset conditions")

    def sentence_codes(self, conditions) -> torch.Tensor:
        """The caption's sentence code inside each condition (R-precision ranks captions by it)."""
        return conditions

    def sample(self, conditions, noise: torch.Tensor) -> torch.Tensor:
        raise GanstackError(f"VARIANT={self.name} is not a generator; nothing to sample")

    def generator_name(self) -> str:
        """The net that samples; a bare generator state dict (TRAIN.NET_G, --ckpt) loads into it."""
        return "G"

    @contextlib.contextmanager
    def sampling_net(self, name: str = "G"):
        """The net that samples: its EMA copy when kept (else the bare net), in eval mode inside, under
        autocast to `sampling_dtype` when one is set."""
        if name in self.unloaded:
            raise GanstackError(f"{self.unloaded[name]}: a bare generator file, loaded as {self.generator_name()}; "
                                f"it holds no {name}; pass a ganstack checkpoint, or that generator's own file")
        net = self.ema[name] if name in self.ema else unwrap(self.nets[name])
        was_training = net.training
        net.eval()
        dtype = self.sampling_dtype
        try:
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                yield net
        finally:
            net.train(was_training)

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)
