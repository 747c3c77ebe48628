"""Vector quantiser of VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation Learning").

This is the MPS-safe variant of the seed's Failure 1: the codebook is learned by gradients through the
codebook and commitment losses only, with no EMA statistics and no scatter ops, so every op here runs on
CUDA, CPU and Apple's MPS alike.

    L_vq = ||sg[z_e] - z_q||^2 + beta * ||z_e - sg[z_q]||^2

The first term moves the codes towards the encoder outputs, the second (the commitment term, beta = 0.25)
keeps the encoder close to its codes. Two slips in the seed's listing are corrected here: it swaps the two
terms (beta weighs the codebook term), it drops ||e_k||^2 from the distance (so argmin favours large codes),
and it returns z_q without the straight-through estimator (so no reconstruction gradient reaches the encoder).

Two remedies for codebook collapse (few codes used, the rest dead), both MPS-safe (one_hot + sum counts,
no scatter):
- data-dependent initialisation: the first training batch's encoder outputs become the codes, so every code
  starts where the data is (as k-means seeding does);
- dead-code restart (Dhariwal et al., 2020, "Jukebox"): every `restart_every` training steps, codes used
  fewer than `restart_threshold` times the uniform share over those steps are moved to random encoder
  outputs of the current batch.

Groups (product quantisation, Jegou et al. 2011; `groups` = G, 1 in the seed): each C-dim latent vector is cut
into G parts of C/G dims, and each part is quantised against its own codebook of `num_codes` = K entries, so a
cell takes one of K^G values instead of K, for the same K x C codebook parameters. Why: a single codebook has
to spend one code on every combination of what a cell holds (background shade, the part of an object in it,
the object's colour), and a scene of randomly coloured objects has far more combinations than 512; with groups
the encoder can keep, say, colour and shape in different parts. The G codebooks are the rows of one embedding
table (G * K, C / G); group g owns rows g * K .. g * K + K - 1, and indices are those global row numbers, shaped
(B, G, H, W) (G = 1 included), so that code usage, the token cache and the dynamics need no group arithmetic
beyond `lookup`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

COUNT_CHUNK = 8192  # indices compared with the codes at a time in `compare_counts`


def scatter_free(device: torch.device) -> bool:
    """Whether code usage is counted without scatter ops (bincount, index_add) on `device`: on MPS, where they
    were the seed's Failure 1."""
    return device.type == "mps"


