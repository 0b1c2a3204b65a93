"""Exponential moving average of generator weights (AttnGAN keeps 0.999)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, nets: dict[str, nn.Module], decay: float):
        self.decay = decay
        self.nets = {name: copy.deepcopy(net).eval().requires_grad_(False) for name, net in nets.items()}

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module]) -> None:
        for name, avg in self.nets.items():
            live = nets[name].state_dict()
            for key, value in avg.state_dict().items():
                if value.dtype.is_floating_point:
                    value.lerp_(live[key], 1.0 - self.decay)
                else:
                    value.copy_(live[key])

    def state_dict(self) -> dict:
        return {name: net.state_dict() for name, net in self.nets.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state[name])
