"""Each phase's settings, typed and validated in one place (as models/spec.py does for the model).

`<Settings>.from_config(phase)` reads the plain dict of the composed `phase` config (configs/phase/<name>.yaml,
which stay the user-facing source of the defaults and of what each key means) and is the only place its values
are checked: a bad value raises ConfigError with one line naming the key, the value and what is accepted. A
phase reads its settings as attributes (`self.settings.lr`); its checkpoint still saves the plain dict as a
hyperparameter, so a checkpoint is read back the same way.

A field with a default is a key added after checkpoints were written: a checkpoint's dict without it had the
behaviour the default gives. A composed config always has every key (the YAML does). Checks that need more than
the phase's own keys (the dataset, the model, the files) stay in physworld/checks.py. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass

from physworld.errors import ConfigError
from physworld.require import non_negative_int, non_negative_number, positive_int, positive_number
from physworld.typed import read_fields, setting

HEAD_LATENTS = ("predicted", "encoded")  # head_latents: what the frame losses train the frame head on
POLICIES = ("actor", "planner")  # eval_policies: the policies an agent can be evaluated with


def _positive(default=MISSING):
    return setting(positive_int, "a positive integer", default)


def _count(default=MISSING):
    return setting(non_negative_int, "a non-negative integer", default)


def _weight(default=MISSING):
    return setting(non_negative_number, "a non-negative number", default)


def _rate():
    return setting(positive_number, "a positive number")


def _flag(default=MISSING):
    return setting(lambda v: isinstance(v, bool), "true or false", default)


def _fraction(default=MISSING):
    return setting(lambda v: non_negative_number(v) and v <= 1, "a number in [0, 1]", default)


def _optional_str(default=MISSING):
    return setting(lambda v: v is None or isinstance(v, str), "null or a string", default)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The keys every phase has (configs/phase/base/common.yaml)."""

    name: str = setting(lambda v: isinstance(v, str) and v != "", "a phase name")
    max_epochs: int = _positive()
    batch_size: int = _positive()
    seq_len: int = _positive()
    init_from: str | None = _optional_str()
    monitor: str = setting(lambda v: isinstance(v, str) and v.startswith("val/"), "a val/... metric name")

    @classmethod
    def from_config(cls, phase: Mapping, strict: bool = True) -> Settings:
        """The settings of a plain `phase` dict; ConfigError (one line) for the first missing or bad value, and with
        `strict` (a config about to run, not a phase's saved hyperparameters) for the checks between keys. Keys
        of no field are ignored: one a checkpoint kept since it was removed, or another phase's key that a
        pipeline's common overrides add to every step with `++` (Hydra itself refuses a misspelt key)."""
        settings = cls(**read_fields(cls, phase, "phase", GROUPS))
        if strict:
            settings.check()
        return settings

    def check(self) -> None:
        """What no single key can say: checks between keys (ConfigError, one line)."""


@dataclass(frozen=True, kw_only=True)
class WorldModelSettings(Settings):
    """The world-model phases' keys (configs/phase/base/world_model.yaml): one AdamW, and the reconstruction loss
    L_recon = L1 + mse_weight * MSE + gradient_weight * GDL + vq_weight * L_vq (phases/losses.py)."""

    lr: float = _rate()
    weight_decay: float = _weight()
    betas: tuple[float, float] = setting(
        lambda b: len(b) == 2 and all(non_negative_number(v) and v < 1 for v in b),
        "two numbers in [0, 1), e.g. [0.9, 0.999]",
    )
    vq_weight: float = _weight()
    mse_weight: float = _weight()
    foreground_weight: float = _weight(0.0)
    gradient_weight: float = _weight(0.0)


