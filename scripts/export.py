"""Export a trained world model: `python scripts/export.py ckpt_path=<run>/checkpoints/best.ckpt out=<folder>`.

Writes model.safetensors, config.json and MODEL_CARD.md into <folder> (see configs/export.yaml);
`physworld.load_world_model(<folder>)` loads it. With `logger=wandb` the folder is also logged as a W&B artifact.
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from physworld.paths import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PHYSWORLD_ROOT", str(ROOT))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    from physworld.errors import PhysworldError
    from physworld.export import check_export, export_world_model, log_artifact

    try:
        check_export(cfg)
        out = export_world_model(cfg.ckpt_path, cfg.out)
        wandb = (cfg.get("logger") or {}).get("wandb")
        if wandb is not None:
            print(f"W&B artifact: {log_artifact(out, wandb.project, Path(cfg.paths.log_dir) / 'export')}")
    except PhysworldError as err:
        print(f"physworld: error: {str(err).replace(chr(10), ' ')}", file=sys.stderr)  # always one line
        sys.exit(2)
    print(f"exported: {out}\nload it: physworld.load_world_model({str(out)!r})")


if __name__ == "__main__":
    main()
