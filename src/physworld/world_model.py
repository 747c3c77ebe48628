"""`physworld.load_world_model(path)`: a trained world model as a plain Python object, without Hydra or
Lightning (docs/guide.md's "Python API" section shows it in use; examples/ has two scripts built on it).

`path` is a training checkpoint (`<run>/checkpoints/best.ckpt` of a reconstruction, prediction, comprehensive
or rl run), read without running anything in it (safe_checkpoint.py), or a folder written by
scripts/export.py (`config.json` + `model.safetensors`). Either way the networks are rebuilt from the saved
model config by the same functions the phases use, and their weights loaded strictly.

Frames go in as the datasets and the environment give them, uint8 (..., H, W, 3), or as the networks take
them, float (..., 3, H, W) in [0, 1]; frames come out as float (..., 3, H, W) in [0, 1] (`to_images` turns
them into uint8 (..., H, W, 3) for plotting). Letters: B batch, T frames, C code_dim, G codebook groups,
h, w the latent grid (8 x 8 for 64 x 64 frames), A action dim, Hc the dynamics' hidden channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from physworld.devices import pick_device
from physworld.models.convgru import LatentDynamics
from physworld.models.frame_head import FrameHead
from physworld.models.spec import ModelSpec
from physworld.models.vqvae import VQVAE
from physworld.phases.checkpoints import build_networks, checkpoint_spec, read_phase_checkpoint, saved_spec

KEY = "path"  # what load_world_model's errors call the argument


class Encoding(NamedTuple):
    latents: torch.Tensor  # (..., C, h, w) the quantized latents
    tokens: torch.Tensor  # (..., G, h, w) their codes (the quantiser's global row numbers)


class Prediction(NamedTuple):
    frames: torch.Tensor  # (B, K, 3, H, W) decoded predictions in [0, 1]
    latents: torch.Tensor  # (B, K, C, h, w) the predicted latents (codebook entries for a token dynamics)
    tokens: torch.Tensor  # (B, K, G, h, w) the predicted codes (the nearest codes for a latent dynamics)


class Imagination(NamedTuple):
    frames: torch.Tensor | None  # (B, K, 3, H, W) decoded, or None with decode=False
    latents: torch.Tensor  # (B, K, C, h, w) the latents the actions led to
    actions: torch.Tensor  # (B, K, A) the policy's actions


class WorldModel:
    """The VQ-VAE and, for checkpoints with dynamics, the ConvGRU dynamics of a trained run, in eval mode with
    their parameters frozen (gradients still flow through them, e.g. to a policy in `imagine`). With
    model.decoder.output=warp|composite, `frame_head` turns predicted latents into frames by moving the last
    real frame (models/frame_head.py); `rollout` and `imagine` pass it their last start frame."""

    def __init__(
        self,
        spec: ModelSpec,
        vqvae: VQVAE,
        dynamics: LatentDynamics | None,
        device="cpu",
        frame_head: FrameHead | None = None,
    ):
        self.spec = spec  # what the networks were built from (models/spec.py)
        self.config = spec.to_dict()  # the same as plain values, in the layout of configs/model
        self.vqvae = vqvae.eval().requires_grad_(False)
        self.dynamics = None if dynamics is None else dynamics.eval().requires_grad_(False)
        self.frame_head = None if frame_head is None else frame_head.eval().requires_grad_(False)
        self.to(device)

    def to(self, device) -> WorldModel:
        self.device = torch.device(device)
        for net in (self.vqvae, self.dynamics, self.frame_head):
            if net is not None:
                net.to(self.device)
        return self

    @property
    def action_dim(self) -> int:
        return self.spec.dynamics.action_dim

    @property
    def hidden_channels(self) -> int:
        """Hc: the channels of the dynamics' hidden state a policy reads in `imagine`."""
        return self.spec.dynamics.hidden_channels

    @property
    def latent_channels(self) -> int:
        return self.spec.vq.code_dim

    @torch.no_grad()
    def encode(self, frames, batch_size: int = 256) -> Encoding:
        """Frames (..., H, W, 3) uint8 or (..., 3, H, W) float in [0, 1] -> latents (..., C, h, w) and codes
        (..., G, h, w). Encoded `batch_size` frames at a time, so a whole memory-mapped split fits."""
        if not hasattr(frames, "shape"):  # a list of frames
            frames = np.asarray(frames)
        shape = tuple(frames.shape)
        if len(shape) < 3:
            self._frames(frames)  # raises the one-line error naming the shape
        flat = frames.reshape(-1, *shape[-3:])  # a view for NumPy arrays, memory maps and tensors
        latents, tokens = [], []
        for i in range(0, flat.shape[0], batch_size):
            z, k, _ = self.vqvae.encode(self._frames(flat[i : i + batch_size]))
            latents.append(z)
            tokens.append(k)
        z, k = torch.cat(latents), torch.cat(tokens)
        return Encoding(z.reshape(*shape[:-3], *z.shape[1:]), k.reshape(*shape[:-3], *k.shape[1:]))

    @torch.no_grad()
    def decode(self, latents_or_tokens, last_frame=None) -> torch.Tensor:
        """Latents (..., C, h, w) float, or codes (..., G, h, w) integer -> frames (..., 3, H, W) in [0, 1].

        With `last_frame` (B, ...) (one real frame per sequence, uint8 (B, H, W, 3) or float (B, 3, H, W)) and a
        frame head (model.decoder.output=warp|composite), latents (B, K, C, h, w) become that frame moved as
        the head predicts, as in `rollout`. Without it, the VQ-VAE's own decoder draws them."""
        x = torch.as_tensor(latents_or_tokens, device=self.device)
        if not x.is_floating_point():
            x = self._lookup(x)
        if x.dim() < 3 or x.shape[-3] != self.latent_channels:
            raise ValueError(
                f"decode got shape {tuple(x.shape)}: accepted latents (..., {self.latent_channels}, h, w) float "
                f"or codes (..., {self.vqvae.quantizer.groups}, h, w) integer"
            )
        if last_frame is not None and self.frame_head is not None:
            return self._warp_decode(x.float(), self._frames(last_frame))
        lead = x.shape[:-3]
        frames = self.vqvae.decode(x.reshape(-1, *x.shape[-3:]).float()).clamp(0, 1)
        return frames.reshape(*lead, *frames.shape[1:])

    @torch.no_grad()
    def rollout(self, frames, actions=None, horizon: int = 10) -> Prediction:
        """Open-loop prediction: the dynamics warms up on the context frames (B, Tc, ...) (or (Tc, ...), one
        sequence), then feeds back its own predictions for `horizon` frames. `actions` (B, >= Tc + horizon - 1,
        A), the action after each frame, or None for zeros (the passive datasets store zeros). Token
        predictions are fed back by argmax, so the rollout is deterministic (as scripts/evaluate.py's)."""
        dynamics = self._require_dynamics("rollout")
        context, single = self._sequences(frames, "frames")
        b, tc = context.shape[:2]
        actions = self._actions(actions, b, tc + horizon - 1, single)
        z = self.encode(context).latents  # (B, Tc, C, h, w)
        roll = dynamics.rollout(z, actions, horizon, codebook=self.codebook, feedback="argmax")
        tokens = roll.indices if roll.indices is not None else self._nearest(roll.latents)
        frames = self._frames_after(roll.latents, context[:, -1], z[:, -1])
        out = Prediction(frames, roll.latents, tokens)
        return Prediction(*(t[0] for t in out)) if single else out

    def imagine(self, policy, start, horizon: int, start_actions=None, decode: bool = True) -> Imagination:
        """Let `policy` act inside the model for `horizon` steps from the start frames (B, Tc, ...) (or (Tc, ...)).

        `policy(latents (B, C, h, w), hidden (B, Hc, h, w)) -> actions (B, A) in [-1, 1]` sees the model state
        the RL phase's actor sees (an RLPhase itself is such a policy). The dynamics first consumes the start
        frames with `start_actions` (B, >= Tc - 1, A) (None: zeros), then each step the policy acts on the
        current state and the dynamics predicts the next latent. Not under no_grad: the actions' gradients flow
        back through the frozen dynamics to the policy (Dreamer's dynamics backpropagation), so a policy can be
        trained on the imagined latents. Token predictions are fed back straight-through."""
        dynamics = self._require_dynamics("imagine")
        context, single = self._sequences(start, "start")
        b, tc = context.shape[:2]
        given = self._actions(start_actions, b, max(tc - 1, 0), single)
        z_all = self.encode(context).latents  # (B, Tc, C, h, w)
        state = None
        for t in range(tc - 1):  # teacher-forced on the start frames
            state = dynamics.advance(z_all[:, t], given[:, t], state)
        z = z_all[:, -1]
        state = state if state is not None else dynamics.initial_state(z)
        latents, actions = [], []
        for _ in range(horizon):
            action = torch.as_tensor(policy(z, state[-1]), device=self.device).float()
            if action.shape != (b, self.action_dim):
                raise ValueError(
                    f"the policy returned actions of shape {tuple(action.shape)}: accepted ({b}, {self.action_dim})"
                )
            z, state = dynamics.step(z, action, state, self.codebook, feedback="straight_through")
            latents.append(z)
            actions.append(action)
        latents_t, actions_t = torch.stack(latents, 1), torch.stack(actions, 1)
        frames = self._frames_after(latents_t.detach(), context[:, -1], z_all[:, -1]) if decode else None
        out = Imagination(frames, latents_t, actions_t)
        return Imagination(*(None if t is None else t[0] for t in out)) if single else out

    # ------------------------------------------------------------------------------------------------------

    @property
    def codebook(self) -> torch.Tensor:
        return self.vqvae.quantizer.embedding.weight  # (G*K, C/G)

    def _require_dynamics(self, what: str) -> LatentDynamics:
        if self.dynamics is None:
            raise ValueError(
                f"{what} needs a world model with dynamics: this one is a reconstruction checkpoint (VQ-VAE only); "
                "load a prediction, comprehensive or rl checkpoint"
            )
        return self.dynamics

    def _warp_decode(self, latents: torch.Tensor, last_frame: torch.Tensor) -> torch.Tensor:
        """latents (B, K, C, h, w), last_frame (B, 3, H, W) -> the frame head's frames (B, K, 3, H, W) in [0, 1]."""
        if latents.dim() != 5 or last_frame.dim() != 4 or last_frame.shape[0] != latents.shape[0]:
            raise ValueError(
                f"decode with last_frame got latents {tuple(latents.shape)} and last_frame "
                f"{tuple(last_frame.shape)}: accepted latents (B, K, C, h, w) and one frame per sequence (B, ...)"
            )
        return self._frames_after(latents, last_frame, self.vqvae.encode(last_frame)[0])

    @torch.no_grad()
    def _frames_after(
        self, latents: torch.Tensor, last_frame: torch.Tensor, z_last: torch.Tensor
    ) -> torch.Tensor:
        """Predicted latents (B, K, C, h, w) after the real frame last_frame (B, 3, H, W), whose latent is z_last
        (B, C, h, w) -> frames (B, K, 3, H, W) in [0, 1]: the frame head's where there is one, else decoded."""
        if self.frame_head is None:
            return self.decode(latents)
        return self.frame_head(latents, z_last, last_frame).frames.clamp(0, 1)

    def _frames(self, frames) -> torch.Tensor:
        """uint8 (..., H, W, 3) or float (..., 3, H, W) in [0, 1] -> float (..., 3, H, W) on this device."""
        x = (
            frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames))
        )  # a copy: memmaps
        if x.dtype == torch.uint8 and x.dim() >= 3 and x.shape[-1] == 3:
            return x.to(self.device).movedim(-1, -3).float().div_(255.0)
        if x.is_floating_point() and x.dim() >= 3 and x.shape[-3] == 3:
            return x.to(self.device, torch.float32)
        raise ValueError(
            f"frames of shape {tuple(x.shape)} and dtype {x.dtype}: accepted uint8 (..., H, W, 3) or float "
            "(..., 3, H, W) in [0, 1]"
        )

    def _sequences(self, frames, name: str) -> tuple[torch.Tensor, bool]:
        """Frames (B, T, ...) -> float (B, T, 3, H, W); one sequence (T, ...) gets a batch axis (single=True)."""
        x = self._frames(frames)
        if x.dim() == 4:
            return x[None], True
        if x.dim() == 5:
            return x, False
        raise ValueError(f"{name} of shape {tuple(x.shape)}: accepted (B, T, ...) or (T, ...) frames")

    def _actions(self, actions, b: int, needed: int, single: bool) -> torch.Tensor:
        """(B, >= needed, A) actions as a float tensor on this device; None -> zeros."""
        if actions is None:
            return torch.zeros(b, needed, self.action_dim, device=self.device)
        a = actions if isinstance(actions, torch.Tensor) else torch.from_numpy(np.array(actions))
        a = a.to(self.device, torch.float32)
        if single and a.dim() == 2:
            a = a[None]
        if a.dim() != 3 or a.shape[0] != b or a.shape[1] < needed or a.shape[2] != self.action_dim:
            raise ValueError(
                f"actions of shape {tuple(a.shape)}: accepted ({b}, >= {needed}, {self.action_dim}) "
                "(the action after each frame)"
            )
        return a

    def _lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes (..., G, h, w) -> latents (..., C, h, w)."""
        groups = self.vqvae.quantizer.groups
        if tokens.dim() < 3 or tokens.shape[-3] != groups:
            raise ValueError(f"codes of shape {tuple(tokens.shape)}: accepted (..., {groups}, h, w) integers")
        lead = tokens.shape[:-3]
        z = self.vqvae.quantizer.lookup(tokens.reshape(-1, *tokens.shape[-3:]).long())
        return z.reshape(*lead, *z.shape[1:])

    def _nearest(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, K, C, h, w) -> the nearest code of each cell (B, K, G, h, w)."""
        b, k, c, h, w = latents.shape
        flat = latents.permute(0, 1, 3, 4, 2).reshape(-1, c)
        return self.vqvae.quantizer.nearest(flat).view(b, k, h, w, -1).permute(0, 1, 4, 2, 3)


def load_world_model(path: str | Path, device=None) -> WorldModel:
    """The world model of a training checkpoint or an exported folder (scripts/export.py), on `device`
    (default: CUDA, else MPS, else CPU). CheckpointError (one line naming the path) for anything else."""
    from physworld.export import read_export

    path = Path(path)
    if path.is_dir():
        model, state = read_export(path, key=KEY)
        spec = saved_spec(model, str(path), KEY)
    else:
        ckpt = read_phase_checkpoint(path, KEY)
        spec, state = checkpoint_spec(ckpt, str(path), KEY), ckpt["state_dict"]
    nets = build_networks(spec, state, str(path), KEY)
    device = device if device is not None else pick_device()
    return WorldModel(spec, nets["vqvae"], nets["dynamics"], device, nets["frame_head"])


def to_images(frames) -> np.ndarray:
    """Frames (..., 3, H, W) in [0, 1] -> uint8 (..., H, W, 3), for plotting or saving."""
    x = torch.as_tensor(frames).detach().float().clamp(0, 1)
    return (x.movedim(-3, -1) * 255).round().to(torch.uint8).cpu().numpy()
