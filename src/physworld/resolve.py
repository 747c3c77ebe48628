"""What a checked config's machine-dependent values become at run time: `trainer.precision=auto` (bf16-mixed
where bf16 is native, else 32-true) and `ckpt_path=last` (this run's last.ckpt). torch is imported only where
it is needed, so the start-up checks can use these before torch is loaded."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from physworld.errors import ConfigError

# The values of trainer.precision Lightning accepts, and auto (resolve_precision picks one of them).
PRECISIONS = (
    "auto",
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "32",
    "16",
    "bf16",
    "64",
)


def native_bf16(accelerator: str = "auto") -> bool:
    """Whether the device Lightning picks for `accelerator` computes bf16 natively: a CUDA GPU with bf16, or a
    CPU with AVX512-BF16 or AMX. Elsewhere (older CPUs, MPS) bf16 autocast is emulated and slower than fp32."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own CPUID probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(cfg: DictConfig) -> str:
    """trainer.precision=auto becomes bf16-mixed where bf16 is native (faster than fp32 there: docs/results.md, Speed),
    else 32-true. Returns the precision the trainer gets."""
    precision = cfg.trainer.get("precision")
    if precision == "auto":
        precision = "bf16-mixed" if native_bf16(str(cfg.trainer.get("accelerator", "auto"))) else "32-true"
        cfg.trainer.precision = precision
    return str(precision)


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path`, with `last` meaning `<this run's dir>/checkpoints/last.ckpt` (resuming needs a stable run
    dir: rerun with the killed run's `hydra.run.dir=<run dir>`). ConfigError if the file does not exist."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        return None
    if ckpt == "last":
        path = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path=last: no {path}; resume in the killed run's folder with hydra.run.dir=<its run dir>"
            )
        return str(path)
    if not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path={ckpt!r}: no such checkpoint file")
    return str(ckpt)
