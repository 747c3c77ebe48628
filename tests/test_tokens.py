"""Token dynamics (model.dynamics.output=tokens) and the token cache: the cross-entropy loss by hand, rollouts
that decode only codebook entries, the feedback modes, the cache reused, rebuilt and refused, an overfit run,
and fast_dev_run of every phase with dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physworld.data.cache import ensure_split
from physworld.data.tokens import ensure_tokens, load_tokens, vqvae_fingerprint
from physworld.errors import DataError
from physworld.models.convgru import LatentDynamics, codes_to_latent
from physworld.models.vqvae import VQVAE
from physworld.phases.prediction import PredictionPhase, weighted_token_ce
from physworld.run import build_datamodule, plain, train
from tests.conftest import compose_config

TOKENS = "model.dynamics.output=tokens"


@pytest.fixture(scope="module")
def recon_ckpts(tmp_path_factory):
    """Tiny reconstruction checkpoints on pendulum and goal_reach, trained once for the module."""
    tmp = tmp_path_factory.mktemp("token_recon")
    out = {}
    for name in ("pendulum", "goal_reach"):
        cfg = compose_config(
            tmp / name,
            ["debug=tiny", f"dataset={name}", "logger=none", "test=false", "phase.max_epochs=2"],
        )
        train(cfg)
        out[name] = tmp / name / "run" / "checkpoints" / "last.ckpt"
    return out


def test_weighted_token_ce_matches_hand_computation():
    # One cell, two steps, three codes: CE = logsumexp(l) - l[target] per step, then sum_k w_k CE_k.
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]]).view(1, 2, 3, 1, 1)  # (B, K, codes, H, W)
    target = torch.tensor([[0, 2]]).view(1, 2, 1, 1, 1)  # (B, K, G, H, W)
    weights = torch.tensor([0.7, 0.3])
    ce0 = math.log(math.exp(1) + math.exp(2) + 1) - 1.0
    ce1 = math.log(2 + math.exp(3)) - 3.0
    assert weighted_token_ce(logits, target, weights).item() == pytest.approx(0.7 * ce0 + 0.3 * ce1, rel=1e-6)
    # averaged over batch and cells: a second identical cell leaves it unchanged
    wide = logits.expand(2, 2, 3, 1, 2)
    assert weighted_token_ce(wide, target.expand(2, 2, 1, 1, 2), weights).item() == pytest.approx(
        0.7 * ce0 + 0.3 * ce1, rel=1e-6
    )
    # two groups of three codes: group 1's codes are rows 3..5, and the loss is the mean over both groups
    two = torch.cat([logits, logits.flip(2)], dim=2)  # (1, 2, 6, 1, 1)
    targets = torch.cat([target, 3 + 2 - target], dim=2)  # the same codes, mirrored, in group 1
    assert weighted_token_ce(two, targets, weights).item() == pytest.approx(0.7 * ce0 + 0.3 * ce1, rel=1e-6)


def test_token_rollout_decodes_only_codebook_entries():
    torch.manual_seed(0)
    codebook = torch.randn(10, 6)  # (K, C)
    dyn = LatentDynamics(
        latent_channels=6, hidden_channels=8, num_layers=2, action_dim=2, output="tokens", num_codes=10
    )
    context = codebook[torch.randint(0, 10, (2, 3, 8, 8))].permute(0, 1, 4, 2, 3)  # (B, Tc, C, H, W)
    for feedback in ("argmax", "straight_through", "gumbel"):
        roll = dyn.rollout(context, torch.randn(2, 7, 2), horizon=4, codebook=codebook, feedback=feedback)
        assert roll.latents.shape == (2, 4, 6, 8, 8) and roll.logits.shape == (2, 4, 10, 8, 8)
        cells = roll.latents.permute(0, 1, 3, 4, 2)  # (B, K, H, W, C)
        chosen = codebook[roll.indices[:, :, 0]]  # one group: (B, K, H, W, C)
        assert torch.allclose(cells, chosen, atol=1e-6), feedback  # a codebook entry each
    argmax = dyn.rollout(context, torch.zeros(2, 7, 2), horizon=4, codebook=codebook, feedback="argmax")
    assert torch.equal(argmax.indices[:, :, 0], argmax.logits.argmax(2))
    with pytest.raises(ValueError, match="codebook"):
        dyn.rollout(context, torch.zeros(2, 7, 2), horizon=4)


def test_feedback_modes_and_their_gradients():
    torch.manual_seed(0)
    codebook = torch.randn(5, 3)
    logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    soft, _ = codes_to_latent(logits, codebook, "soft")
    expected = torch.einsum("bkhw,kc->bchw", logits.softmax(1), codebook)
    assert torch.allclose(soft, expected, atol=1e-6)
    hard, indices = codes_to_latent(logits, codebook, "argmax")
    assert not hard.requires_grad and torch.equal(indices[:, 0], logits.argmax(1))
    st, st_indices = codes_to_latent(logits, codebook, "straight_through")
    assert torch.allclose(st, hard) and torch.equal(st_indices, indices)  # the hard code forward ...
    st.sum().backward()
    grad_st = logits.grad.clone()
    logits.grad = None
    soft.sum().backward()  # ... and the expectation's gradient backward
    assert torch.allclose(grad_st, logits.grad)
    with pytest.raises(ValueError, match="feedback"):
        codes_to_latent(logits, codebook, "nearest")


def _tiny_split(tmp_path):
    cfg = compose_config(tmp_path, ["debug=tiny", "dataset=pendulum"])
    dataset = plain(cfg.dataset)
    dataset["sizes"] = {"train": 3, "val": 1, "test": 1}
    dataset["num_frames"] = 5
    return ensure_split(tmp_path / "data", dataset, "train", seed=0, progress=False)


def test_token_cache_is_reused_rebuilt_for_another_vqvae_and_refused_when_corrupt(tmp_path):
    split = _tiny_split(tmp_path)
    torch.manual_seed(0)
    vqvae = VQVAE(hidden_channels=(8, 16), num_codes=32, code_dim=16, init_from_data=False)
    folder = ensure_tokens(split, vqvae, progress=False)
    tokens = np.asarray(load_tokens(folder))
    frames = torch.from_numpy(np.load(split / "frames.npy")).permute(0, 1, 4, 2, 3).float() / 255
    with torch.no_grad():
        online = vqvae.eval().encode(frames.flatten(0, 1))[1].view(3, 5, 1, 8, 8)
    assert tokens.shape == (3, 5, 1, 8, 8) and np.array_equal(tokens, online.numpy())
    stamp = (folder / "indices.npy").stat().st_mtime_ns
    assert ensure_tokens(split, vqvae, progress=False) == folder  # same VQ-VAE: reused, not re-encoded
    assert (folder / "indices.npy").stat().st_mtime_ns == stamp
    with torch.no_grad():
        vqvae.quantizer.embedding.weight.add_(0.5)  # another codebook: another fingerprint, encoded anew
    other = ensure_tokens(split, vqvae, progress=False)
    assert other != folder and other.parent == folder.parent
    assert vqvae_fingerprint(vqvae)[:16] == other.name
    with torch.no_grad():
        vqvae.decoder.deconvs[0].weight.add_(1.0)  # the decoder does not change the codes
    assert ensure_tokens(split, vqvae, progress=False) == other
    # corrupt: truncated, then altered bytes -> one line naming the file and how to rebuild
    data = (other / "indices.npy").read_bytes()
    (other / "indices.npy").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"indices.npy: .*delete .* to encode the split again") as err:
        load_tokens(other)
    assert "\n" not in str(err.value)
    (other / "indices.npy").write_bytes(data[:-2] + bytes([data[-2] ^ 1, data[-1]]))
    with pytest.raises(DataError, match="sha256 does not match"):
        load_tokens(other)


def test_training_batches_come_from_the_token_cache(make_cfg, recon_ckpts):
    cfg = make_cfg(
        "debug=tiny",
        "phase=prediction",
        "dataset=pendulum",
        TOKENS,
        f"phase.init_from={recon_ckpts['pendulum']}",
    )
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    phase.setup("fit")
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.attach_token_cache(phase.vqvae)
    batch = next(iter(dm.train_dataloader()))
    assert "frames" not in batch and batch["tokens"].shape == (4, 7, 1, 8, 8)
    # the same windows from frames, encoded online, give the same codes and the same loss
    plain_dm = build_datamodule(cfg)
    plain_dm.setup("fit")
    framed = phase.on_after_batch_transfer(next(iter(plain_dm.train_dataloader())), 0)
    phase.eval()
    with torch.no_grad():
        assert torch.equal(phase.latents_of(framed)[1], batch["tokens"].long())
        from_tokens = phase.compute_losses(batch)["loss"]
        from_frames = phase.compute_losses(framed)["loss"]
    assert from_tokens.item() == pytest.approx(from_frames.item(), rel=1e-5)


def test_overfit_next_token_accuracy_above_90_percent(make_cfg, recon_ckpts):
    torch.manual_seed(0)
    cfg = make_cfg(
        "debug=tiny",
        "phase=prediction",
        "dataset=pendulum",
        TOKENS,
        f"phase.init_from={recon_ckpts['pendulum']}",
        "phase.lr=3e-3",
        "model.dynamics.hidden_channels=32",
    )
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    phase.setup("fit")
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.attach_token_cache(phase.vqvae)
    batch = next(iter(dm.train_dataloader()))
    phase.train()
    optimizer = phase.configure_optimizers()
    for _ in range(500):
        out = phase.compute_losses(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    phase.eval()
    with torch.no_grad():
        latents, indices, _ = phase.latents_of(batch)
        roll = phase.dynamics.rollout(latents[:, :2], batch["actions"], 1, phase.codebook, "argmax")
    accuracy = (roll.indices[:, 0] == indices[:, 2]).float().mean().item()  # the next frame's codes
    copy_last = (indices[:, 1] == indices[:, 2]).float().mean().item()  # most cells keep their code
    assert accuracy > 0.9 and accuracy > copy_last, (accuracy, copy_last)


@pytest.mark.parametrize("phase", ["prediction", "comprehensive"])
def test_fast_dev_run_with_token_dynamics(make_cfg, recon_ckpts, phase):
    cfg = make_cfg(
        "debug=tiny",
        f"phase={phase}",
        "dataset=pendulum",
        TOKENS,
        "logger=none",
        "trainer.fast_dev_run=true",
        f"phase.init_from={recon_ckpts['pendulum']}",
    )
    metrics = train(cfg)
    assert "train/pred_token_ce" in metrics and "test/rollout_token_acc/t01" in metrics
    assert "test/tokenizer_floor_mse/t01" in metrics and "test/rollout_sharpness/t01" in metrics


def test_rl_imagines_with_token_dynamics(tmp_path, recon_ckpts):
    common = [
        "debug=tiny",
        "dataset=goal_reach",
        "logger=none",
        TOKENS,
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    pred = compose_config(
        tmp_path / "pred",
        [*common, "phase=prediction", "test=false", f"phase.init_from={recon_ckpts['goal_reach']}"],
    )
    train(pred)
    ckpt = tmp_path / "pred" / "run" / "checkpoints" / "last.ckpt"
    rl = compose_config(
        tmp_path / "rl",
        [
            *common,
            "phase=rl",
            "trainer.fast_dev_run=true",
            "phase.reward_pretrain_steps=0",
            "phase.eval_episodes=1",
            "phase.test_episodes=1",
            f"phase.init_from={ckpt}",
        ],
    )
    metrics = train(rl)
    assert math.isfinite(metrics["train/actor_loss"]) and "test/return_policy" in metrics


def test_bad_token_settings_fail_with_one_line(make_cfg, tmp_path):
    from physworld.checks import check_config
    from physworld.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.dynamics.output='pixels' is not accepted: one of"):
        check_config(make_cfg("phase=comprehensive", "model.dynamics.output=pixels"))
    with pytest.raises(ConfigError, match=r"model.dynamics.feedback='nearest' is not accepted"):
        check_config(make_cfg("phase=comprehensive", "model.dynamics.feedback=nearest"))
    with pytest.raises(ConfigError, match=r"model.vq.groups=5 is not accepted: a positive divisor of"):
        check_config(make_cfg("model.vq.groups=5"))
    with pytest.raises(ConfigError, match=r"data.token_cache=true is not accepted with phase=comprehensive"):
        check_config(make_cfg("phase=comprehensive", "data.token_cache=true"))
    with pytest.raises(ConfigError, match=r"phase.foreground_weight=-1 is not accepted"):
        check_config(make_cfg("phase.foreground_weight=-1"))


@pytest.mark.parametrize("head", ["copy", "distance"])
def test_untrained_copy_and_distance_heads_predict_every_cell_keeps_its_code(head):
    torch.manual_seed(0)
    codebook = torch.randn(2 * 12, 3)  # two groups of 12 codes, 3 dims each: C = 6
    dyn = LatentDynamics(
        latent_channels=6,
        hidden_channels=8,
        num_layers=2,
        action_dim=2,
        output="tokens",
        num_codes=12,
        groups=2,
        token_head=head,
    )
    codes = torch.stack([torch.randint(0, 12, (2, 3, 8, 8)), 12 + torch.randint(0, 12, (2, 3, 8, 8))], dim=2)
    context = torch.stack([lookup_codes(codebook, codes[:, t]) for t in range(3)], dim=1)  # (B, 3, C, H, W)
    roll = dyn.rollout(context, torch.randn(2, 6, 2), horizon=3, codebook=codebook, feedback="argmax")
    for k in range(3):
        assert torch.equal(roll.indices[:, k], codes[:, -1]), (head, k)  # copy-last, at every step


def lookup_codes(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """indices (B, G, H, W) of a (G*K, d) codebook -> latents (B, G*d, H, W), as the quantiser looks them up."""
    from physworld.models.vector_quantizer import VectorQuantizer

    vq = VectorQuantizer(num_codes=codebook.shape[0] // 2, code_dim=2 * codebook.shape[1], groups=2)
    vq.embedding.weight.data.copy_(codebook)
    return vq.lookup(indices)


def test_frame_loss_trains_the_dynamics_through_the_frozen_decoder(make_cfg, recon_ckpts):
    cfg = make_cfg(
        "debug=tiny",
        "phase=prediction",
        "dataset=pendulum",
        f"phase.init_from={recon_ckpts['pendulum']}",
        "phase.frame_weight=1",
        "phase.pred_weight=0",
    )
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    phase.setup("fit")
    assert phase.trains_on_frames
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.attach_token_cache(phase.vqvae, frames=phase.trains_on_frames)
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert "tokens" in batch and "frames" in batch  # codes for the latents, frames for the loss
    out = phase.compute_losses(batch)
    out["loss"].backward()
    assert out["pred_frame_loss"] > 0 and torch.isclose(
        out["loss"], out["pred_frame_loss"] + cfg.phase.dynamics_l2 * out["dynamics_l2"]
    )
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in phase.dynamics.cells.parameters())
    assert all(
        p.grad is None for p in phase.vqvae.parameters()
    )  # frozen: the decoder only carries the gradient
