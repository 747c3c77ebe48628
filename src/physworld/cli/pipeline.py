"""Run an experiment's phases in order, then write its report: `physworld-pipeline experiment=demo`
(from the repository: `python scripts/pipeline.py ...`, the same main()).

Every argument is a physworld-train (train.py) override applied to every step (e.g. `trainer=gpu`,
`paths.log_dir=/scratch`). Rerunning the same command resumes at the first unfinished step. See
src/physworld/pipeline.py.

Main keys: experiment (required: one that defines pipeline.steps, e.g. demo, fidelity or gym_pendulum, whose
pipeline.online.* keys set its rounds of learning online: rounds, episode_frames, first_episodes,
episodes_per_round, val_episodes, test_episodes, exploration_noise, env_id), pipeline.report
(false: no evaluation and report at the end), pipeline.evaluate_sequences, pipeline.generalisation (false: that
evaluation scores the test split only, no ood_test and long_test) and pipeline.long_horizon (its long_test
rollout steps), paths.log_dir (the pipeline folder is <paths.log_dir>/pipelines/<experiment>), and any
physworld-train key (e.g. phase.max_epochs=1 for every step).
"""

import sys

from physworld.cli import set_project_root


def help_text() -> str:
    """The module docstring, then the experiments there are to run (those that define pipeline.steps)."""
    from physworld.choices import group_options
    from physworld.paths import CONFIG_DIR
    from physworld.pipeline import has_steps

    experiments = [name for name in group_options(CONFIG_DIR, "experiment") if has_steps(name)]
    return (
        f"{__doc__.strip()}\n\nExperiments with pipeline.steps (experiment=...): {', '.join(experiments)}\n"
        "Config groups of every step (group=option): physworld-train's, see physworld-train --help"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(help_text())
        return 0
    set_project_root()
    from physworld.errors import PhysworldError, print_error
    from physworld.pipeline import run_pipeline  # imports neither torch nor Lightning before its checks

    try:
        folder = run_pipeline(argv)
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        return print_error(err)
    print(f"pipeline: every step done, runs in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
