"""Exponential moving average of generator weights (AttnGAN keeps 0.999).

The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's
ExponentialMovingAverage with num_updates), so a short run's average is not dominated by
the random initial weights.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, nets: dict[str, nn.Module], decay: float):
        self.decay = decay
        self.updates = 0
        self.nets = {name: copy.deepcopy(net).eval().requires_grad_(False) for name, net in nets.items()}

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module]) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for name, avg in self.nets.items():
            live = nets[name].state_dict()
            for key, value in avg.state_dict().items():
                if value.dtype.is_floating_point:
                    value.lerp_(live[key], 1.0 - decay)
                else:
                    value.copy_(live[key])

    def state_dict(self) -> dict:
        state = {name: net.state_dict() for name, net in self.nets.items()}
        if self.nets:
            state["_updates"] = self.updates
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state[name])
        self.updates = int(state.get("_updates", 0))
