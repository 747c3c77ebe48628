"""Count the places a training step reads a tensor's value on the host (.item(), bool(t), int(t), .tolist()...).

On a GPU each of these waits for the device to finish everything queued (a host-device synchronisation),
so a step with none lets the CPU run ahead. The count is the same on any device, so it is measured on the
CPU too; on CUDA, torch's own sync detector (torch.cuda.set_sync_debug_mode) is read as well, which also
sees synchronising copies.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy"}
TORCH_DIR = str(Path(torch.__file__).parent)
# torch.optim reads its per-parameter step counters, which live on the host (unless fused or capturable):
# reads, but never syncs, so they are counted apart.
OPTIM_DIR = str(Path(torch.__file__).parent / "optim")


class HostReads(TorchFunctionMode):
    """Counts host reads by the first caller outside torch: {"file.py:line (item)": n}."""

    def __init__(self):
        super().__init__()
        self.sites: Counter[str] = Counter()
        self.optimizer_counters = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READS:
            site = _caller()
            if site is None:
                self.optimizer_counters += 1
            else:
                self.sites[f"{site} ({name})"] += 1
        return func(*args, **(kwargs or {}))


class StepWindow:
    """Start and stop at two instants (StepTimer's on_window): host reads, and CUDA syncs on a GPU."""

    def __init__(self, device: torch.device):
        self.device, self.reads, self.cuda_syncs = device, HostReads(), None
        self._warnings = None

    def __call__(self, event: str) -> None:
        if event == "start":
            if self.device.type == "cuda":
                self._warnings = warnings.catch_warnings(record=True)
                self.cuda_syncs = self._warnings.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
            self.reads.__enter__()
        else:
            self.reads.__exit__(None, None, None)
            if self._warnings is not None:
                torch.cuda.set_sync_debug_mode("default")
                self._warnings.__exit__(None, None, None)

    def summary(self, steps: int) -> dict:
        out = {
            "host_reads_per_step": sum(self.reads.sites.values()) / steps,
            "sites": dict(self.reads.sites.most_common()),
            "optimizer_step_counter_reads_per_step": self.reads.optimizer_counters / steps,
        }
        if self.cuda_syncs is not None:
            syncs = [w for w in self.cuda_syncs if "synchroniz" in str(w.message)]
            out["cuda_syncs_per_step"] = len(syncs) / steps
        return out


def _caller() -> str | None:
    """The folder/file.py:line of the first frame outside torch and Lightning's tensor-to-number helpers (so
    the site says who asked: the progress bar or a logger); None for torch.optim's own reads."""
    frame = sys._getframe(2)
    while frame is not None and (
        frame.f_code.co_filename.startswith(TORCH_DIR) or frame.f_code.co_filename.endswith("apply_func.py")
    ):
        if frame.f_code.co_filename.startswith(OPTIM_DIR):
            return None
        frame = frame.f_back
    if frame is None:
        return "?"
    path = Path(frame.f_code.co_filename)
    return f"{path.parent.name}/{path.name}:{frame.f_lineno}"
