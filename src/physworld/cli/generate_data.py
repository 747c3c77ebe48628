"""Generate the train/val/test splits of a dataset (or all of them): `physworld-generate dataset=pendulum` (from
the repository: `python scripts/generate_data.py ...`, the same main()).

Reuses a stored split when its manifest matches the config, so running it twice is cheap.
"""

import sys
import time

import hydra
from omegaconf import DictConfig

from physworld.cli import set_project_root
from physworld.paths import CONFIG_DIR


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
        n /= 1024


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate_data")
def generate_data_app(cfg: DictConfig) -> None:
    from physworld.data.cache import ensure_split, load_split, read_manifest
    from physworld.data.plan import check_dataset, dataset_members, datasets_for
    from physworld.errors import PhysworldError, print_error

    try:
        for dataset in dataset_members(cfg.dataset):
            check_dataset(dataset)
        for plain in datasets_for(cfg):
            for split in cfg.splits:
                started = time.perf_counter()
                path = ensure_split(cfg.paths.data_dir, plain, split, cfg.data.seed, force=cfg.force)
                arrays = load_split(path, verify=cfg.data.get("verify", "auto"))
                took = time.perf_counter() - started
                size = sum((path / f"{k}.npy").stat().st_size for k in arrays)
                n = arrays["frames"].shape[0]
                made = read_manifest(path).get("generated_in_s")
                print(
                    f"{plain['name']}/{split}: {n} sequences x {arrays['frames'].shape[1]} frames, "
                    f"{human_bytes(size)}, ready in {took:.1f} s (generation took {made} s, "
                    f"{n / max(made, 1e-9):.0f} seq/s) -> {path}"
                )
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))


def main() -> None:
    from physworld.choices import exit_on_bad_choice

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (debug=tinny): one line, exit 2
    set_project_root()
    generate_data_app()


if __name__ == "__main__":
    main()
