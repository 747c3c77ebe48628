"""Networks (plain nn.Modules, no Lightning, no Hydra): built from plain values."""
