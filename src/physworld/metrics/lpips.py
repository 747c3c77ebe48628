"""LPIPS, the learned perceptual distance of Zhang et al. (2018), "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric" (CVPR), in its AlexNet form, version 0.1 (the `lpips` package's default and
torchmetrics' `LearnedPerceptualImagePatchSimilarity(net_type="alex")`):

    lpips(x, y) = sum over layers l of  mean over (h, w) of  sum over c of  w_lc (f_l(x) - f_l(y))_c^2

where f_l is the output of AlexNet's l-th ReLU (five of them), divided at every position by its length over the
channels, and w_l >= 0 the learned weight of each channel (the paper's "lin" layers: 1x1 convolutions without
bias). Frames in [0, 1] go to [-1, 1], then (x - SHIFT) / SCALE per channel, as LPIPS's scaling layer does.
0 for identical frames; larger is less alike.

The weights are read from files, never downloaded:
- the backbone: torchvision's ImageNet AlexNet (`alexnet-owt-7be5be79.pth`, its `features.*` entries), a file
  the user provides (`backbone_path`);
- the linear layers: the LPIPS weights that torchmetrics ships (`functional/image/lpips_models/alex.pth`).
Both go through physworld.safe_checkpoint.load_weights_file (static check, then weights_only=True).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from physworld.errors import CheckpointError, ConfigError
from physworld.safe_checkpoint import load_weights_file

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's name for its ImageNet AlexNet weights
BACKBONE_URL = f"https://download.pytorch.org/models/{BACKBONE_FILE}"
TAPS = (1, 4, 7, 9, 11)  # indices in AlexNet's `features` of the ReLUs whose outputs LPIPS compares
CHANNELS = (64, 192, 384, 256, 256)  # their channels
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS's scaling layer, on frames in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # added to the feature length before dividing (as LPIPS's normalize_tensor)
MIN_SIZE = 31  # the smallest frame side whose features survive AlexNet's two stride-2 poolings


class AlexNetFeatures(nn.Module):
    """torchvision's `alexnet().features`, layer for layer, so its state dict has the same names and shapes
    (`features.0.weight`, ...): conv 11x11/4 -> 64, pool, conv 5x5 -> 192, pool, conv 3x3 -> 384, -> 256,
    -> 256, pool. `forward` returns the five ReLU outputs LPIPS compares."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # unused by LPIPS; kept so the indices are torchvision's
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N, 3, H, W) -> the five ReLU outputs, (N, CHANNELS[l], h_l, w_l)."""
        out = []
        for i, layer in enumerate(self.features[: TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """`lpips(pred, target)`: frames (N, 3, H, W) in [0, 1] -> distance per frame (N,). Frozen, always in eval
    mode (it has no dropout or normalisation layers whose mode would matter). `features` and `distance` split
    the work, so frames compared with several predictions are passed through AlexNet once."""

    def __init__(self):
        super().__init__()
        self.backbone = AlexNetFeatures()
        self.linear = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, backbone: str | Path, key: str, linear: str | Path | None = None) -> LPIPS:
        """The metric with torchvision's AlexNet weights from `backbone` (the config key `key` names it in
        errors) and LPIPS's linear weights from `linear` (None: the file torchmetrics ships)."""
        lpips = cls()
        weights = load_weights_file(backbone, key)
        features = {k: v for k, v in weights.items() if k.startswith("features.")}
        lpips.load_named(lpips.backbone, features, backbone, key, "torchvision's AlexNet weights")
        linear = linear_weights_path() if linear is None else Path(linear)
        lin = load_weights_file(linear, "LPIPS linear weights")
        # the lpips package's names: lin<l>.model.1.weight (model.0 is a dropout), (1, C_l, 1, 1)
        renamed = {f"{i}.weight": lin.get(f"lin{i}.model.1.weight") for i in range(len(CHANNELS))}
        renamed = {k: v for k, v in renamed.items() if v is not None}
        lpips.load_named(
            lpips.linear, renamed, linear, "LPIPS linear weights", "LPIPS's AlexNet linear weights"
        )
        return lpips

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(pred), self.features(target))

    def features(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames (N, 3, H, W) in [0, 1] -> the five AlexNet feature maps, unit length over channels."""
        h, w = frames.shape[-2:]
        if min(h, w) < MIN_SIZE:
            raise ValueError(
                f"LPIPS: frames of {h}x{w} are too small for AlexNet (accepted: {MIN_SIZE}x{MIN_SIZE} or more)"
            )
        # autocast off: under bf16-mixed the features would lose digits
        with torch.autocast(frames.device.type, enabled=False):
            x = (frames.float() * 2 - 1 - self.shift) / self.scale
            return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + EPS) for f in self.backbone(x)]

    def distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """Two lists of `features` -> LPIPS per frame (N,)."""
        with torch.autocast(a[0].device.type, enabled=False):
            layers = [lin((fa - fb).pow(2)).mean((1, 2, 3)) for lin, fa, fb in zip(self.linear, a, b)]
        return torch.stack(layers).sum(0)

    @staticmethod
    def load_named(module: nn.Module, weights: dict, path, key: str, what: str) -> None:
        """load_state_dict, strict, with a one-line CheckpointError naming the first missing or misshapen entry."""
        expected = module.state_dict()
        for name, tensor in expected.items():
            if name not in weights or weights[name].shape != tensor.shape:
                found = tuple(weights[name].shape) if name in weights else "missing"
                raise CheckpointError(
                    f"{key}={str(path)!r} does not hold {what}: {name} is {found}, expected {tuple(tensor.shape)}"
                )
        module.load_state_dict({name: weights[name].float() for name in expected})


def backbone_path(configured: str | None, key: str) -> Path:
    """The AlexNet weights file: `configured` if set, else torchvision's file in torch hub's cache (where
    torchvision would have saved it, `$TORCH_HOME/hub/checkpoints/`). ConfigError (one line: the path looked
    at, how to get the file once, the key to set) when there is no such file; nothing is downloaded."""
    if configured is not None:
        path = Path(str(configured)).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{key}={str(configured)!r}: no such file (accepted: torchvision's AlexNet weights, {BACKBONE_URL})"
            )
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILE
    if not path.is_file():
        raise ConfigError(
            f"LPIPS needs torchvision's AlexNet weights and found none at {path}: download {BACKBONE_URL} once "
            f"(nothing here downloads it) and save it there, or set {key}=<the file>"
        )
    return path


def linear_weights_path() -> Path:
    """LPIPS's linear weights for AlexNet, as the installed torchmetrics ships them."""
    spec = importlib.util.find_spec("torchmetrics")  # a dependency of physworld; found without importing it
    root = Path(spec.origin).parent if spec and spec.origin else Path("torchmetrics")
    path = root / "functional" / "image" / "lpips_models" / "alex.pth"
    if not path.is_file():
        raise ConfigError(
            f"LPIPS: no linear weights at {path}: reinstall torchmetrics (its wheel ships lpips_models/alex.pth)"
        )
    return path


def build_lpips(enabled: bool, backbone: str | None, key: str) -> LPIPS | None:
    """The metric when `enabled` (the backbone from `backbone`, the config key `key`), else None."""
    return LPIPS.from_files(backbone_path(backbone, key), key) if enabled else None
