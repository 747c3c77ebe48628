"""One table of a sweep: `python scripts/summarize.py outputs/train/multirun/<time> [--metric KEY] [--max]`.

Gathers the `metrics.json` of every job under the folder (a multirun's job folders, or several sweeps below
one folder), with each job's command-line overrides from `<job>/.hydra/overrides.yaml`, and ranks the jobs
by the metric the sweep optimised (the jobs' `optimized_metric`, else `--metric`), lowest first (`--max`:
highest first). Prints a markdown table of the overrides that differ between jobs and the chosen metrics, and
writes it to `<folder>/summary.md`, with every metric of every job in `<folder>/summary.csv`. Jobs without a
`metrics.json` (failed, or still running) are listed last, without metrics.

scripts/summarize.py is the repository's wrapper of this module's main().
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import yaml


def find_jobs(folder: Path) -> list[Path]:
    """Every job folder below `folder`: those with a metrics.json or a .hydra/overrides.yaml."""
    marks = [*folder.rglob("metrics.json"), *folder.rglob(".hydra/overrides.yaml")]
    jobs = {p.parent.parent if p.parent.name == ".hydra" else p.parent for p in marks}
    # W&B and evaluation subfolders are not jobs; a job is never inside another job.
    jobs = {j for j in jobs if "wandb" not in j.relative_to(folder).parts}
    return sorted(
        (j for j in jobs if not any(o in j.parents for o in jobs)), key=lambda p: _natural(p, folder)
    )


def _natural(path: Path, root: Path) -> list:
    return [int(p) if p.isdigit() else p for p in path.relative_to(root).parts]


def read_overrides(job: Path) -> dict[str, str]:
    """key -> value of the job's command-line overrides (sweeper choices included)."""
    file = job / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return {}
    out = {}
    for item in yaml.safe_load(file.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def optimized_metric(job: Path) -> str | None:
    """The job's `optimized_metric` (train.yaml's `${phase.monitor}` resolved), if its config says."""
    file = job / ".hydra" / "config.yaml"
    if not file.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(OmegaConf.load(file), "optimized_metric")
    except Exception:  # an interpolation that only resolves inside Hydra
        return None
    return value if isinstance(value, str) else None


def load_rows(folder: Path) -> list[dict]:
    rows = []
    for job in find_jobs(folder):
        file = job / "metrics.json"
        metrics = json.loads(file.read_text()) if file.is_file() else None
        rows.append(
            {"job": str(job.relative_to(folder)), "overrides": read_overrides(job), "metrics": metrics}
        )
    return rows


def pick_metric(folder: Path, rows: list[dict]) -> str:
    for job in find_jobs(folder):
        key = optimized_metric(job)
        if key:
            return key
    keys = sorted({k for r in rows if r["metrics"] for k in r["metrics"]})
    val = [k for k in keys if k.startswith("val/")]
    if not val:
        raise SystemExit(f"summarize: error: no job under {folder} has metrics; give --metric")
    return "val/loss" if "val/loss" in val else val[0]


def rank(rows: list[dict], metric: str, maximise: bool) -> list[dict]:
    def key(row):
        value = (row["metrics"] or {}).get(metric)
        if value is None or not math.isfinite(value):
            return (1, 0.0)
        return (0, -value if maximise else value)

    return sorted(rows, key=key)


def varying_overrides(rows: list[dict]) -> list[str]:
    """Override keys whose value is not the same in every job (the sweep's parameters)."""
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    return [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1]


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_override(value: str) -> str:
    """Overrides as given, but long floats (Optuna's samples) shortened to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if any(c in value for c in ".eE") and len(value) > 8 else value


def markdown(rows: list[dict], params: list[str], metrics: list[str]) -> str:
    header = ["rank", "job", *params, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows, start=1):
        m = row["metrics"]
        values = [fmt(m.get(k)) for k in metrics] if m else ["no metrics.json"] + [""] * (len(metrics) - 1)
        cells = [
            str(i) if m else "-",
            row["job"],
            *(fmt_override(row["overrides"].get(p, "")) for p in params),
            *values,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict], params: list[str], metric: str) -> None:
    keys = sorted({k for r in rows if r["metrics"] for k in r["metrics"]})
    keys = [metric, *(k for k in keys if k != metric)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "job", *params, *keys])
        for i, row in enumerate(rows, start=1):
            m = row["metrics"] or {}
            writer.writerow(
                [i if row["metrics"] else "", row["job"], *(row["overrides"].get(p, "") for p in params)]
                + [m.get(k, "") for k in keys]
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a multirun folder (outputs/train/multirun/<time>)")
    parser.add_argument("--metric", help="rank by this key (default: the jobs' optimized_metric)")
    parser.add_argument("--max", action="store_true", help="higher is better (default: lower is better)")
    parser.add_argument(
        "--columns", default="", help="more metrics to show, comma-separated (the CSV has them all)"
    )
    args = parser.parse_args(argv)
    folder = args.folder
    if not folder.is_dir():
        print(f"summarize: error: {str(folder)!r} is not a folder", file=sys.stderr)
        return 2
    rows = load_rows(folder)
    if not rows:
        print(f"summarize: error: no job folders (metrics.json, .hydra/) under {folder}", file=sys.stderr)
        return 2
    metric = args.metric or pick_metric(folder, rows)
    rows = rank(rows, metric, args.max)
    params = varying_overrides(rows)
    test_twin = metric.replace("val/", "test/", 1)
    shown = [metric, *(k for k in args.columns.split(",") if k)]
    if test_twin != metric and any(test_twin in (r["metrics"] or {}) for r in rows):
        shown.append(test_twin)
    shown = list(dict.fromkeys(shown))
    table = markdown(rows, params, shown)
    (folder / "summary.md").write_text(table)
    write_csv(folder / "summary.csv", rows, params, metric)
    done = sum(r["metrics"] is not None for r in rows)
    order = "highest" if args.max else "lowest"
    print(f"{folder}: {len(rows)} jobs, {done} with metrics, ranked by {metric} ({order} first)\n")
    print(table)
    print(f"written: {folder / 'summary.md'}, {folder / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
