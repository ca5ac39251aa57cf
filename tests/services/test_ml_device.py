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


@pytest.mark.parametrize(("setting", "dtype", "cuda", "bf16", "expected"), [
    ("auto", "auto", False, False, ("cpu", torch.float32)),
    ("cpu", "auto", True, True, ("cpu", torch.float32)),
    ("auto", "auto", True, True, ("cuda", torch.bfloat16)),
    ("auto", "auto", True, False, ("cuda", torch.float16)),
    ("cuda", "auto", True, True, ("cuda", torch.bfloat16)),
    ("cuda", "float32", True, True, ("cuda", torch.float32)),
    ("cuda", "float16", True, True, ("cuda", torch.float16)),
    ("auto", "bfloat16", False, False, ("cpu", torch.float32)),  # a fleet's half dtype: its CPU hosts stay in float32
    ("cpu", "float16", True, True, ("cpu", torch.float32)),
])
def test_each_device_and_dtype_setting_resolves(setting: str, dtype: str, cuda: bool, bf16: bool,
                                                expected: tuple[str, torch.dtype]) -> None:
    picked, picked_dtype = device.device_resolve(device=setting, dtype=dtype, cuda_available=cuda, bf16_supported=bf16)
    assert (picked.type, picked_dtype) == expected


def test_forced_cuda_without_a_cuda_device_fails_naming_the_setting() -> None:
    with pytest.raises(SuiteError, match=r"SUITE_DEVICE=cuda but torch sees no CUDA device"):
        device.device_resolve(device="cuda", dtype="auto", cuda_available=False, bf16_supported=False)
    with pytest.raises(SuiteError, match=r"SUITE_DTYPE=bfloat16 .* does not support bf16"):
        device.device_resolve(device="cuda", dtype="bfloat16", cuda_available=True, bf16_supported=False)
    with pytest.raises(SuiteError, match=r"SUITE_DTYPE='int4'"):
        device.device_resolve(device="auto", dtype="int4", cuda_available=False, bf16_supported=False)


def test_device_pick_follows_the_settings(settings) -> None:  # noqa: ANN001
    try:
        settings.SUITE_DEVICE, settings.SUITE_DTYPE = "cpu", "float16"
        device.device_pick.cache_clear()
        assert device.device_pick() == (torch.device("cpu"), torch.float32)
        if not torch.cuda.is_available():
            settings.SUITE_DEVICE = "cuda"
            device.device_pick.cache_clear()
            with pytest.raises(SuiteError, match=r"SUITE_DEVICE=cuda"):
                device.device_pick()
    finally:
        device.device_pick.cache_clear()


def test_a_bad_device_setting_is_improperly_configured() -> None:
    env = dict(os.environ) | {"SUITE_DEVICE": "tpu"}
    code = "import django; django.setup()"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and "SUITE_DEVICE='tpu'" in result.stderr


def test_the_tolerance_follows_the_dtype() -> None:
    assert device.tolerance_for(torch.float32) == 1e-5
    assert device.tolerance_for(torch.float16) == 5e-3 and device.tolerance_for(torch.bfloat16) == 2e-2
