"""`python scripts/benchmark.py [--quick]` (`make bench`): a repository tool, the wrapper of
physworld.benchmark.bench (src/physworld/benchmark/bench.py: its main() and documentation)."""

import os
from pathlib import Path

# outputs/benchmarks and data/bench beside this repository unless $PHYSWORLD_ROOT says otherwise
os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parents[1]))

from physworld.benchmark.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
