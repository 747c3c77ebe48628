"""Write a report of a run or a pipeline folder: `physworld-report <folder>` (from the
repository: `python scripts/report.py <folder>`, the same main()).

Writes `<folder>/report.md` and `<folder>/report.html` (small figures inlined, large ones linked from
`<folder>/report_files/`: keep the two together): the configuration, training curves, metrics tables and
figures of every training run under the folder, and of every evaluation (`scripts/evaluate.py`) of them.
"""

import argparse
import sys

from physworld.cli import set_project_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder", help="a training run, a pipeline folder (several runs) or an evaluation folder"
    )
    args = parser.parse_args(argv)
    set_project_root()

    from physworld.errors import PhysworldError, print_error
    from physworld.report.build import write_report

    try:
        md, page = write_report(args.folder)
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        return print_error(err)
    print(f"report: {md}\nreport (HTML, open in a browser): {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
