"""The frame head: how a predicted latent becomes a frame by moving the last real frame, not redrawing it.

The seed decodes every predicted latent with the VQ-VAE's decoder, which must redraw every pixel; at the budgets
physworld trains on, the objects come out blurred and faded from the first step (docs/results.md, "Move what
is known"). Almost every pixel of the next frame is in the last real frame x_c, somewhere nearby, so this head
predicts where to fetch it from instead (`model.decoder.output`):

    warp       x_hat = warp(x_c, f): a backward flow f (B, 2, H, W) in pixels, per horizon and relative to x_c
               (never chained through predicted frames): pixel p of the prediction is x_c sampled at p + f(p).
    composite  x_hat = warp(x_c, f) + a * (g - warp(x_c, f)): a generated image g (B, 3, H, W) mixed in by a
               mask a in [0, 1], for what a warp cannot show (content entering the frame, a revealed background,
               a wave's new rings, a digit's new pose).

The head reads the predicted latent z_hat (B, C, h, w), the latent of the last real frame z_c and x_c itself:
a transposed-conv trunk (the decoder's widths) takes [z_hat, z_c] from h x w to H/2 x W/2, a 3x3 conv narrows
its features, which are upsampled to H x W and added to a 3x3 conv's features of x_c (so the flow may follow an
object's edge; computed once per sequence, not per horizon), and a last 3x3 conv gives the flow (and g and the
mask's logit). Most of the cost is at full resolution, so little runs there. That conv starts at
zero, so at initialisation f = 0 and a = 0: the head reproduces copy-last. The mask is the logit clamped to
[0, 1] (not a sigmoid), so it starts at exactly 0 and still gets a gradient there.

Sampling is bilinear (or bicubic, sharper edges, with overshoot) with the frame's border repeated outside it.
A bilinear warp gives the flow a gradient only within a pixel of an edge; the multi-scale photometric loss
(phases/losses.py) is what reaches an object that moved further.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

OUTPUTS = ("pixels", "warp", "composite")  # model.decoder.output (pixels: the VQ-VAE's own decoder)
SAMPLINGS = ("bilinear", "bicubic", "nearest")


class HeadOutput(NamedTuple):
    frames: (
        torch.Tensor
    )  # (B, K, 3, H, W) the predicted frames (linear, like the decoder's: clamp to display)
    flow: torch.Tensor  # (B, K, 2, H, W) the backward flow in pixels, (x, y) = (to the right, downwards)
    mask: torch.Tensor | None  # (B, K, 1, H, W) the generated part's share (composite), else None


def warp(frames: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """frames (N, 3, H, W), flow (N, 2, H, W) in pixels -> frames sampled at p + flow(p) (N, 3, H, W).
    Outside the frame the border pixel repeats (the scenes' backgrounds are uniform near the border). mode
    "nearest" copies whole pixels (no blur) and passes bilinear's gradient to the flow straight through (a
    nearest sample's own gradient with respect to the flow is zero)."""
    _, _, h, w = frames.shape
    # pixel (i, j) -> grid_sample's normalised coordinates (align_corners=False: -1 and 1 are the outer edges, so
    # pixel centres are (2j + 1) / W - 1): for a power-of-two side every step is exact in floating point, and a
    # zero flow gives back the frame bit for bit
    ys = (2 * torch.arange(h, device=flow.device, dtype=flow.dtype) + 1) / h - 1
    xs = (2 * torch.arange(w, device=flow.device, dtype=flow.dtype) + 1) / w - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=flow.device, dtype=flow.dtype)  # pixels -> normalised
    grid = (base + flow.permute(0, 2, 3, 1) * scale).to(frames.dtype)  # (N, H, W, 2)
    sample = lambda m: F.grid_sample(frames, grid, mode=m, padding_mode="border", align_corners=False)  # noqa: E731
    if mode != "nearest":
        return sample(mode)
    smooth = sample("bilinear")
    return smooth + (sample("nearest") - smooth).detach()


class FrameHead(nn.Module):
    """(z_hat (B, K, C, h, w) at K horizons, z_c (B, C, h, w), x_c (B, 3, H, W)) -> HeadOutput. Sizes from the
    model spec (hidden_channels: the encoder's, mirrored as in the decoder)."""

    def __init__(
        self,
        latent_channels: int,
        hidden_channels: tuple[int, ...],
        output: str,
        sampling: str,
        flow_grid: int = 1,
    ):
        super().__init__()
        if output not in OUTPUTS[1:]:
            raise ValueError(f"FrameHead output={output!r}: accepted one of {list(OUTPUTS[1:])}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"FrameHead sampling={sampling!r}: accepted one of {list(SAMPLINGS)}")
        self.output, self.sampling, self.flow_grid = output, sampling, flow_grid
        # the trunk stops at half the frame's side; its features are upsampled to the full side, where only two
        # narrow convs run beside x_c (most of the head's cost is at full resolution)
        widths = [2 * latent_channels, *reversed(hidden_channels)]
        self.trunk = nn.ModuleList(
            nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1)
            for a, b in zip(widths[:-1], widths[1:])
        )
        narrow = max(hidden_channels[0] // 2, 4)
        self.coarse = nn.Conv2d(hidden_channels[0], narrow, kernel_size=3, padding=1)  # at half the side
        # x_c's features, once per sequence (the same for every horizon), added to the upsampled ones
        self.image = nn.Conv2d(3, narrow, kernel_size=3, padding=1)
        # flow (2), and for composite the generated image (3) and the mask's logit (1)
        self.out = nn.Conv2d(narrow, 2 if output == "warp" else 6, kernel_size=3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, z_last: torch.Tensor, last_frame: torch.Tensor) -> HeadOutput:
        b, k = z.shape[:2]
        repeat = lambda t: t.unsqueeze(1).expand(b, k, *t.shape[1:]).flatten(0, 1)  # noqa: E731 (B*K, ...)
        x = torch.cat([z.flatten(0, 1), repeat(z_last)], dim=1)  # (B*K, 2C, h, w)
        for deconv in self.trunk:
            x = F.relu(
                deconv(x)
            )  # doubles the side each time: (B*K, hidden_channels[0], H / 2, W / 2) at the end
        x = F.interpolate(self.coarse(x), size=last_frame.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(x + repeat(self.image(last_frame.to(x.dtype))))  # (B*K, narrow, H, W)
        last_frame = repeat(last_frame)
        out = self.out(x)  # (B*K, 2 or 6, H, W)
        flow = out[:, :2]
        if self.flow_grid > 1:  # one flow per cell, interpolated back: neighbouring pixels move together
            flow = F.interpolate(
                F.avg_pool2d(flow, self.flow_grid), size=flow.shape[-2:], mode="bilinear", align_corners=False
            )
        frames = warp(last_frame, flow, self.sampling)
        mask = None
        if self.output == "composite":
            generated, mask = out[:, 2:5], out[:, 5:6].clamp(0.0, 1.0)
            frames = frames + mask * (generated - frames)
        unflat = lambda t: None if t is None else t.unflatten(0, (b, k))  # noqa: E731
        return HeadOutput(unflat(frames), unflat(flow), unflat(mask))
