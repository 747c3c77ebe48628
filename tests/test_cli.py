"""train.py and scripts/generate_data.py as a user runs them: outputs on success, one-line errors on bad input."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from physworld.checks import check_config
from physworld.errors import ConfigError
from physworld.paths import CONFIG_DIR
from tests.conftest import ROOT, run


def test_train_writes_checkpoint_and_metrics(tmp_path):
    result = run(
        [
            "train.py",
            "phase=reconstruction",
            "dataset=moving_mnist",
            "debug=tiny",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("_reconstruction_moving_mnist")
    assert (runs[0] / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["test/recon_psnr"] > 0
    assert "parameters: encoder" in result.stdout + result.stderr


def test_multirun_jobs_get_their_own_folders(tmp_path):
    result = run(
        [
            "train.py",
            "-m",
            "debug=tiny",
            "trainer.fast_dev_run=true",
            "logger=none",
            f"paths.data_dir={tmp_path / 'data'}",
            "model.vq.num_codes=16,32",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sweeps = list((tmp_path / "outputs" / "train" / "multirun").iterdir())
    assert len(sweeps) == 1
    assert sorted(p.name for p in sweeps[0].iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweeps[0] / job / "metrics.json").is_file()


def test_lightning_log_lines_print_once(tmp_path):
    # Lightning's own console handler and Hydra's (on the root logger) both printed every Lightning INFO line.
    args = ["train.py", "debug=tiny", "trainer.fast_dev_run=true", "logger=none", "test=false"]
    result = run([*args, f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    for line in ("GPU available: ", "precision: ", "parameters: encoder "):
        assert output.count(line) == 1, (line, output[-3000:])
    (log,) = (tmp_path / "outputs" / "train" / "runs").glob("*/train.log")  # Hydra's file handler keeps them
    assert log.read_text().count("GPU available: ") == 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "dataset=nope",
            "dataset='nope' is not accepted: one of ['all', 'balls_pendulum', 'bouncing_balls', ",
        ),
        ("phase=nope", "phase='nope' is not accepted: one of ['comprehensive', 'prediction', "),
        ("phase.batch_size=-4", "phase.batch_size=-4 is not accepted: a positive integer"),
        (
            "phase=prediction phase.head_latents=true",
            "phase.head_latents=True is not accepted: one of ['predicted', 'encoded']",
        ),
        (
            "phase=prediction phase.freeze_vqvae=false phase.head_latents=encoded",
            "phase.head_latents='encoded' is not accepted: 'predicted' with model.decoder.output=pixels",
        ),
        ("ckpt_path=/no/such.ckpt", "ckpt_path='/no/such.ckpt': no such checkpoint file"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, override, expected):
    result = run(["train.py", "debug=tiny", *override.split()], tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # stopped before generating anything


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.max_sequences=-1", "data.max_sequences=-1 is not accepted"),
        ("dataset.name=nope", "dataset: name='nope' is not accepted: one of ["),
    ],
)
def test_bad_value_is_reported_before_torch_is_imported(tmp_path, override, expected):
    # The checks run before torch and Lightning are imported (which alone take seconds): a bad value comes
    # back about as fast as Hydra composes. The bound is loose for a loaded machine.
    started = time.perf_counter()
    result = run(["train.py", override], tmp_path)
    took = time.perf_counter() - started
    assert result.returncode == 2 and expected in result.stderr, result.stderr[-2000:]
    assert took < 6, f"{took:.1f} s"


def test_config_checks_import_neither_torch_nor_lightning():
    code = (
        "import sys; import physworld.checks, physworld.resolve, physworld.phases; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


# Each command-line entry point with a bad value: ({file} is an existing, empty file; {tmp} the test's folder)
BAD_VALUES = [
    ("physworld.cli.train", "data.max_sequences=-1", "data.max_sequences=-1 is not accepted"),
    (
        "physworld.cli.evaluate",
        "ckpt_path=/no/such.ckpt",
        "ckpt_path='/no/such.ckpt': no such checkpoint file",
    ),
    (
        "physworld.cli.evaluate",
        "ckpt_path={file} evaluation.batch_size=-2",
        "evaluation.batch_size=-2 is not accepted: a positive integer",
    ),
    (
        "physworld.cli.evaluate",
        "ckpt_path={file} dataset=pendulum dataset.sizes.test=-1",
        "dataset: sizes.test=-1 is not accepted: a positive integer",
    ),
    ("physworld.cli.evaluate", "ckpt_path={file} debug=tinny", "debug='tinny' is not accepted: one of ["),
    ("physworld.cli.generate_data", "dataset.sizes.train=-1", "sizes.train=-1 is not accepted"),
    ("physworld.cli.report", "{tmp}/nope", "nope: no such folder"),
    (
        "physworld.cli.pipeline",
        "experiment=pendulum_prediction phase.lr=-1",
        "phase.lr=-1 is not accepted: a positive number",
    ),
    ("physworld.cli.preview_data", "dataset=wave dataset.num_frames=0", "num_frames=0 is not accepted"),
    (
        "physworld.cli.export",
        "ckpt_path=/no/such.ckpt out={tmp}/out",
        "ckpt_path='/no/such.ckpt': no such checkpoint file",
    ),
    ("physworld.cli.export", "ckpt_path={file}", "out=None is not accepted: pass out=exports/<name>"),
]


@pytest.mark.parametrize(("module", "args", "expected"), BAD_VALUES)
def test_every_command_reports_a_bad_value_before_importing_torch(tmp_path, module, args, expected):
    # The entry point's main() as its console script calls it; the line that reports the error is printed
    # before torch or Lightning is imported (they alone take seconds), so a typo costs no start-up time.
    (tmp_path / "empty.ckpt").write_bytes(b"")
    argv = args.format(file=tmp_path / "empty.ckpt", tmp=tmp_path).split()
    code = (
        f"import sys; sys.argv = ['prog', *{argv!r}]; from {module} import main\n"
        "try:\n    code = main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(code, sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    env = {**os.environ, "PHYSWORLD_ROOT": str(tmp_path / "root")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("physworld: error: ") and expected in lines[0], lines
    assert result.stdout.strip().splitlines()[-1] == "2 []"  # exit code 2, neither torch nor Lightning


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.vq.num_codes=0", "model.vq.num_codes"),
        ("phase.lr=-1", "phase.lr"),
        ("dataset.sizes.train=-3", "sizes.train"),
        ("model.encoder.hidden_channels=[8,-1]", "model.encoder.hidden_channels"),
        ("data.num_workers=-1", "data.num_workers"),
        ("phase.max_epochs=1.5", "phase.max_epochs"),
        ("phase.seq_len=50", "phase.seq_len=50 is longer than the stored sequences"),
    ],
)
def test_config_checks_name_the_key(make_cfg, override, key):
    with pytest.raises(ConfigError, match=re.escape(key)) as err:
        check_config(make_cfg("debug=tiny", override))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("script", "override"),
    [
        ("train.py", "debug=tinny"),
        ("train.py", "experiment=demoo"),
        ("train.py", "hparams_search=grid"),
        ("train.py", "-m debug=tiny,tinny"),
        ("scripts/generate_data.py", "debug=tinny"),
        ("scripts/evaluate.py", "experiment=demoo"),
        ("scripts/pipeline.py", "experiment=demoo"),
    ],
)
def test_misspelt_group_option_is_one_line_with_the_options(tmp_path, script, override):
    result = run([script, *override.split()], tmp_path)
    group, value = override.split()[-1].split("=")
    options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    bad = value.split(",")[-1]
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        result.stderr.strip()
        == f"physworld: error: {group}={bad!r} is not accepted: one of {options} (configs/{group}/)"
    )


@pytest.mark.parametrize(
    ("script", "what", "keys"),
    [
        ("train.py", "physworld-train: train one phase of the world model", "Main keys: phase.lr"),
        ("scripts/evaluate.py", "physworld-evaluate: score a trained world model", "Main keys: ckpt_path"),
        ("scripts/generate_data.py", "physworld-generate: generate (or verify)", "Main keys: dataset.sizes"),
        ("scripts/pipeline.py", "Run an experiment's phases in order", "Main keys: experiment"),
        ("scripts/report.py", "Write a report of a run or a pipeline folder", "Writes `<folder>/report.md`"),
        (
            "scripts/preview_data.py",
            "physworld-preview: draw a few fresh sequences",
            "Main keys: dataset.num_frames",
        ),
        ("scripts/export.py", "physworld-export: export a trained world model", "Main keys: ckpt_path"),
    ],
)
def test_help_says_what_the_script_does(script, what, keys):
    result = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert what in result.stdout and keys in result.stdout and "powered by Hydra" not in result.stdout


ENTRY_POINTS = {
    "physworld-train": "physworld-train: train one phase of the world model",
    "physworld-evaluate": "physworld-evaluate: score a trained world model",
    "physworld-generate": "physworld-generate: generate (or verify)",
    "physworld-report": "Write a report of a run or a pipeline folder",
    "physworld-pipeline": "Run an experiment's phases in order",
    "physworld-preview": "physworld-preview: draw a few fresh sequences of a dataset",
    "physworld-export": "physworld-export: export a trained world model",
}
# scripts/*.py that are tools of the repository (benchmarks, tables of finished runs), not commands: the package
# module whose main() each one wraps, or None for the small ones that still hold their own program.
REPOSITORY_TOOLS = {
    "benchmark.py": "physworld.benchmark.bench",
    "benchmark_scenes.py": "physworld.benchmark.scenes",
    "rl_gradient_split.py": None,
    "rollout_table.py": None,
    "summarize.py": "physworld.report.sweeps",
}


def project_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: console script name -> "module:function"."""
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_entry_point_is_an_importable_main():
    for name, target in project_scripts().items():
        module, function = target.split(":")
        assert function == "main", (name, target)
        assert callable(getattr(importlib.import_module(module), function)), (name, target)


