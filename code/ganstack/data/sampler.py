"""Deterministic, resumable, rank-sharded sampling.

The order of epoch e is a permutation seeded by (seed, e); each rank takes
every world-th element (padded so ranks have equal length, like
DistributedSampler). With every index goes a per-sample seed derived from
(seed, epoch, position), so augmentation does not depend on worker processes.
Starting at `start` skips the first batches of the epoch when resuming.
"""
from __future__ import annotations

import numpy as np
import torch


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch, 0x5A3]).permutation(n)


class ResumableSampler(torch.utils.data.Sampler):
    def __init__(self, n: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start: int = 0, shuffle: bool = True):
        order = epoch_order(n, seed, epoch, shuffle)
        per_rank = -(-n // world)
        order = np.resize(order, per_rank * world)  # pad by wrapping, as DistributedSampler
        self.indices = order[rank::world]
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return max(0, len(self.indices) - self.start)

    def __iter__(self):
        for pos in range(self.start, len(self.indices)):
            sample_seed = int(np.random.SeedSequence([self.seed, self.epoch, pos, int(self.indices[pos])])
                              .generate_state(1)[0])
            yield int(self.indices[pos]), sample_seed
