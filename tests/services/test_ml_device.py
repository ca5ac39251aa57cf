from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from services.errors import SuiteError
from services.ml import device
from tests.conftest import ROOT


def test_the_cpu_runs_in_float32_and_cuda_in_half_precision() -> None:
    picked, dtype = device.device_pick()
    if torch.cuda.is_available():
        assert picked.type == "cuda" and dtype in (torch.bfloat16, torch.float16)
    else:
        assert (picked.type, dtype) == ("cpu", torch.float32)


def test_the_thread_count_comes_from_the_setting_once(monkeypatch: pytest.MonkeyPatch, settings) -> None:  # noqa: ANN001
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device, "_threads_applied", False)
        settings.SUITE_TORCH_THREADS = 1
        device.threads_apply()
        assert torch.get_num_threads() == 1
        settings.SUITE_TORCH_THREADS = 2
        device.threads_apply()  # already applied in this process: unchanged
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(device, "_threads_applied", False)
        device.threads_apply(threads=2)  # a caller without Django passes it in
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(device, "_threads_applied", False)
        with pytest.raises(SuiteError, match=r"SUITE_TORCH_THREADS=0 must be at least 1"):
            device.threads_apply(threads=0)
    finally:
        torch.set_num_threads(before)


def test_without_django_settings_the_thread_count_is_torchs_own() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {"SUITE_TORCH_THREADS": "3"}
    code = "from services.ml.device import threads_configured; print(threads_configured())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"  # services/ml reads no environment variable itself
