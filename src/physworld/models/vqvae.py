"""VQ-VAE of the seed (section "Model Architecture" 1-3): a 3-layer strided conv encoder 64x64x3 -> 8x8x192,
the vector quantiser, and a mirrored transposed-conv decoder.

Decoder skip connections are optional and off by default: a decoder that needs the encoder's 16x16 and 32x32
features can only decode frames it has just encoded. The world model decodes *predicted* future latents, for
which no encoder features exist, so skips would make every rollout frame undecodable (or force feeding stale
features of the last context frame, which leaks the past into the prediction). Keep `skip: true` only for
reconstruction-only studies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from physworld.models.vector_quantizer import VectorQuantizer


class Encoder(nn.Module):
    """x (B, 3, 64, 64) -> z (B, C, 8, 8), plus the intermediate feature maps for optional skips."""

    def __init__(self, hidden_channels: tuple[int, ...], latent_channels: int, in_channels: int = 3):
        super().__init__()
        widths = [in_channels, *hidden_channels, latent_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for conv in self.convs[:-1]:
            x = F.relu(conv(x))
            features.append(x)  # (B, 64, 32, 32), (B, 128, 16, 16) at the seed's sizes
        return self.convs[-1](x), features


class Decoder(nn.Module):
    """z (B, C, 8, 8) -> x_hat (B, 3, 64, 64), a linear output (as in the seed; clamp to [0, 1] to display).

    No sigmoid: on sparse scenes (Moving MNIST is ~90% black) a sigmoid output saturates at 0 early in
    training, its gradient vanishes on the digit pixels, and the model stays at the all-black solution.
    """

    def __init__(
        self, hidden_channels: tuple[int, ...], latent_channels: int, out_channels: int = 3, skip=False
    ):
        super().__init__()
        self.skip = skip
        widths = [latent_channels, *reversed(hidden_channels), out_channels]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1)
            for a, b in zip(widths[:-1], widths[1:])
        )

    def forward(self, z: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.skip and features is None:
            raise ValueError("this decoder was built with skip connections and needs the encoder's features")
        x = z
        for i, deconv in enumerate(self.deconvs[:-1]):
            x = F.relu(deconv(x))
            if self.skip:
                x = x + features[-1 - i]  # additive U-Net-style skip at the same resolution
        return self.deconvs[-1](x)


class VQVAE(nn.Module):
    """The sizes come from the model spec (models/spec.py; models/build.py), so they have no defaults."""

    def __init__(
        self,
        hidden_channels: tuple[int, ...],
        num_codes: int,
        code_dim: int,
        commitment_cost: float = 0.25,
        skip: bool = False,
        **quantizer_options,
    ):
        super().__init__()
        self.encoder = Encoder(hidden_channels, code_dim)
        self.quantizer = VectorQuantizer(num_codes, code_dim, commitment_cost, **quantizer_options)
        self.decoder = Decoder(hidden_channels, code_dim, skip=skip)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, 64, 64) -> reconstruction (B, 3, 64, 64), indices (B, G, 8, 8), vq loss."""
        recon, _, indices, vq_loss = self.reconstruct(x)
        return recon, indices, vq_loss

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """forward, keeping the quantized latent: x -> reconstruction, quantized (B, C, 8, 8), indices, vq loss
        (the evaluation reuses the latents of the frames it reconstructs)."""
        z, features = self.encoder(x)
        quantized, indices, vq_loss = self.quantizer(z)
        recon = self.decoder(quantized, features if self.decoder.skip else None)
        return recon, quantized, indices, vq_loss

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, 3, 64, 64) -> quantized latent (B, C, 8, 8), indices (B, G, 8, 8), vq loss."""
        return self.quantizer(self.encoder(x)[0])

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        return self.decoder(quantized)


def parameter_counts(modules: dict[str, nn.Module]) -> dict[str, int]:
    """Trainable parameters per named component, plus 'total'."""
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    counts["total"] = sum(counts.values())
    return counts
