"""The variant contract: a variant owns its networks, optimizers and losses;
the trainer (engine/trainer.py) owns devices, precision, EMA, checkpoints and logs.

A variant subclass implements:
  dataset(split, train)       the dataset it trains and evaluates on
  build(dataset)              fill self.nets and self.optimizers (OptimizerSpec per name)
  train_step(batch, step, opt) one iteration through opt.update(name, loss); returns scalars
and may implement visuals(batch) (images, or text, for TensorBoard), export(folder)
(files later variants load, e.g. DAMSM encoders) and evaluate(split, seed) (the
metrics `ganstack eval` reports).
Nets are always reached through self.nets: the trainer may wrap them for DDP.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..engine.optim import OptimizerSpec, Updater


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


class Variant:
    name = ""
    ema_nets: tuple[str, ...] = ()   # nets the trainer keeps an EMA copy of
    lr_schedule = "none"             # what TRAIN.LR_SCHEDULE: auto means for this variant
    collate = staticmethod(torch.utils.data.default_collate)  # batches of the variant's dataset

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, OptimizerSpec] = {}
        self.ema: dict[str, nn.Module] = {}   # set by the trainer when ema_nets is not empty

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

    def evaluate(self, split: str, seed: int) -> dict:
        return {}

    def train(self, mode: bool = True) -> None:
        for net in self.nets.values():
            net.train(mode)
