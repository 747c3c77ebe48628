"""Training samplers whose order depends only on (seed, epoch), so a run resumed from a checkpoint sees the
same batches as one that never stopped (a plain shuffling DataLoader draws from the global RNG, whose state
depends on everything that ran before). Lightning calls `set_epoch` at the start of every epoch; under DDP
it wraps these samplers in a distributed wrapper that shards their order across ranks.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of range(n), drawn from seed + epoch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class EpochWeightedSampler(EpochShuffleSampler):
    """n indices drawn with replacement, item i with probability weights[i] / sum(weights), from seed + epoch."""

    def __init__(self, weights: torch.Tensor, n: int, seed: int):
        super().__init__(n, seed)
        self.weights = weights.double()

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.multinomial(self.weights, self.n, replacement=True, generator=generator).tolist())
