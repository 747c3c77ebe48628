"""scripts/report.py on tiny runs: report.md and a self-contained report.html, tables holding the numbers of
each evaluation's metrics.json, every figure inlined, a pipeline folder with all its steps, training curves
from the CSV log or a W&B offline log, and one-line errors."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from physworld.errors import PhysworldError
from physworld.evaluation.evaluate import evaluate_run
from physworld.report.build import write_report
from physworld.report.curves import read_csv_log, read_wandb_offline
from tests.conftest import ROOT, check_tables_hold_metrics


def evaluation_sections(markdown: str) -> dict[str, str]:
    """Evaluation folder name (as the heading writes it) -> the Markdown of its section."""
    parts = re.split(r"^## ", markdown, flags=re.M)
    return {m[1]: part for part in parts if (m := re.match(r"Evaluation `([^`]+)`", part))}


def check_html_images(page: Path, expected: int) -> None:
    """Every figure of the page is an image: inlined, or linked by a path relative to the page that resolves
    inside the page's folder (report_files/ or a run's own figure)."""
    sources = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert len(sources) == expected
    for src in sources:
        match = re.match(r"data:image/(png|gif);base64,(.+)", src)
        if match:
            with Image.open(io.BytesIO(base64.b64decode(match[2]))) as image:
                assert image.format == match[1].upper()
        else:
            path = (page.parent / src).resolve()
            assert not Path(src).is_absolute() and path.is_relative_to(page.parent.resolve()), src[:80]
            with Image.open(path) as image:
                assert image.format in ("PNG", "GIF")


def test_html_links_large_images_where_they_are_copies_outside_ones_and_inlines_small_ones(tmp_path):
    from physworld.report.document import Figure, to_html

    site, outside = tmp_path / "pipeline", tmp_path / "elsewhere"
    small, large = site / "a" / "small.png", site / "b" / "rollout.gif"
    other = outside / "c" / "rollout.gif"  # the same name outside the page's folder: copied, not overwriting
    other2 = outside / "d" / "rollout.gif"
    for path, size in ((small, 8), (large, 256), (other, 256), (other2, 128)):
        path.parent.mkdir(parents=True)
        noise = np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
    files = site / "report_files"
    limit = small.stat().st_size + 1
    assert min(p.stat().st_size for p in (large, other, other2)) > limit
    page = to_html(
        [Figure(p, p.name) for p in (small, large, other, other2)], "t", files=files, inline_limit=limit
    )
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources[0].startswith("data:image/png;base64,")
    assert sources[1] == "b/rollout.gif"  # inside the page's folder: linked where it is, not copied
    assert [s.split("/")[0] for s in sources[2:]] == ["report_files", "report_files"]
    assert sources[2] != sources[3]
    assert (files / sources[2].split("/")[1]).read_bytes() == other.read_bytes()
    assert (files / sources[3].split("/")[1]).read_bytes() == other2.read_bytes()
    assert sorted(p.name for p in files.iterdir()) == sorted(s.split("/")[1] for s in sources[2:])
    assert "base64" not in "".join(sources[1:])
    inlined = to_html([Figure(large, "x")], "t")  # no folder given: everything inlined
    assert "data:image/gif;base64," in inlined


def test_details_fold_in_html_and_point_to_their_file_or_fold_in_markdown(tmp_path):
    from physworld.report.document import Details, Table, Text, to_html, to_markdown

    table = Table(["metric", "value"], [["a", "1"]])
    blocks = [
        Details("Final metrics (1 keys)", [table], "`run/metrics.json`"),
        Details("pendulum: every horizon", [Text("detail"), table]),
    ]
    page = to_html(blocks, "t")
    assert page.count('<details class="fold">') == 2 and page.count("<td>a</td>") == 2
    assert page.index("<summary>pendulum: every horizon</summary>") < page.index("<p>detail</p>")
    md = to_markdown(blocks, tmp_path)
    assert "*Final metrics (1 keys): in report.html and `run/metrics.json`.*" in md
    assert md.count("| a | 1 |") == 1  # only the folded one is written out
    assert "<details><summary>pendulum: every horizon</summary>\n\ndetail\n\n| metric | value |" in md


def test_report_of_a_run_and_its_evaluations(pred_run, pred_eval):  # noqa: F811
    out, metrics = pred_eval
    md, page = write_report(pred_run)
    text = md.read_text()
    assert "## Training run" in text and "### Training curves" in text and "csv/metrics.csv" in text
    assert (pred_run / "report_files" / "run_training_curves.png").is_file()
    sections = evaluation_sections(text)
    assert f"evaluate/{out.name}" in sections
    for name, section in sections.items():  # other tests may have added evaluations: each its own numbers
        folder = pred_run / name
        split = json.loads((folder / "evaluation.json").read_text())["split"]
        assert (
            check_tables_hold_metrics(section, json.loads((folder / "metrics.json").read_text()), split) > 0
        )
    section = sections[f"evaluate/{out.name}"]
    assert check_tables_hold_metrics(section, metrics) >= 7 + 2 * 4 + 6 * 12  # recon, glance, per horizon
    for figure in json.loads((out / "evaluation.json").read_text())["figures"]:
        assert f"evaluate/{out.name}/{figure}" in section  # relative paths from report.md
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (pred_run / link).is_file(), link
    check_html_images(page, text.count("!["))


def test_reconstruction_evaluation_says_there_are_no_rollouts(recon_run, tmp_path):  # noqa: F811
    run = tmp_path / "recon"
    shutil.copytree(recon_run, run, ignore=shutil.ignore_patterns("eval*"))
    evaluate_run(run, checkpoint="last.ckpt")
    text = write_report(run)[0].read_text()
    (section,) = evaluation_sections(text).values()
    assert "no dynamics yet, so there are no rollouts" in section and "#### " not in section
    assert (
        check_tables_hold_metrics(section, json.loads(next(run.glob("evaluate/*/metrics.json")).read_text()))
        == 9  # the reconstruction row: L1, MSE, PSNR, SSIM, sharpness, position error, three codebook columns
    )


def test_report_of_a_pipeline_folder(recon_run, pred_run, tmp_path):  # noqa: F811
    # The layout of scripts/pipeline.py: one folder per step with a resolved config.yaml, and pipeline.json.
    pipe = tmp_path / "pipe"
    for step, run in (("1_reconstruction", recon_run), ("2_prediction", pred_run)):
        shutil.copytree(run, pipe / step, ignore=shutil.ignore_patterns("eval*", ".hydra", "report*"))
        cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        (pipe / step / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    rl = pipe / "5_rl"
    (rl / "images").mkdir(parents=True)
    (rl / "checkpoints").mkdir()
    for name in (
        "rl_training.png",
        "rl_trajectory.png",
    ):  # what the RL phase writes (callbacks/rl_figures.py)
        Image.new("RGB", (64, 48), (200, 30, 30)).save(rl / "images" / name)
    (pipe / "1_reconstruction" / "metrics.json").write_text(json.dumps({"test/recon_psnr": 27.5}))
    pred = {"test/rollout_pos_err/t05": 4.25, "test/baseline_copy_last_pos_err/t05": 7.5}
    pred |= {"test/rollout_mse/t10": 0.0125, "test/baseline_copy_last_mse/t10": 0.025}
    (pipe / "2_prediction" / "metrics.json").write_text(json.dumps(pred))
    (pipe / "2_prediction" / "images").mkdir(exist_ok=True)
    Image.new("RGB", (64, 48), (30, 200, 30)).save(pipe / "2_prediction" / "images" / "rollout_test.png")
    agent = {"test/gap_closed": 0.25, "test/return_policy": -30.0, "test/return_random": -40.0}
    agent["test/return_oracle"] = 0.0
    agent |= {
        "test/gap_closed_planner": 0.5,
        "test/return_planner": -20.0,
        "test/planner_ms_per_action": 12.5,
    }
    (rl / "metrics.json").write_text(json.dumps(agent))
    steps = {"1_reconstruction": {"phase": "reconstruction", "dataset": "pendulum", "seconds": 3.5}}
    (pipe / "pipeline.json").write_text(json.dumps(steps))
    out, metrics = evaluate_run(pipe / "2_prediction", checkpoint="last.ckpt")
    assert "config.yaml" in json.loads((out / "evaluation.json").read_text())["data_source"]

    md, page = write_report(pipe)
    text = md.read_text()
    assert "## Pipeline steps" in text and "| 1_reconstruction | reconstruction | pendulum | 3.5 |" in text
    # The first screen: each run's headline test results beside their baselines, from its metrics.json
    summary = text[text.index("## Summary") : text.index("## Pipeline steps")]
    rows = {
        row.split(" | ")[0].strip("| `"): row.split(" | ")
        for row in summary.splitlines()
        if row.startswith("| `")
    }
    assert rows["1_reconstruction"][2] == "27.5" and rows["1_reconstruction"][3] == "-"
    assert rows["2_prediction"][3] == "-" and rows["2_prediction"][4] == "4.25 / 7.5"
    assert rows["2_prediction"][6] == "0.0125 / 0.025"
    assert rows["5_rl"][-2] == "0.25 (-30 / -40 / 0)"  # the actor's
    assert rows["5_rl"][-1].rstrip(" |") == "0.5 (-20, 12.5 ms)"  # the planner's, named in the header
    assert rows["2_prediction"][-1].rstrip(" |") == "-"
    assert "![Test rollouts of `2_prediction`" in summary and "5_rl/images/rl_trajectory.png" in summary
    for step in ("1_reconstruction", "2_prediction", "5_rl"):
        assert f"## Training run `{step}`" in text
    assert "images/rl_training.png" in text and "images/rl_trajectory.png" in text
    (section,) = evaluation_sections(text).values()
    assert check_tables_hold_metrics(section, metrics) > 0
    assert (
        text.index("## Training run `2_prediction`")
        < text.index("## Evaluation")
        < text.index("## Training run `5_rl`")
    )
    check_html_images(page, text.count("!["))


def wandb_file(path: Path, rows: list[dict]) -> int:
    """A .wandb file as W&B writes it: a ':W&B' header, then protobuf Records in LevelDB log records (32 KiB
    blocks; a record that does not fit is split FIRST/LAST across blocks). Returns how many were split."""
    from wandb.proto import wandb_internal_pb2

    payloads = []
    for row in rows:
        record = wandb_internal_pb2.Record()
        for key, value in row.items():
            item = record.history.item.add()
            item.key, item.value_json = key, json.dumps(value)
        payloads.append(record.SerializeToString())
    data = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    filler = wandb_internal_pb2.Record()
    filler.history.item.add(key="note", value_json=json.dumps("x" * (32768 - 7 - 7 - 7 - 40)))
    split = 0
    for payload in [filler.SerializeToString(), *payloads]:
        if 32768 - len(data) % 32768 < 7:  # no room for a header: zero padding to the next block
            data += bytes(32768 - len(data) % 32768)
        room = 32768 - len(data) % 32768 - 7
        if len(payload) <= room:
            data += struct.pack("<IHB", 0, len(payload), 1) + payload
        else:
            data += struct.pack("<IHB", 0, room, 2) + payload[:room]
            data += struct.pack("<IHB", 0, len(payload) - room, 4) + payload[room:]
            split += 1
    path.write_bytes(bytes(data))
    return split


def test_training_curves_from_a_wandb_offline_log(tmp_path):
    rows = [{"trainer/global_step": s, "train/loss": 1.0 / (s + 1), "epoch": 0} for s in range(40)]
    rows.append({"trainer/global_step": 40, "val/loss": 0.05})
    file = tmp_path / "run" / "wandb" / "offline-run-1" / "run-1.wandb"
    file.parent.mkdir(parents=True)
    assert wandb_file(file, rows) == 1
    series = read_wandb_offline(file)
    assert series["train/loss"] == [(s, 1.0 / (s + 1)) for s in range(40)] and series["val/loss"] == [
        (40, 0.05)
    ]
    (tmp_path / "run" / "checkpoints").mkdir()
    text = write_report(tmp_path / "run")[0].read_text()
    assert "from `wandb/offline-run-1/run-1.wandb`" in text


def test_csv_log_reader(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/loss\n0,4,0.5,\n0,9,0.25,\n0,9,,0.3\n")
    assert read_csv_log(path) == {"train/loss": [(4, 0.5), (9, 0.25)], "val/loss": [(9, 0.3)]}


def test_report_errors_are_one_line(tmp_path):
    with pytest.raises(PhysworldError, match="no such folder"):
        write_report(tmp_path / "nope")
    with pytest.raises(PhysworldError, match="no training run .* or evaluation"):
        write_report(tmp_path)
    result = subprocess.run(
        [sys.executable, "scripts/report.py", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"physworld: error: {tmp_path / 'nope'}: no such folder (pass a run, pipeline or evaluation folder)"
    ]


def test_report_refuses_a_folder_whose_runs_stopped_at_start(tmp_path):
    # What train.py leaves when a bad value stops it: the run folder with its config and log, no results.
    failed = tmp_path / "runs" / "2026-01-02_10-00-00-000000_reconstruction_moving_mnist"
    (failed / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create({"phase": {"name": "reconstruction"}, "dataset": {"name": "x"}}),
        failed / ".hydra" / "config.yaml",
    )
    (failed / "train.log").write_text("")
    result = subprocess.run(
        [sys.executable, "scripts/report.py", str(tmp_path / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"physworld: error: {tmp_path / 'runs'}: no training run with results")
    assert not (tmp_path / "runs" / "report.md").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_picks_the_newest_run_with_a_best_checkpoint(tmp_path):
    # `make evaluate` / `make report` default RUN: a newer run that stopped at start (no best.ckpt) is skipped.
    runs = tmp_path / "outputs" / "train" / "runs"
    names = [f"2026-01-0{day}_10-00-00-000000_reconstruction_moving_mnist" for day in (1, 2, 3)]
    for name in names[:2]:
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "checkpoints" / "best.ckpt").write_bytes(b"")
    (runs / names[2] / ".hydra").mkdir(parents=True)
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path)]
        + ["--eval", "print-run: ; @echo $(RUN)", "print-run"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"outputs/train/runs/{names[1]}"
