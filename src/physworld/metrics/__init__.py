"""torchmetrics-based metrics shared by the phases and callbacks."""
