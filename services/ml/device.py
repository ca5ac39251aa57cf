"""Where tensors run: CUDA with bf16/fp16 when present, else the CPU in float32."""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import torch

from services.errors import SuiteError

THREADS_ENV = "SUITE_TORCH_THREADS"
_threads_lock = threading.Lock()
_threads_applied = False


def threads_apply() -> None:
    """Apply the CPU thread count from SUITE_TORCH_THREADS once per process (unset: torch's default)."""
    global _threads_applied
    with _threads_lock:
        if _threads_applied:
            return
        _threads_applied = True
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return
        try:
            threads = int(raw)
        except ValueError:
            raise SuiteError(f"{THREADS_ENV}={raw!r} is not a whole number; set it to the CPU threads torch may use, e.g. 4.") from None
        if threads < 1:
            raise SuiteError(f"{THREADS_ENV}={raw!r} must be at least 1.")
        torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def device_pick() -> tuple[torch.device, torch.dtype]:
    """The device and the compute dtype for autocast.

    1. CUDA when available: bf16 where supported, else fp16 (weights stay float32, autocast does the rest).
    2. Otherwise the CPU in float32, with the thread count from SUITE_TORCH_THREADS applied once.
    """
    threads_apply()
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32


def autocast_for(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """An autocast context that is active on CUDA only (CPU float32 runs unchanged)."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=device.type == "cuda")
