"""Recorded data: datasets that come from outside physworld's own generators, one module a source, registered by
the same name as `configs/dataset/<name>.yaml`.

A source is a module with:

- `spec_for(dataset, split, seed) -> dict` -- everything that determines the split's bytes (the cache rebuilds a
  split whose manifest holds another spec);
- `cache_name(dataset) -> str` -- the folder under the data dir that keeps its splits (one a source);
- `check(dataset)` -- the start-up check of its config keys: one ConfigError line, before any work;
- `build(folder, spec, progress)` -- write the split's arrays and manifest into `folder`, a temporary folder
  that the cache (data/cache.py) moves into place only when `build` returns.
"""

from physworld.data.sources import episodes, gym

SOURCES = {
    "episodes": episodes,  # your own recorded episodes: a folder of .npz files
    "gym": gym,  # episodes recorded from any Gymnasium environment, in the same format
}
