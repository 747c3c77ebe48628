"""Codebook usage of a vector quantiser over an epoch: perplexity and dead codes.

perplexity = exp(H(p)) with p the fraction of assignments per code; it is 1 when a single code is used and
K when all K codes are used equally. A code is dead when it got no assignment in the epoch. Counts are a
summed state, so under DDP they are reduced across ranks before `compute`.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from physworld.models.vector_quantizer import VectorQuantizer


class CodebookUsage(Metric):
    full_state_update = False

    def __init__(self, num_codes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", default=torch.zeros(num_codes), dist_reduce_fx="sum")

    def update(self, indices: torch.Tensor) -> None:
        self.counts += VectorQuantizer.counts(indices, self.num_codes).to(self.counts)

    def compute(self) -> dict[str, torch.Tensor]:
        p = self.counts / self.counts.sum().clamp_min(1.0)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
        return {
            "perplexity": entropy.exp(),
            "dead_codes": (self.counts == 0).sum().float(),
        }
