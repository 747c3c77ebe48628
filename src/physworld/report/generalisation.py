"""The report's Generalisation section: does a world model learn physics, or the training distribution?

For each evaluated model with dynamics, four parts, each read from the metrics.json of the evaluation that holds
it (evaluation.json says which: its `split`, and `ood_test` where it scored ood_test beside test):
- in distribution against out of distribution (`evaluation.ood_gap=true`): position error and frame MSE at a few
  horizons on test and on ood_test, for the model and its baselines, and their gap (generalisation.py's keys);
- the error growth of a long rollout (`evaluation.split=long_test evaluation.horizon=50`): its error-vs-horizon
  figure, and the crossover horizons of test, ood_test and long_test (where the model stops beating copy-last);
- the counterfactual actions on goal_reach (counterfactual.py): the model's answer to a changed action against
  an action-blind model's;
- the state probes (probes.py): R² of each state variable read from the hidden state, against the VQ latent.
A part that no evaluation holds gets one line saying so, with the command that produces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from physworld.paths import CONFIG_DIR
from physworld.report.document import Block, Details, Figure, Heading, Table, Text, fmt

HORIZONS = (1, 5, 10)  # the horizons of the ID against OOD table and the counterfactual table, where scored
PREDICTORS = [  # key prefix in metrics.json, and the name the table gives it
    ("rollout", "model"),
    ("baseline_copy_last", "copy-last"),
    ("baseline_const_vel", "const. velocity"),
    ("tokenizer_floor", "tokenizer floor"),
]
GAP_HEADER = [
    "dataset",
    "horizon",
    "predictor",
    "pos. err. test (px)",
    "pos. err. ood_test (px)",
    "pos. err. gap (px)",
    "MSE test",
    "MSE ood_test",
    "MSE gap",
]
COUNTERFACTUAL = [
    ("diff_err", "diff. error (px)"),
    ("diff_err_blind", "action-blind diff. error (px)"),
    ("cosine", "cosine"),
    ("found", "agent found"),
]
EVALUATE = "python scripts/evaluate.py"


@dataclass
class Evaluated:
    """One evaluation folder, as the report reads it."""

    folder: Path
    record: dict  # evaluation.json
    metrics: dict  # metrics.json


def cell(value) -> str:
    """A metric or a crossover horizon ("never" as it is) as the tables show it."""
    return value if isinstance(value, str) else fmt(value)


def latest(evaluations: list[Evaluated], wanted) -> Evaluated | None:
    """The last (by folder name: timestamped) of the evaluations `wanted` accepts."""
    found = [e for e in evaluations if wanted(e)]
    return max(found, key=lambda e: e.folder.name) if found else None


def present(metrics: dict, prefix: str) -> list[int]:
    """The horizons of HORIZONS that have a `<prefix>/tNN` key."""
    return [t for t in HORIZONS if f"{prefix}/t{t:02d}" in metrics]


def command(e: Evaluated, *overrides: str) -> str:
    """The evaluate.py command for `e`'s checkpoint; `dataset=` from the current configs, so that runs trained
    before the ood_test and long_test splits existed get them too."""
    names = e.record.get("trained_on") or []
    dataset = names[0] if len(names) == 1 else "all"
    return f"`{EVALUATE} ckpt_path={e.record.get('checkpoint')} dataset={dataset} {' '.join(overrides)}`"


def has_ood_split(name: str) -> bool:
    """Whether configs/dataset/<name>.yaml has an `ood:` block (an ood_test split)."""
    file = CONFIG_DIR / "dataset" / f"{name}.yaml"
    return file.is_file() and bool(OmegaConf.load(file).get("ood"))


def gap_part(ood: Evaluated | None, any_eval: Evaluated) -> list[Block]:
    head: list[Block] = [Heading("In distribution (test) against out of distribution (ood_test)", 4)]
    if ood is None:
        names = [d["name"] for d in any_eval.record.get("datasets", [])]
        if not any(has_ood_split(name) for name in names):
            return head + [
                Text(f"Not evaluated: no ood_test split for {', '.join(names)} (no `ood:` block).")
            ]
        return head + [Text(f"Not evaluated: {command(any_eval, 'evaluation.ood_gap=true')}.")]
    m, names = ood.metrics, [d["name"] for d in ood.record.get("ood_test", [])]
    rows, glance = [], []  # every horizon; the first and the last of each dataset
    for name in names:
        steps = present(m, f"ood_test/rollout_mse/{name}")
        for t in steps:
            for prefix, label in PREDICTORS:
                keys = [f"{prefix}_{metric}/{name}/t{t:02d}" for metric in ("pos_err", "mse")]
                values = [m.get(f"{split}/{k}") for k in keys for split in ("test", "ood_test", "ood_gap")]
                if any(v is not None for v in values):
                    rows.append([name, f"t{t:02d}", label, *map(cell, values)])
                    if t in (steps[0], steps[-1]):
                        glance.append(rows[-1])
    others = [d["name"] for d in ood.record.get("datasets", []) if d["name"] not in names]
    blocks = head + [
        Text(
            f"From `{ood.folder.name}` (evaluation.ood_gap=true): each error on the test split, on ood_test (scene "
            "parameters outside the training ranges) and the gap, ood_test minus test (`ood_gap/...`)."
        ),
    ]
    if rows:
        blocks += [Table(GAP_HEADER, glance), Details("Every horizon", [Table(GAP_HEADER, rows)])]
    else:
        blocks.append(Text("No rollouts in this evaluation (no dynamics)."))
    if others:
        blocks.append(Text(f"No ood_test split (scored on test only): {', '.join(others)}."))
    return blocks


def growth_part(
    test: Evaluated | None, ood: Evaluated | None, long: Evaluated | None, any_eval: Evaluated
) -> list[Block]:
    blocks: list[Block] = [Heading("Error growth and crossover horizons", 4)]
    if long is None:
        long_command = command(any_eval, "evaluation.split=long_test evaluation.horizon=50")
        blocks.append(Text(f"Not evaluated (long rollouts, the error-growth figure): {long_command}."))
    elif (long.folder / "rollout_error_vs_horizon.png").is_file():
        steps = max((d.get("horizon") or 0 for d in long.record.get("datasets", [])), default=0)
        blocks.append(
            Figure(
                long.folder / "rollout_error_vs_horizon.png",
                f"Error against the horizon on long_test, {steps} steps (`{long.folder.name}`): model (solid) "
                "and baselines, the crossover with copy-last marked.",
            )
        )
    sources = [("test", test), ("ood_test", ood), ("long_test", long)]
    names = [d["name"] for d in (test or long or any_eval).record.get("datasets", [])]
    rows = [
        [name]
        + [
            cell(e.metrics.get(f"{split}/crossover_{metric}/{name}")) if e else "-"
            for metric in ("mse", "pos_err")
            for split, e in sources
        ]
        for name in names
    ]
    header = ["dataset"] + [f"crossover {m} {s}" for m in ("MSE", "pos. err.") for s, _ in sources]
    blocks += [
        Text(
            "Crossover: the first horizon at which the model's error is no longer below copy-last's (`never`: "
            "below at every scored horizon; `-`: not scored)."
        ),
        Table(header, rows),
    ]
    return blocks


def counterfactual_part(test: Evaluated) -> list[Block]:
    blocks: list[Block] = [Heading("Counterfactual actions (goal_reach)", 4)]
    split = test.record.get("split", "test")
    prefix = f"{split}/counterfactual_{{}}/goal_reach"
    # every horizon with a score: found is there where the agent is never found (the errors then are not)
    steps = sorted({t for k, _ in COUNTERFACTUAL for t in present(test.metrics, prefix.format(k))})
    if not steps:
        return blocks + [
            Text(
                "Not evaluated (scored on goal_reach, the dataset with actions, for a model trained on it): "
                f"`{EVALUATE} ckpt_path={test.record.get('checkpoint')} dataset=goal_reach`."
            )
        ]
    rows = [
        [f"t{t:02d}"] + [cell(test.metrics.get(f"{prefix.format(k)}/t{t:02d}")) for k, _ in COUNTERFACTUAL]
        for t in steps
    ]
    return blocks + [
        Text(
            "Model and real environment from the same start under the recorded and the changed actions: how far "
            "the model's change of the agent's position is from the real one, against a model that ignores the "
            "actions (action-blind); cosine between the two changes; share of sequences with the agent found."
        ),
        Table(["horizon"] + [label for _, label in COUNTERFACTUAL], rows),
    ]


def probe_part(test: Evaluated) -> list[Block]:
    blocks: list[Block] = [Heading("State probes", 4)]
    split, m = test.record.get("split", "test"), test.metrics
    rows = []
    for d in test.record.get("datasets", []):
        prefix = f"{split}/probe_r2/{d['name']}/"
        states = sorted((k[len(prefix) :] for k in m if k.startswith(prefix)), key=lambda s: (s == "mean", s))
        for state in states:
            hidden = m.get(f"{prefix}{state}")
            latent = m.get(f"{split}/probe_r2_latent/{d['name']}/{state}")
            gap = hidden - latent if hidden is not None and latent is not None else None
            rows.append([d["name"], state, cell(hidden), cell(latent), cell(gap)])
    if not rows:
        return blocks + [Text(f"Not evaluated: {command(test, 'evaluation.probes.enabled=true')}.")]
    header = ["dataset", "state", "R² hidden state", "R² latent", "hidden - latent"]
    return blocks + [
        Text(
            "R² of a linear probe from the dynamics' hidden state to the true state of the frame it predicts, "
            "against the same probe on the VQ latent of that frame (1: perfect, 0: the mean); the mean over "
            "the state variables here, each one folded below."
        ),
        Table(header, [row for row in rows if row[1] == "mean"]),
        Details("Every state variable", [Table(header, rows)]),
    ]


def model_parts(evaluations: list[Evaluated]) -> list[Block]:
    """The four parts for one model's evaluations."""
    ood = latest(evaluations, lambda e: e.record.get("split") == "test" and e.record.get("ood_test"))
    long = latest(evaluations, lambda e: e.record.get("split") == "long_test")
    test = ood or latest(evaluations, lambda e: e.record.get("split") == "test")
    any_eval = test or long or evaluations[-1]
    blocks = gap_part(ood, any_eval) + growth_part(test, ood, long, any_eval)
    return blocks + counterfactual_part(test or any_eval) + probe_part(test or any_eval)


