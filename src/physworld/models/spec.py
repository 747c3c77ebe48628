"""The model spec: every setting the networks are built from, typed, validated in one place.

`ModelSpec.from_config(model)` reads the plain dict of the composed `model` config (configs/model/*.yaml, which
stay the user-facing source of the defaults) and is the only place its values are checked: a bad value raises
ConfigError with one line naming the key, the value and what is accepted. The builders (phases/base.py,
phases/prediction.py, phases/rl.py, world_model.py) read the sizes from the spec, and every checkpoint saves
`spec.to_dict()` (plain values, the config's layout), so the architecture of a trained model is read back
from it.

Each field says whether it is part of the architecture (`architecture=True`: the weights' shapes or meaning,
taken from the checkpoint when a phase starts from one) or a training option (how the weights are trained, taken
from the run's config). No torch here: config checks import this module before torch is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from physworld.errors import ConfigError
from physworld.typed import read_fields, setting

OUTPUTS = ("latent", "tokens")  # what the dynamics predicts (models/convgru.py)
FEEDBACKS = ("argmax", "straight_through", "gumbel", "soft")  # how a predicted code is fed back
TOKEN_HEADS = ("copy", "linear", "distance")  # where the token logits come from
FRAME_OUTPUTS = (
    "pixels",
    "warp",
    "composite",
)  # how a predicted latent becomes a frame (models/frame_head.py)
SAMPLINGS = ("bilinear", "bicubic", "nearest")  # how the frame head's warp samples the last real frame

# Keys added after the first checkpoints were written: a model config without one (a checkpoint saved before
# the key existed) had the behaviour the code had then. A composed config always has them (the YAML does).
ADDED_LATER = {
    "vq": {"groups": 1},  # one codebook
    "decoder": {
        "output": "pixels",
        "sampling": "bilinear",
        "flow_grid": 1,
    },  # the VQ-VAE's decoder draws every frame
    "dynamics": {"output": "latent", "feedback": "straight_through", "token_head": "linear"},
}


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v) -> bool:
    return _int(v) and v > 0


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _setting(accepted: str, ok, architecture: bool, network: str | None = None):
    """A required setting (physworld/typed.py). `network`: the network whose weights it describes, where it is
    not the part's own (PART_NETWORKS): a checkpoint without that network does not hold it."""
    return setting(ok, accepted, architecture=architecture, network=network)


def _positive(architecture: bool = True):
    return _setting("a positive integer", _positive_int, architecture)


def _flag(architecture: bool = True):
    return _setting("true or false", lambda v: isinstance(v, bool), architecture)


def _one_of(choices: tuple[str, ...], architecture: bool = True, network: str | None = None):
    return _setting(f"one of {list(choices)}", lambda v: v in choices, architecture, network)


@dataclass(frozen=True)
class EncoderSpec:
    # channels of the encoder's first strided convs (the decoder mirrors them); the last conv outputs
    # vq.code_dim channels, and every conv halves the frame's side (64 -> 8 with two entries)
    hidden_channels: tuple[int, ...] = _setting(
        "a non-empty list of positive integers",
        lambda v: not isinstance(v, str) and len(v) >= 1 and all(_positive_int(c) for c in v),
        architecture=True,
    )


@dataclass(frozen=True)
class DecoderSpec:
    skip: bool = _flag()  # U-Net skips from the encoder's feature maps (reconstruction-only studies)
    # how a predicted latent becomes a frame: pixels (the decoder draws it), warp (the last real frame moved by
    # a predicted flow) or composite (the warp plus a generated part under a mask); the frame head's network
    output: str = _one_of(FRAME_OUTPUTS, network="frame_head")
    sampling: str = _one_of(
        SAMPLINGS, network="frame_head"
    )  # the warp's interpolation of the last real frame
    # the flow's grid in pixels: the head's flow averaged over flow_grid x flow_grid cells and interpolated back
    # (1: a flow per pixel), so an object moves as a whole instead of folding or tearing
    flow_grid: int = _setting(
        "a positive power of two", lambda v: _positive_int(v) and v & (v - 1) == 0, True, network="frame_head"
    )


