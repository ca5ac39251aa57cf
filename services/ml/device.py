"""Where tensors run: CUDA with bf16/fp16 when present, else the CPU in float32."""
from __future__ import annotations

import threading
from functools import lru_cache

import torch

from services.errors import SuiteError

_threads_lock = threading.Lock()
_threads_applied = False


def threads_configured() -> int | None:
    """The SUITE_TORCH_THREADS setting, or None (torch's default) where Django's settings are not configured.

    services/ml stays free of Django (it runs from a shell and in plain unit tests), so the settings are looked up
    here, at call time, and only when a Django process configured them; config/settings.py has validated the value.
    """
    from django.conf import settings

    if not settings.configured:
        return None
    return getattr(settings, "SUITE_TORCH_THREADS", None)


def threads_apply(*, threads: int | None = None) -> None:
    """Apply the CPU thread count once per process: `threads`, else the SUITE_TORCH_THREADS setting, else torch's default."""
    global _threads_applied
    with _threads_lock:
        if _threads_applied:
            return
        _threads_applied = True
        threads = threads if threads is not None else threads_configured()
        if threads is None:
            return
        if threads < 1:
            raise SuiteError(f"SUITE_TORCH_THREADS={threads} must be at least 1.")
        torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def device_pick() -> tuple[torch.device, torch.dtype]:
    """The device and the compute dtype for autocast.

    1. CUDA when available: bf16 where supported, else fp16 (weights stay float32, autocast does the rest).
    2. Otherwise the CPU in float32, with the thread count (SUITE_TORCH_THREADS) applied once.
    """
    threads_apply()
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    return torch.device("cpu"), torch.float32


def autocast_for(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """An autocast context that is active on CUDA only (CPU float32 runs unchanged)."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=device.type == "cuda")