@dataclass(frozen=True, kw_only=True)
class PredictionSettings(WorldModelSettings):
    """phase=prediction and phase=comprehensive (configs/phase/prediction.yaml)."""

    freeze_vqvae: bool = _flag()
    context_frames: int = _positive()
    loss_weights: tuple[float, ...] = setting(
        lambda w: len(w) >= 1 and all(non_negative_number(v) for v in w) and sum(w) > 0,
        "a non-empty list of non-negative numbers, not all zero",
    )
    pred_weight: float = _weight()
    recon_weight: float = _weight()
    dynamics_l2: float = _weight()
    frame_weight: float = _weight(0.0)
    photo_weight: float = _weight(0.0)
    photo_scales: tuple[int, ...] = setting(
        lambda v: len(v) >= 1 and all(positive_int(s) and 64 % s == 0 for s in v),
        "a non-empty list of pooling factors that divide the frame side 64 (1: full resolution)",
        (1,),
    )
    photo_worst: float = _fraction(0.0)
    flow_smoothness: float = _weight(0.0)
    head_latents: str = setting(lambda v: v in HEAD_LATENTS, f"one of {list(HEAD_LATENTS)}", "predicted")
    dynamics_photo: float = _weight(0.0)
    latent_weight: float = _weight(0.0)

    @property
    def frame_losses(self) -> dict[str, float]:
        """The weights of the losses on decoded frames (each 0: off)."""
        return {key: getattr(self, key) for key in ("frame_weight", "photo_weight", "flow_smoothness")}

    def check(self) -> None:
        frames = self.context_frames + len(self.loss_weights)
        if self.seq_len != frames:
            raise ConfigError(
                f"phase.seq_len={self.seq_len} is not accepted: phase.context_frames + len(phase.loss_weights) = "
                f"{frames}"
            )
        if self.init_from is None and self.freeze_vqvae:
            raise ConfigError(
                "phase.init_from=None is not accepted while phase.freeze_vqvae=true: pass the checkpoint of a "
                "reconstruction run (phase.init_from=<run>/checkpoints/best.ckpt), or train the VQ-VAE too with "
                "phase.freeze_vqvae=false phase.recon_weight=1"
            )


@dataclass(frozen=True, kw_only=True)
class HeadSettings:
    """Every agent head: spatial-softmax keypoints of the latent grid, then an MLP (models/agent.py)."""

    squeeze: int = _positive()
    keypoints: int = _positive()
    hidden: int = _positive()


@dataclass(frozen=True, kw_only=True)
class PlanningSettings:
    """phase.planner: the CEM planner in the latent space (models/planner.py, whose PlannerSettings it fills)."""

    horizon: int = _positive()
    candidates: int = _positive()
    elites: int = _positive()
    iterations: int = _positive()
    warm_start: bool = _flag(False)
    terminal_value: bool = _flag()


@dataclass(frozen=True, kw_only=True)
class RLSettings(Settings):
    """phase=rl (configs/phase/rl.yaml): the actor-critic in imagination, scored in the real environment."""

    imagination_starts: int | None = setting(
        lambda v: v is None or non_negative_int(v), "null or a non-negative integer"
    )
    imagination_horizon: int = _positive()
    gamma: float = _fraction()
    td_lambda: float = _fraction()
    entropy_weight: float = _weight()
    action_noise: float = _weight()
    target_update_every: int = _positive()
    reward_pretrain_steps: int = _count()
    reward_on_predicted: bool = _flag(True)
    reward_lr: float = _rate()
    actor_lr: float = _rate()
    critic_lr: float = _rate()
    grad_clip: float = _rate()
    gradient_clip_val: float | None = setting(
        lambda v: v is None or non_negative_number(v), "null or a non-negative number", None
    )
    head: HeadSettings = setting(lambda v: isinstance(v, Mapping), "a mapping of the head's sizes")
    eval_every_n_steps: int = _count()
    eval_episodes: int = _positive()
    eval_seed: int = _count()
    test_episodes: int = _positive()
    test_seed: int = _count()
    env: dict | None = setting(lambda v: v is None or isinstance(v, Mapping), "null or a mapping", None)
    env_id: str | None = _optional_str(None)
    eval_max_steps: int | None = setting(
        lambda v: v is None or positive_int(v),
        "null (the environment's own limit) or a positive integer",
        None,
    )
    eval_policies: tuple[str, ...] = setting(
        lambda v: len(v) > 0 and all(p in POLICIES for p in v) and len(set(v)) == len(v),
        f"a non-empty list of distinct names from {list(POLICIES)}",
        ("actor",),
    )
    planner: PlanningSettings | None = setting(
        lambda v: isinstance(v, Mapping), "a mapping of the planner's settings", None
    )

    def check(self) -> None:
        if self.planner is not None and self.planner.elites > self.planner.candidates:
            raise ConfigError(
                f"phase.planner.elites={self.planner.elites} is not accepted: at most "
                f"phase.planner.candidates={self.planner.candidates}"
            )
        if self.init_from is None:
            raise ConfigError(
                "phase.init_from=None is not accepted: phase=rl needs a world model with dynamics, the checkpoint "
                "of a prediction run on dataset=goal_reach (phase.init_from=<run>/checkpoints/best.ckpt)"
            )


# A field whose type is a settings group of its own: read as a nested mapping.
GROUPS = {"head": HeadSettings, "planner": PlanningSettings}
