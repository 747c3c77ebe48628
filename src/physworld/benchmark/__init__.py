"""The benchmark harness behind `scripts/benchmark.py` (`make bench`): throughput of training (through Lightning
and a plain PyTorch loop in the same process), imagination, data loading; host reads per step; memory per
batch size; FLOPs and MFU. Each module measures one thing and returns plain dicts for the JSON report; `bench`
runs them all and writes the report, `scenes` measures scene generation (scripts/benchmark_scenes.py)."""
