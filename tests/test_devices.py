"""The one device picker (physworld.devices): auto prefers CUDA, then MPS, then the CPU; an absent or unknown
device is one line naming the key, the value and what this machine accepts."""

from __future__ import annotations

import pytest
import torch

from physworld import devices
from physworld.errors import ConfigError
from physworld.evaluation import checks


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(devices, "available", lambda: {"cuda": cuda, "mps": mps, "cpu": True})
    assert devices.pick_device() == devices.pick_device("auto") == torch.device(expected)
    assert devices.pick_device("cpu") == torch.device("cpu")


def test_absent_and_unknown_devices_fail_with_one_line(monkeypatch):
    monkeypatch.setattr(devices, "available", lambda: {"cuda": False, "mps": False, "cpu": True})
    absent = r"^evaluation.device='cuda' is not available here: accepted one of \['auto', 'cpu'\]$"
    with pytest.raises(ConfigError, match=absent):
        devices.pick_device("cuda", "evaluation.device")
    with pytest.raises(
        ConfigError, match=r"^--device='tpu' is not a device: accepted one of \['auto', 'cpu'\]$"
    ):
        devices.pick_device("tpu", "--device")


def test_the_config_checks_accept_the_pickers_choices():
    assert checks.DEVICES == devices.DEVICES  # checks.py keeps its own copy: it must not import torch
