"""The one checkpoint module: reading a checkpoint safely, splitting its state dict into networks, building a
phase or the networks from it, and starting a phase from an earlier one's (`phase.init_from`), with one-line
errors naming the key the user set.

Every phase keeps its networks under the same attribute names (`vqvae`, `dynamics`, `frame_head`), so a
checkpoint's state dict loads into any phase that has those networks; networks the checkpoint lacks (the
dynamics of a reconstruction checkpoint) keep their fresh initialisation. A checkpoint's `hyper_parameters`
hold the plain dicts {"model", "phase", "dataset_names"} every phase saves (phases/base.py), and `model_spec`
the model's typed spec, so a phase is rebuilt from the file alone. Lightning is imported only to rebuild a
phase (`phase_from_checkpoint`): the Python API (physworld.world_model) reads and builds networks without it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from omegaconf import OmegaConf

from physworld.errors import CheckpointError, ConfigError
from physworld.models.build import build_dynamics, build_frame_head, build_vqvae
from physworld.models.spec import PART_NETWORKS, ModelSpec
from physworld.paths import CONFIG_DIR
from physworld.phases import PHASES, phase_class, phases_that
from physworld.safe_checkpoint import load_checkpoint_file

NETWORKS = ("vqvae", "dynamics", "frame_head")


def read_checkpoint(path: str | Path, key: str = "phase.init_from") -> dict:
    """Load a Lightning checkpoint on the CPU without running anything in it (safe_checkpoint.py), or raise
    CheckpointError naming `key` and the path."""
    ckpt = load_checkpoint_file(path, key)
    if "state_dict" not in ckpt:
        raise CheckpointError(f"{key}={str(path)!r} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def read_phase_checkpoint(path: str | Path, key: str) -> dict:
    """A checkpoint of any phase (read_checkpoint), or CheckpointError. Every phase holds a world model: an rl
    checkpoint the world model it trained in."""
    ckpt = read_checkpoint(path, key=key)
    name = checkpoint_phase(ckpt)
    if name not in PHASES:
        raise CheckpointError(
            f"{key}={str(path)!r} is a checkpoint of phase {name!r}: accepted one of {list(PHASES)}"
        )
    return ckpt


def checkpoint_phase(ckpt: dict) -> str | None:
    return ((ckpt.get("hyper_parameters") or {}).get("phase") or {}).get("name")


def checkpoint_spec(ckpt: dict, path: str, key: str = "phase.init_from") -> ModelSpec:
    """The model spec a checkpoint was trained with: its `model_spec`, or for a checkpoint saved before specs were
    (none inside), the one of its saved model config. CheckpointError (one line) when it is not accepted."""
    saved = ckpt.get("model_spec")
    if saved is None:
        saved = (ckpt.get("hyper_parameters") or {}).get("model") or {}
    return saved_spec(saved, path, key)


def saved_spec(saved: dict, path: str, key: str) -> ModelSpec:
    """The spec of a model config read from a file (a checkpoint, an export), or CheckpointError (one line)."""
    try:
        return ModelSpec.from_config(saved)
    except ConfigError as err:
        raise CheckpointError(f"{key}={path!r} holds a model spec that is not accepted ({err})") from None


def held_architecture(ckpt: dict, spec: ModelSpec) -> dict[str, dict]:
    """part -> {field: value} of `spec`'s architecture settings that describe a network the checkpoint holds
    (a reconstruction checkpoint's dynamics settings, or a checkpoint's frame-head settings when it has no
    frame head, describe no trained network)."""
    nets = {k.split(".", 1)[0] for k in ckpt["state_dict"]}
    held = {
        part: {name: v for net in nets for name, v in spec.architecture(part, network=net).items()}
        for part in PART_NETWORKS
    }
    return {part: values for part, values in held.items() if values}


def check_world_model_phase(ckpt: dict, path: str, key: str = "phase.init_from") -> None:
    """The checkpoint must come from a world-model phase."""
    name, accepted = checkpoint_phase(ckpt), phases_that("is_world_model")
    if name not in accepted:
        raise CheckpointError(
            f"{key}={path!r} is a checkpoint of phase {name!r}: accepted one of {list(accepted)}"
        )


def check_world_model_checkpoint(
    ckpt: dict, path: str, spec: ModelSpec, key: str = "phase.init_from"
) -> None:
    """The checkpoint must come from a world-model phase, and the parts of `spec` it holds must have its
    architecture (every field of models/spec.py marked architecture=True, compared generically)."""
    check_world_model_phase(ckpt, path, key)
    check_architecture(ckpt, path, spec, key)


def check_architecture(ckpt: dict, path: str, spec: ModelSpec, key: str) -> None:
    """The parts of `spec` the checkpoint holds must have its architecture; CheckpointError (one line naming the
    first differing key) otherwise."""
    theirs = checkpoint_spec(ckpt, path, key)
    for part, values in held_architecture(ckpt, theirs).items():
        for field, saved in values.items():
            value = spec.architecture(part)[field]
            if value != saved:
                raise _conflict(f"model.{part}.{field}", value, saved, key, path)


def init_model(model: dict, phase: dict) -> dict:
    """The model config of a run that starts from `phase.init_from`: like nanoGPT's resume, the architecture of
    the networks the checkpoint holds is the checkpoint's (its spec), the rest (the training options, the parts
    it lacks, such as the dynamics of a reconstruction checkpoint) the run's. Without init_from, `model` itself.

    What conflicts: an architecture setting of a held part whose value differs from the checkpoint's *and* from
    the run's model option (configs/model/<model.name>.yaml), i.e. one the run set itself (an override, an
    experiment, debug=tiny). A value the option file gives is no choice of the run's, so the checkpoint's
    replaces it; a run whose steps all compose the same settings (the demo pipeline) never conflicts. With no
    such option file every difference conflicts. A conflict raises CheckpointError, one line."""
    path = phase.get("init_from")
    if not path:
        return model
    key = "phase.init_from"
    ckpt = read_checkpoint(path, key)
    check_world_model_phase(ckpt, str(path), key)
    mine, theirs = ModelSpec.from_config(model), checkpoint_spec(ckpt, str(path), key)
    option = _option_values(model.get("name"))
    out = copy.deepcopy(model)
    for part, values in held_architecture(ckpt, theirs).items():
        for field, saved in values.items():
            value = mine.architecture(part)[field]
            if value == saved:
                continue
            default = None if option is None else (option.get(part) or {}).get(field)
            if default is None or _plain(default) != _plain(value):
                raise _conflict(f"model.{part}.{field}", value, saved, key, str(path))
            out[part][field] = _plain(saved)
    return out


def build_network(net: str, spec: ModelSpec) -> torch.nn.Module | None:
    """The network `net` (one of NETWORKS) of `spec`, freshly built (models/build.py; None: a frame head where
    the spec draws frames with the decoder)."""
    builders = {"vqvae": build_vqvae, "dynamics": build_dynamics, "frame_head": build_frame_head}
    return builders[net](spec)


def split_networks(state: dict) -> dict[str, dict]:
    """A state dict split by network: {"vqvae": {...}, "dynamics": {...}, "frame_head": {...}}, each with its
    prefix removed, empty for a network the state does not hold."""
    return {
        net: {k[len(net) + 1 :]: v for k, v in state.items() if k.startswith(f"{net}.")} for net in NETWORKS
    }


def load_networks(module: torch.nn.Module, ckpt: dict) -> list[str]:
    """Copy the networks the checkpoint has into `module`; return the names of the networks loaded."""
    loaded = []
    for net, part in split_networks(ckpt["state_dict"]).items():
        if part and hasattr(module, net):
            getattr(module, net).load_state_dict(part)
            loaded.append(net)
    return loaded


def build_networks(spec: ModelSpec, state: dict, path: str, key: str) -> dict[str, torch.nn.Module | None]:
    """The networks of `spec` that `state` holds, built and loaded strictly ({"vqvae": ..., "dynamics": ... or
    None, "frame_head": ... or None}); CheckpointError (one line) when the weights do not fit."""
    check_weights_fit(spec, state, path, key)  # before any network is built (allocated)
    nets = {}
    try:
        for net, part in split_networks(state).items():
            nets[net] = None
            if part or net == "vqvae":  # a frame head only where check_weights_fit found the spec makes one
                nets[net] = build_network(net, spec)
                nets[net].load_state_dict(part)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]  # torch's message spans lines: keep the error one line
        raise CheckpointError(f"{key}={path!r}: its weights do not fit its model spec ({detail})") from None
    return nets


def phase_from_checkpoint(ckpt: dict, path: str, key: str):
    """The phase a checkpoint's hyper_parameters describe, with its weights, in eval mode; CheckpointError (one
    line naming `key`) when they do not build a phase or the weights do not fit it. Imports Lightning."""
    hparams = ckpt.get("hyper_parameters") or {}
    name = hparams["phase"]["name"]
    # the sizes against the weights, before the networks are built (allocated)
    check_weights_fit(checkpoint_spec(ckpt, path, key), ckpt["state_dict"], path, key)
    try:
        phase = phase_class(name)(
            model=hparams.get("model") or {},
            phase=hparams["phase"],
            dataset_names=hparams.get("dataset_names"),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(
            f"{key}={path!r}: its hyper_parameters do not build a {name} phase ({type(err).__name__}: {err})"
        ) from None
    try:
        phase.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]  # torch's message spans lines: keep the error one line
        raise CheckpointError(
            f"{key}={path!r}: its weights do not fit the model of its hyper_parameters ({detail})"
        ) from None
    return phase.eval()


def load_phase(path: str | Path, key: str = "ckpt_path"):
    """The phase of a world-model checkpoint with its trained weights, in eval mode; and the raw checkpoint.
    CheckpointError (one line naming `key`) for a missing, unreadable or non-Lightning file, a checkpoint of
    another phase (rl) or without physworld hyperparameters, or weights that do not fit."""
    ckpt = read_checkpoint(path, key=key)
    check_world_model_phase(ckpt, str(path), key=key)  # accepts the world-model phases only
    return phase_from_checkpoint(ckpt, str(path), key), ckpt


def _conflict(name: str, value, saved, key: str, path: str) -> CheckpointError:
    return CheckpointError(
        f"{name}={_show(value)} conflicts with the checkpoint's {_show(saved)} ({key}={path!r})"
    )


def _show(value) -> str:
    """A value as a config override writes it (true, [16, 32])."""
    value = _plain(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _option_values(name: str | None) -> dict | None:
    """The values of the model option configs/model/<name>.yaml, its `defaults` (options of the same group)
    merged under it; None when there is no such file."""
    file = CONFIG_DIR / "model" / f"{name}.yaml"
    if not name or not file.is_file():
        return None
    node = OmegaConf.load(file)
    merged = OmegaConf.create()
    for parent in node.pop("defaults", None) or []:
        if isinstance(parent, str) and parent != "_self_":
            merged = OmegaConf.merge(merged, _option_values(parent) or {})
    return OmegaConf.to_container(OmegaConf.merge(merged, node), resolve=True)


def check_weights_fit(spec: ModelSpec, state: dict, path: str, key: str) -> None:
    """The networks of `spec` must have exactly the tensors `state` holds for them (names and shapes): checked on
    torch's meta device, where building allocates nothing, so a config with absurd sizes is refused (one line)
    before any memory goes to it."""
    for net, saved in split_networks(state).items():
        if not saved:
            continue
        with torch.device("meta"):
            built = build_network(
                net, spec
            )  # None: a frame head where the spec says model.decoder.output=pixels
            wanted = {} if built is None else built.state_dict()
        for name in sorted(set(wanted) | set(saved)):
            mine, theirs = wanted.get(name), saved.get(name)
            if mine is None or theirs is None or tuple(mine.shape) != tuple(theirs.shape):
                shape = lambda t: "missing" if t is None else str(list(t.shape))  # noqa: E731
                raise CheckpointError(
                    f"{key}={path!r}: its weights do not fit its model spec ({net}.{name}: the spec makes "
                    f"{shape(mine)}, the file holds {shape(theirs)})"
                )
