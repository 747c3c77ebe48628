"""Encoder/decoder shapes and parameter counts at the seed's sizes."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from physworld.models.build import build_vqvae
from physworld.models.spec import ModelSpec
from physworld.models.vqvae import VQVAE, Decoder, Encoder, parameter_counts
from physworld.paths import CONFIG_DIR

# model=default: the seed's sizes
SEED = ModelSpec.from_config(OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "default.yaml")))


def conv_params(c_in, c_out, k=4):
    return c_in * c_out * k * k + c_out


def test_seed_shapes():
    encoder = Encoder(SEED.encoder.hidden_channels, SEED.vq.code_dim)
    z, features = encoder(torch.rand(2, 3, 64, 64))
    assert z.shape == (2, 192, 8, 8)
    assert [f.shape[1:] for f in features] == [(64, 32, 32), (128, 16, 16)]
    assert Decoder(SEED.encoder.hidden_channels, SEED.vq.code_dim)(z).shape == (2, 3, 64, 64)


def test_parameter_counts_are_those_of_the_stated_layers():
    model = build_vqvae(SEED)
    counts = parameter_counts(
        {"encoder": model.encoder, "codebook": model.quantizer, "decoder": model.decoder}
    )
    assert counts["encoder"] == conv_params(3, 64) + conv_params(64, 128) + conv_params(128, 192) == 527_744
    assert counts["codebook"] == 512 * 192 == 98_304
    assert counts["decoder"] == conv_params(192, 128) + conv_params(128, 64) + (64 * 3 * 16 + 3) == 527_555
    assert counts["total"] == 527_744 + 98_304 + 527_555


def test_reconstruction_shapes_and_indices():
    model = VQVAE(hidden_channels=(8, 16), num_codes=32, code_dim=16)
    recon, indices, vq_loss = model(torch.rand(3, 3, 64, 64))
    assert recon.shape == (3, 3, 64, 64) and recon.dtype == torch.float32
    assert indices.shape == (3, 1, 8, 8) and vq_loss.ndim == 0


def test_gradients_reach_every_parameter():
    model = VQVAE(hidden_channels=(8, 16), num_codes=32, code_dim=16)
    x = torch.rand(2, 3, 64, 64)
    recon, _, vq_loss = model(x)
    ((recon - x).abs().mean() + vq_loss).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_skip_decoder_needs_encoder_features():
    model = VQVAE(hidden_channels=(8, 16), num_codes=32, code_dim=16, skip=True)
    x = torch.rand(2, 3, 64, 64)
    assert model(x)[0].shape == x.shape
    quantized, _, _ = model.encode(x)
    with pytest.raises(ValueError, match="skip"):
        model.decode(quantized)  # a predicted latent has no encoder features