def wrappers() -> dict[str, str]:
    """The repository's way to call each entry point: "module:main" -> "train.py" or "scripts/<name>.py"."""
    wrapped = {}
    for path in [ROOT / "train.py", *sorted((ROOT / "scripts").glob("*.py"))]:
        if path.name not in REPOSITORY_TOOLS:
            found = re.search(r"^from (physworld\.cli\.\w+) import main\b", path.read_text(), re.MULTILINE)
            assert found, f"{path.name} is neither a wrapper of a physworld.cli main() nor a repository tool"
            wrapped[f"{found.group(1)}:main"] = path.relative_to(ROOT).as_posix()
    return wrapped


def test_every_script_wraps_an_entry_point():
    # train.py and each scripts/*.py command call the main() of one [project.scripts] entry, and every entry
    # has its wrapper in the repository: one command, two ways to call it.
    scripts = [p for p in (ROOT / "scripts").glob("*.py") if p.name not in REPOSITORY_TOOLS]
    assert len(wrappers()) == len(scripts) + 1  # no two wrappers of one entry point
    assert sorted(wrappers()) == sorted(project_scripts().values())


def test_repository_tools_are_thin_wrappers_of_package_modules():
    # A tool's program lives in the package (importable, tested, in the wheel); its script only calls main().
    assert sorted(REPOSITORY_TOOLS) == sorted(
        p.name for p in (ROOT / "scripts").glob("*.py") if p.name in REPOSITORY_TOOLS
    )
    for name, module in REPOSITORY_TOOLS.items():
        if module is None:
            continue
        text = (ROOT / "scripts" / name).read_text()
        assert re.findall(r"^from (physworld[\w.]*) import main\b", text, re.MULTILINE) == [module], name
        assert not re.search(r"^(def|class) ", text, re.MULTILINE), f"{name} defines its own program"
        assert callable(importlib.import_module(module).main), module


