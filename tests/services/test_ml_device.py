from __future__ import annotations

import pytest
import torch

from services.errors import SuiteError
from services.ml import device


def test_the_cpu_runs_in_float32_and_cuda_in_half_precision() -> None:
    picked, dtype = device.device_pick()
    if torch.cuda.is_available():
        assert picked.type == "cuda" and dtype in (torch.bfloat16, torch.float16)
    else:
        assert (picked.type, dtype) == ("cpu", torch.float32)


def test_the_thread_count_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device, "_threads_applied", False)
        monkeypatch.setenv("SUITE_TORCH_THREADS", "1")
        device.threads_apply()
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SUITE_TORCH_THREADS", "2")
        device.threads_apply()  # already applied in this process: unchanged
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(device, "_threads_applied", False)
        monkeypatch.setenv("SUITE_TORCH_THREADS", "many")
        with pytest.raises(SuiteError, match=r"SUITE_TORCH_THREADS='many' is not a whole number"):
            device.threads_apply()
    finally:
        torch.set_num_threads(before)