def generalisation_section(evaluations: list[Evaluated], name_of) -> list[Block]:
    """The section: for each model (checkpoint) with an evaluation with dynamics, its four parts; `name_of(path)`
    names a folder as the report does."""
    blocks: list[Block] = [
        Heading("Generalisation", 2),
        Text(
            "Does the model learn the physics or the training distribution: its errors out of distribution, over "
            "long rollouts, under changed actions, and what its state holds. Numbers from each evaluation's "
            "`metrics.json`. A pipeline with `pipeline.generalisation: true` makes every part."
        ),
    ]
    models: dict[str, list[Evaluated]] = {}
    for e in sorted(evaluations, key=lambda e: e.folder.name):
        if e.record.get("has_dynamics"):
            models.setdefault(str(e.record.get("checkpoint")), []).append(e)
    if not models:
        return blocks + [
            Text(
                "Not evaluated: no evaluation of a model with dynamics (a prediction or comprehensive checkpoint): "
                f"`{EVALUATE} ckpt_path=<run>/checkpoints/best.ckpt evaluation.ood_gap=true`."
            )
        ]
    for checkpoint, found in models.items():
        run = Path(found[0].record.get("training_run") or checkpoint)
        blocks += [Heading(f"Model `{name_of(run)}`", 3), *model_parts(found)]
    return blocks