def test_nothing_edits_sys_path():
    # Every import goes through the installed (or PYTHONPATH'd) package: no script or test reaches beside itself.
    edit = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*[+]?=")
    files = [
        ROOT / "train.py",
        *ROOT.glob("scripts/*.py"),
        *ROOT.glob("src/physworld/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
    ]
    assert [str(f.relative_to(ROOT)) for f in files if edit.search(f.read_text())] == []


@pytest.mark.parametrize(
    ("script", "what"),
    [
        ("scripts/benchmark.py", "Measure physworld's speed side by side in one run"),
        ("scripts/benchmark_scenes.py", "Scene-generation throughput"),
        ("scripts/summarize.py", "One table of a sweep"),
    ],
)
def test_repository_tool_wrapper_runs(script, what):
    result = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert what in result.stdout


# The config each Hydra command composes (the others, report and pipeline, parse their own arguments).
HYDRA_CONFIGS = {
    "physworld-train": "train",
    "physworld-evaluate": "evaluate",
    "physworld-generate": "generate_data",
    "physworld-preview": "preview_data",
    "physworld-export": "export",
}


def config_groups_used(config_name: str) -> dict[str, list[str]]:
    """The groups of a config's defaults list (Hydra's own left out), each with the options in its folder."""
    groups = []
    for entry in OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{config_name}.yaml"))["defaults"]:
        if isinstance(entry, dict):
            (group,) = entry
            if not group.startswith(("override ", "hydra")):
                groups.append(group)
    return {g: sorted(p.stem for p in (CONFIG_DIR / g).glob("*.yaml")) for g in groups}


def listed_groups(help_text: str) -> dict[str, list[str]] | None:
    """The `group: option, ...` lines under "Config groups (group=option):" in a --help, or None without one."""
    lines = help_text.splitlines()
    if "Config groups (group=option):" not in lines:
        return None
    start = lines.index("Config groups (group=option):") + 1
    listed = {}
    for line in lines[start:]:
        if not line.strip():
            break
        group, options = line.split(": ", 1)
        listed[group] = options.split(", ")
    return listed


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_runs_outside_the_repository(tmp_path, name):
    # pyproject.toml's [project.scripts] target, called as the installed console script calls it, from a folder
    # outside the repository: its configs come from the package, not from the current directory.
    scripts = project_scripts()
    assert sorted(scripts) == sorted(ENTRY_POINTS)
    module, function = scripts[name].split(":")
    code = f"import sys; sys.argv = [{name!r}, '--help']; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert ENTRY_POINTS[name] in result.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing
    # The header names this command, and the help says the repository's way to call it too.
    assert name in result.stdout.splitlines()[0], result.stdout[:500]
    assert f"python {wrappers()[scripts[name]]}" in result.stdout
    # The groups listed are exactly those the command's config chooses from, with every option of each.
    if name in HYDRA_CONFIGS:
        assert listed_groups(result.stdout) == config_groups_used(HYDRA_CONFIGS[name])
    else:
        assert listed_groups(result.stdout) is None
    if name == "physworld-pipeline":  # the experiments it can run instead
        with_steps = [
            p.stem
            for p in sorted((CONFIG_DIR / "experiment").glob("*.yaml"))
            if OmegaConf.select(OmegaConf.load(p), "pipeline.steps")
        ]
        assert f"Experiments with pipeline.steps (experiment=...): {', '.join(with_steps)}\n" in result.stdout


def test_generate_data_cli(tmp_path):
    result = run(
        [
            "scripts/generate_data.py",
            "dataset.sizes.train=3",
            "dataset.sizes.val=2",
            "dataset.sizes.test=2",
            "dataset.num_frames=4",
            "data.seed=3",
            f"paths.data_dir={tmp_path / 'd'}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "moving_mnist/train: 3 sequences x 4 frames" in result.stdout
    manifest = json.loads((tmp_path / "d" / "moving_mnist" / "train" / "manifest.json").read_text())
    assert manifest["spec"]["seed"] == 3
    bad = run(
        ["scripts/generate_data.py", "dataset.sizes.train=0", f"paths.data_dir={tmp_path / 'd'}"], tmp_path
    )
    assert bad.returncode == 2 and "sizes.train=0" in bad.stderr and "Traceback" not in bad.stderr


def test_preview_data_writes_png_and_gif(tmp_path):
    from PIL import Image

    result = run(["scripts/preview_data.py", "dataset=pendulum"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "outputs" / "previews"
    png, gif = Image.open(folder / "pendulum_preview.png"), Image.open(folder / "pendulum_preview.gif")
    assert png.format == "PNG" and png.size[1] == 6 * 66 * 2  # six sequences, framed 64 px rows, scaled 2x
    assert gif.format == "GIF" and gif.n_frames == 30