def squared_distances(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of every group part to every code of its group: x (..., G, d), weight
    (G, K, d) -> (..., G, K), in x's dtype. Shared by the quantiser and the dynamics' token heads."""
    return (
        x.pow(2).sum(-1, keepdim=True)
        - 2 * torch.einsum("...gd,gkd->...gk", x, weight.to(x.dtype))
        + weight.pow(2).sum(-1)
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        commitment_cost: float = 0.25,
        init_from_data: bool = True,
        restart_dead_codes: bool = False,
        restart_threshold: float = 0.01,
        restart_every: int = 100,
        groups: int = 1,
    ):
        super().__init__()
        if groups < 1 or code_dim % groups:
            raise ValueError(f"groups={groups}: a positive divisor of code_dim={code_dim} is accepted")
        self.num_codes, self.code_dim, self.commitment_cost = num_codes, code_dim, commitment_cost
        self.groups, self.group_dim = groups, code_dim // groups
        self.restart_dead_codes, self.restart_threshold = restart_dead_codes, restart_threshold
        self.restart_every = restart_every
        self.embedding = nn.Embedding(groups * num_codes, self.group_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_codes, 1.0 / num_codes)
        # Buffers, so they are checkpointed: whether the data init is still to do, and assignments per code
        # since the last dead-code check.
        self.register_buffer("needs_init", torch.tensor(bool(init_from_data)))
        # The buffer's value mirrored on the host: reading the buffer in every training forward would wait for
        # the device once per step (and break torch.compile graphs). Refreshed whenever a state dict loads.
        self._pending_init = bool(init_from_data)
        self.register_load_state_dict_post_hook(VectorQuantizer._refresh_pending_init)
        self.register_buffer("window_counts", torch.zeros(groups * num_codes))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("offsets", torch.arange(groups) * num_codes, persistent=False)  # (G,)

    @property
    def total_codes(self) -> int:
        """Rows of the embedding table: K codes in each of the G groups."""
        return self.groups * self.num_codes

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, C, H, W) -> quantized (B, C, H, W) with straight-through gradients, indices (B, G, H, W), loss."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # (B*H*W, C)
        if self.training and self._pending_init:
            self._init_from(flat.detach())
        indices = self.nearest(flat)  # (B*H*W, G)
        codes = self.embedding(indices).view(-1, c)  # (B*H*W, C)
        loss = F.mse_loss(codes, flat.detach()) + self.commitment_cost * F.mse_loss(flat, codes.detach())
        quantized = flat + (codes - flat).detach()  # straight-through: forward = codes, backward = identity
        if self.training and self.restart_dead_codes:
            self._track_and_restart(flat.detach(), indices)
        quantized = quantized.view(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W)
        return quantized, indices.view(b, h, w, self.groups).permute(0, 3, 1, 2), loss

    @staticmethod
    def _refresh_pending_init(module, incompatible_keys) -> None:
        module._pending_init = bool(module.needs_init)  # once per load, not per step

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean) of each group of each row of flat (N, C) -> (N, G)."""
        x = flat.view(flat.shape[0], self.groups, self.group_dim)  # (N, G, d)
        weight = self.embedding.weight.view(self.groups, self.num_codes, self.group_dim)  # (G, K, d)
        return squared_distances(x, weight).argmin(-1) + self.offsets  # global row numbers

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, G, H, W) -> codes (B, C, H, W)."""
        b, g, h, w = indices.shape
        codes = self.embedding(indices.permute(0, 2, 3, 1))  # (B, H, W, G, d)
        return codes.reshape(b, h, w, g * self.group_dim).permute(0, 3, 1, 2)

    @staticmethod
    def counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
        """How often each code 0..num_codes-1 is used: indices (any shape) -> float (K,). `torch.bincount`
        where the device has it, else (`scatter_free`: MPS) `compare_counts`."""
        flat = indices.reshape(-1)
        if scatter_free(flat.device):
            return VectorQuantizer.compare_counts(flat, num_codes)
        return torch.bincount(flat, minlength=num_codes)[:num_codes].float()

    @staticmethod
    def compare_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
        """`counts` without a scatter (MPS has no fast one): a comparison with every code and a sum, in chunks,
        a bool table of at most COUNT_CHUNK x K at a time."""
        flat = indices.reshape(-1)
        codes = torch.arange(num_codes, device=flat.device)
        total = torch.zeros(num_codes, device=flat.device)
        for first in range(0, flat.numel(), COUNT_CHUNK):
            total += (flat[first : first + COUNT_CHUNK, None] == codes).sum(0)
        return total

    def group_counts(self, indices: torch.Tensor) -> torch.Tensor:
        """Usage of each of the G * K codes, from indices (N, G) (global row numbers): one bincount, or on MPS each
        group compared with its own K codes only."""
        if not scatter_free(indices.device):  # global row numbers: one count over all G * K rows
            return self.counts(indices, self.total_codes)
        local = indices - self.offsets  # (N, G) in 0..K-1
        codes = torch.arange(self.num_codes, device=indices.device)
        return (local[..., None] == codes).sum(0).flatten().float()  # (G * K,)

    @torch.no_grad()
    def _sample_rows(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """n random rows of flat (without replacement when there are enough), identical on every rank."""
        if flat.shape[0] >= n:
            pick = torch.randperm(flat.shape[0], device=flat.device)[:n]
        else:
            pick = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        rows = flat[pick].to(self.embedding.weight.dtype)
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        rows = self._sample_rows(flat, self.num_codes)  # (K, C): code k of group g is part g of row k
        rows = (
            rows.view(self.num_codes, self.groups, self.group_dim).transpose(0, 1).reshape(-1, self.group_dim)
        )
        # A little noise separates duplicates when the batch has fewer distinct vectors than codes.
        noise = torch.randn_like(rows) * rows.std().clamp_min(1e-6) * 1e-2
        if _distributed():
            dist.broadcast(noise, src=0)
        self.embedding.weight.data.copy_(rows + noise)
        self.needs_init.fill_(False)
        self._pending_init = False

    @torch.no_grad()
    def _track_and_restart(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        counts = self.group_counts(indices)
        if _distributed():
            dist.all_reduce(counts)  # every rank sees the same usage, so restarts stay identical
        self.window_counts += counts
        self.steps += 1
        if int(self.steps) % self.restart_every:
            return
        window = self.window_counts.view(self.groups, self.num_codes)
        uniform_share = window.sum(1, keepdim=True) / self.num_codes  # (G, 1)
        dead = (window < self.restart_threshold * uniform_share).flatten()  # (G * K,)
        self.window_counts.zero_()
        num_dead = int(dead.sum())
        if num_dead:
            rows = self._sample_rows(flat, num_dead).view(num_dead, self.groups, self.group_dim)
            group = (
                torch.nonzero(dead).squeeze(1) // self.num_codes
            )  # (num_dead,) the group of each dead code
            self.embedding.weight.data[dead] = rows[torch.arange(num_dead, device=rows.device), group]
