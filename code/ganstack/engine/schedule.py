"""Learning-rate schedules as a pure function of progress: nothing to checkpoint."""
from __future__ import annotations

import math


def lr_factor(kind: str, *, epoch: int, step: int, total_steps: int, decay: float, min_factor: float) -> float:
    """Multiplier of every optimizer's base learning rate.

    exponential: decay**epoch, floored at min_factor (AttnGAN's DAMSM: 0.98 per
    epoch down to lr/10); linear / cosine: from 1 to min_factor over the run.
    """
    if kind == "none":
        return 1.0
    if kind == "exponential":
        return max(decay ** epoch, min_factor)
    t = min(step / max(total_steps, 1), 1.0)
    if kind == "linear":
        return 1.0 - (1.0 - min_factor) * t
    if kind == "cosine":
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(kind)
