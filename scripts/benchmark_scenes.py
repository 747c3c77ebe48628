"""`python scripts/benchmark_scenes.py [--full DIR]`: a repository tool, the wrapper of physworld.benchmark.scenes
(src/physworld/benchmark/scenes.py: its main() and documentation)."""

from physworld.benchmark.scenes import main

if __name__ == "__main__":
    main()
