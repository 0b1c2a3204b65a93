"""Learning-rate schedules.

All but one are a pure function of progress (nothing to checkpoint). ``plateau``
depends on the losses seen, so its state (``Plateau``) travels in the checkpoint.
"""
from __future__ import annotations

import math


def lr_factor(kind: str, *, epoch: int, step: int, total_steps: int, decay: float, min_factor: float,
              constant_epochs: int = 0, steps_per_epoch: int = 1, step_epochs: int = 50, step_gamma: float = 0.1,
              plateau_factor: float = 1.0) -> float:
    """Multiplier of every optimizer's base learning rate.

    exponential: decay**epoch, floored at min_factor (AttnGAN's DAMSM: 0.98 per epoch down to
    lr/10); linear / cosine: 1 for `constant_epochs`, then down to min_factor at the end of the
    run, per step (pix2pix's linear policy: 100 constant epochs, then 100 decaying to 0, which the
    original applies per epoch); step: step_gamma every step_epochs epochs; plateau: the factor
    the Plateau state has reached.
    """
    if kind == "none":
        return 1.0
    if kind == "exponential":
        return max(decay ** epoch, min_factor)
    if kind == "step":
        return step_gamma ** (epoch // max(step_epochs, 1))
    if kind == "plateau":
        return plateau_factor
    start = constant_epochs * steps_per_epoch
    t = min(max(step - start, 0) / max(total_steps - start, 1), 1.0)
    if kind == "linear":
        return 1.0 - (1.0 - min_factor) * t
    if kind == "cosine":
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(kind)


class Plateau:
    """pix2pix's plateau policy (torch's ReduceLROnPlateau, mode min, factor 0.2, relative threshold
    0.01, patience 5), fed once per epoch with the epoch's mean of the variant's monitored loss."""

    FACTOR, THRESHOLD, PATIENCE = 0.2, 0.01, 5

    def __init__(self):
        self.factor, self.best, self.bad_epochs = 1.0, math.inf, 0
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def end_epoch(self, mean: float | None = None) -> None:
        """Close the epoch (with `mean` when the caller averaged it over processes)."""
        if mean is None and self.count:
            mean = self.total / self.count
        self.total, self.count = 0.0, 0
        if mean is None:
            return
        if mean < self.best * (1 - self.THRESHOLD):
            self.best, self.bad_epochs = mean, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.PATIENCE:
                self.factor *= self.FACTOR
                self.bad_epochs = 0

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
