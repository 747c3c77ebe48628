"""Evaluate a trained world model on held-out data:

    physworld-evaluate ckpt_path=<run>/checkpoints/best.ckpt [dataset=<name>|all]

(from the repository: `python scripts/evaluate.py ...`, the same main()).

Writes metrics.json, evaluation.json, config.yaml and the figures into `<run>/evaluate/<time>_<dataset>/`
(see configs/evaluate.yaml for every key, and which data is used when `dataset=` is not given), then prints a
summary per dataset. `python scripts/report.py <run>` turns the run and its evaluations into a report.
"""

import sys

import hydra
from omegaconf import DictConfig

from physworld.cli import set_project_root
from physworld.paths import CONFIG_DIR


def summary(metrics: dict[str, float], stage: str) -> list[str]:
    """One line per dataset: reconstruction PSNR, and the last rollout horizon against copy-last."""
    pick = lambda key, name, t: metrics.get(f"{stage}/{key}/{name}/{t}")  # noqa: E731
    names = sorted({k.split("/")[2] for k in metrics if k.startswith(f"{stage}/recon_psnr/")})
    lines = []
    for name in names:
        line = f"{name}: recon PSNR {metrics[f'{stage}/recon_psnr/{name}']:.2f} dB"
        steps = sorted(k for k in metrics if k.startswith(f"{stage}/rollout_mse/{name}/t"))
        if steps:
            t = steps[-1].rsplit("/", 1)[1]
            model, base = metrics[steps[-1]], pick("baseline_copy_last_mse", name, t)
            line += f"; at {t}: frame MSE {model:.4g} (copy-last {base:.4g})"
            position = pick("rollout_pos_err", name, t)
            if position is not None:
                base = pick("baseline_copy_last_pos_err", name, t)
                line += f", position error {position:.2f} px (copy-last {base:.2f})"
            sharpness = pick("rollout_sharpness", name, t)
            if sharpness is not None:
                line += f", sharpness {sharpness:.2f}"
            lpips = pick("rollout_lpips", name, t)
            if lpips is not None:  # evaluation.lpips=true
                line += f", LPIPS {lpips:.4g} (copy-last {pick('baseline_copy_last_lpips', name, t):.4g})"
        lines.append(line)
    return lines


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def evaluate_app(cfg: DictConfig) -> None:
    from physworld.errors import PhysworldError, print_error
    from physworld.evaluation.checks import check_evaluation

    try:
        # The checks of the values (and that the checkpoint file exists) first, before torch and Lightning are
        # imported (seconds): a bad value is reported at once. Reading the checkpoint needs torch.
        check_evaluation(cfg)
        from physworld.evaluation.evaluate import evaluate

        out, metrics = evaluate(cfg)
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))
    for line in summary(metrics, cfg.evaluation.split):
        print(line)
    report_dir = out.parent.parent if out.parent.name == "evaluate" else out  # the training run, if nested
    print(f"evaluation: {out}\nreport: python scripts/report.py {report_dir}")


def main() -> None:
    from physworld.choices import exit_on_bad_choice

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (debug=tinny): one line, exit 2
    set_project_root()
    evaluate_app()


if __name__ == "__main__":
    main()