@dataclass(frozen=True)
class QuantizerSpec:
    num_codes: int = _positive()  # K: entries of each codebook
    code_dim: int = _positive()  # C: latent channels (encoder output = code size x groups)
    groups: int = _positive()  # G: codebooks, each quantising code_dim / G channels (product quantisation)
    commitment_cost: float = _setting(  # beta: weight of the commitment term of the VQ loss
        "a non-negative number", lambda v: _number(v) and v >= 0, architecture=False
    )
    init_from_data: bool = _flag(architecture=False)  # codes start as encoder outputs of the first batch
    restart_dead_codes: bool = _flag(
        architecture=False
    )  # move unused codes to encoder outputs while training
    restart_every: int = _positive(architecture=False)  # training steps between dead-code checks
    restart_threshold: float = (
        _setting(  # dead: used < threshold x (assignments / K) times since the last check
            "a non-negative number", lambda v: _number(v) and v >= 0, architecture=False
        )
    )


@dataclass(frozen=True)
class DynamicsSpec:
    hidden_channels: int = _positive()  # channels of every ConvGRU layer
    num_layers: int = _positive()  # stacked ConvGRU cells
    kernel_size: int = _setting(  # convolution size of the gates and candidate
        "an odd positive integer", lambda v: _positive_int(v) and v % 2 == 1, architecture=True
    )
    action_dim: int = _positive()  # A: action channels tiled onto the latent
    residual: bool = _flag()  # output=latent: predict z_{t+1} - z_t instead of z_{t+1}
    output: str = _one_of(OUTPUTS)  # latent: regress the next latent; tokens: logits over the codebook
    token_head: str = _one_of(TOKEN_HEADS)  # output=tokens: where the logits come from
    # output=tokens: how training rollouts feed a predicted code back (evaluation always uses argmax)
    feedback: str = _one_of(FEEDBACKS, architecture=False)


# The parts of a model spec: config group -> its settings
PARTS = {"encoder": EncoderSpec, "decoder": DecoderSpec, "vq": QuantizerSpec, "dynamics": DynamicsSpec}
# Which network (a phase's attribute, a checkpoint's state-dict prefix) each part describes; a setting whose
# metadata names another network describes that one (network_of)
PART_NETWORKS = {"encoder": "vqvae", "decoder": "vqvae", "vq": "vqvae", "dynamics": "dynamics"}


@dataclass(frozen=True)
class ModelSpec:
    """The networks' settings, one part per group of configs/model (the field names are the config keys)."""

    encoder: EncoderSpec
    decoder: DecoderSpec
    vq: QuantizerSpec
    dynamics: DynamicsSpec

    @classmethod
    def from_config(cls, model: dict) -> ModelSpec:
        """The spec of a plain `model` config dict (extra keys, such as the option's `name`, are ignored);
        ConfigError (one line) for the first missing or bad value."""
        _mapping(model, "model")
        parts = {}
        for name, part in PARTS.items():
            given = {**ADDED_LATER.get(name, {}), **_mapping(model.get(name) or {}, f"model.{name}")}
            parts[name] = part(**read_fields(part, given, f"model.{name}", what="model settings"))
        spec = cls(**parts)
        if spec.vq.code_dim % spec.vq.groups:
            raise ConfigError(
                f"model.vq.groups={spec.vq.groups} is not accepted: a positive divisor of "
                f"model.vq.code_dim={spec.vq.code_dim}"
            )
        return spec

    def to_dict(self) -> dict:
        """Plain values in the config's layout ({"encoder": {...}, "vq": {...}, ...}): what checkpoints save,
        and what `from_config` reads back."""
        return {
            name: {f.name: _plain(getattr(getattr(self, name), f.name)) for f in fields(part)}
            for name, part in PARTS.items()
        }

    def architecture(self, part: str, network: str | None = None) -> dict:
        """The architecture settings of one part (`encoder`, `decoder`, `vq` or `dynamics`), by field name;
        with `network`, only those of the part that describe that network (`network_of`)."""
        values = getattr(self, part)
        return {
            f.name: getattr(values, f.name)
            for f in fields(values)
            if f.metadata["architecture"] and (network is None or network_of(part, f.name) == network)
        }


def network_of(part: str, name: str) -> str:
    """The network whose weights the setting `name` of `part` describes (PART_NETWORKS for most; a field may
    name another, as the decoder's frame-head settings do)."""
    meta = {f.name: f.metadata for f in fields(PARTS[part])}[name]
    return meta["network"] or PART_NETWORKS[part]


def _mapping(value, key: str) -> Mapping:
    if not isinstance(value, Mapping):  # a dict, or an OmegaConf DictConfig
        raise ConfigError(f"{key}={value!r} is not accepted: a mapping of the model settings")
    return value


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
