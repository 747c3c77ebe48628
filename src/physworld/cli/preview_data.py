"""Preview a dataset: `physworld-preview dataset=pendulum` (from the repository: `python scripts/preview_data.py
...`, the same main()) writes <paths.log_dir>/previews/<name>_preview.png (a grid: one sequence a row, every
other frame) and <name>_preview.gif (a few sequences side by side).

It generates a handful of fresh sequences with the dataset's config (nothing is read from or written to the
data cache), so it is quick and shows exactly what the generator makes. See configs/preview_data.yaml.
"""

import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from physworld.cli import set_project_root
from physworld.paths import CONFIG_DIR

SEQUENCES = 6  # rows of the PNG grid
GIF_SEQUENCES = 4  # sequences side by side in the GIF


def preview_grid(frames: np.ndarray, every: int = 2, scale: int = 2) -> Image.Image:
    """frames uint8 (N, T, H, W, 3) -> one row per sequence, frames 0, every, 2*every, ..."""
    framed = np.pad(frames[:, ::every], ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), constant_values=128)
    rows = [np.concatenate(list(seq), axis=1) for seq in framed]  # grey 1-px borders between frames
    grid = np.concatenate(rows, axis=0)
    return Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)


def save_gif(frames: np.ndarray, path: Path, scale: int = 3, fps: int = 10) -> None:
    """frames uint8 (N, T, H, W, 3) -> an animated GIF of the N sequences side by side."""
    strip = np.concatenate(list(frames), axis=2)  # (T, H, N*W, 3)
    images = [
        Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in strip
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="preview_data")
def preview_app(cfg: DictConfig) -> None:
    from physworld.data.plan import check_dataset, dataset_members
    from physworld.data.scenes import SCENES
    from physworld.errors import ConfigError, PhysworldError, print_error
    from physworld.require import non_negative_int, require

    try:
        members = dataset_members(cfg.dataset)
        for dataset in members:
            check_dataset(dataset)
            if dataset.name not in SCENES:  # recorded data (data/sources/): there is no generator to preview
                raise ConfigError(
                    f"dataset={dataset.name} is recorded data, which a preview cannot draw: accepted one of "
                    f"{sorted(SCENES)}; `python scripts/generate_data.py dataset={dataset.name}` makes its splits"
                )
        require(cfg, "data.seed", non_negative_int, "a non-negative integer")
        out = Path(cfg.paths.log_dir) / "previews"
        out.mkdir(parents=True, exist_ok=True)
        for dataset in members:
            params = OmegaConf.to_container(dataset.scene, resolve=True)
            scene = SCENES[dataset.name].generate(
                np.random.default_rng(cfg.data.seed), SEQUENCES, dataset.num_frames, params
            )
            png, gif = out / f"{dataset.name}_preview.png", out / f"{dataset.name}_preview.gif"
            preview_grid(scene.frames).save(png)
            save_gif(scene.frames[:GIF_SEQUENCES], gif)
            print(f"{dataset.name}: {png} {gif}")
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))


def main() -> None:
    from physworld.choices import exit_on_bad_choice

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (debug=tinny): one line, exit 2
    set_project_root()
    preview_app()


if __name__ == "__main__":
    main()
