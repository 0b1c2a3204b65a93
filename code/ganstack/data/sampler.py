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


def unpack(item) -> tuple[int, int]:
    """A dataset item: an int index (seed 0) or the samplers' (index, seed)."""
    index, seed = item if isinstance(item, tuple) else (item, 0)
    return int(index), int(seed)


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


class BucketBatchSampler(torch.utils.data.Sampler):
    """OP-GAN's batches by object count (TRAIN.OPTIMIZE_DATA_LOADING): every batch holds items of
    one group (their object count), with that group's batch size (`sizes[group]`, the last size
    for larger groups). Epoch e shuffles each group and then the batches, seeded by (seed, e);
    partial batches are dropped; ranks take every world-th batch (padded by wrapping); `start`
    skips the batches already trained on when resuming. Yields lists of (index, sample seed)."""

    def __init__(self, groups: np.ndarray, sizes: list[int], *, seed: int, epoch: int, rank: int = 0,
                 world: int = 1, start: int = 0):
        rng = np.random.default_rng([seed, epoch, 0xB0C])
        groups = np.asarray(groups)
        batches = []
        for g in np.unique(groups):
            members = rng.permutation(np.flatnonzero(groups == g))
            size = sizes[min(int(g), len(sizes) - 1)]
            batches += [members[i:i + size] for i in range(0, len(members) - size + 1, size)]
        order = rng.permutation(len(batches)) if batches else np.zeros(0, dtype=int)
        per_rank = -(-len(batches) // world)
        order = np.resize(order, per_rank * world) if len(order) else order
        self.batches = [batches[i] for i in order[rank::world]]
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.start)

    def __iter__(self):
        for pos in range(self.start, len(self.batches)):
            yield [(int(i), int(np.random.SeedSequence([self.seed, self.epoch, pos, int(i)]).generate_state(1)[0]))
                   for i in self.batches[pos]]


class DebugSubset(torch.utils.data.Dataset):
    """DEBUG: true (OP-GAN's cfg key): train on a few items, as the authors' main.py does: the first
    DEBUG_NUM_DATAPOINTS items, or with object-count buckets the first DEBUG_NUM_DATAPOINTS // 10 of
    each count. Items keep their dataset's own augmentation; every other attribute is the dataset's."""

    def __init__(self, dataset, count: int, *, per_group: bool):
        if per_group:
            groups = np.asarray(dataset.batch_groups())
            picked = [np.flatnonzero(groups == g)[:max(1, count // 10)] for g in np.unique(groups)]
            self.indices = np.sort(np.concatenate(picked))
        else:
            self.indices = np.arange(min(count, len(dataset)))
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        index, seed = unpack(item)
        return self.dataset[(int(self.indices[index]), seed)]

    def batch_groups(self) -> np.ndarray:
        return np.asarray(self.dataset.batch_groups())[self.indices]

    def __getattr__(self, name: str):
        if name in ("dataset", "indices"):  # not set yet (unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)
