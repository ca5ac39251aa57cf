"""Where tensors run: SUITE_DEVICE and SUITE_DTYPE resolved against this machine (CUDA in bf16/fp16, or the CPU in float32)."""
from __future__ import annotations

import threading
from functools import lru_cache

import torch

from services.errors import SuiteError

_threads_lock = threading.Lock()
_threads_applied = False


def _setting(name: str, default: object) -> object:
    """A Django setting, or `default` where Django's settings are not configured (services/ml runs without them)."""
    from django.conf import settings

    return getattr(settings, name, default) if settings.configured else default


def threads_configured() -> int | None:
    """The SUITE_TORCH_THREADS setting, or None (torch's default) where Django's settings are not configured.

    services/ml stays free of Django (it runs from a shell and in plain unit tests), so the settings are looked up
    here, at call time, and only when a Django process configured them; config/settings.py has validated the value.
    """
    return _setting("SUITE_TORCH_THREADS", None)


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


DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device_configured() -> tuple[str, str]:
    """The (SUITE_DEVICE, SUITE_DTYPE) settings, or ("auto", "auto") where Django's settings are not configured."""
    return _setting("SUITE_DEVICE", "auto"), _setting("SUITE_DTYPE", "auto")


def quantize_configured() -> str:
    """The SUITE_QUANTIZE setting ("none" or "int8"), or "none" where Django's settings are not configured."""
    return _setting("SUITE_QUANTIZE", "none")


CPU_ENGINES = ("onnxruntime", "torch")  # SUITE_CPU_ENGINE: what runs encoders without adapter layers on the CPU


def cpu_engine_configured() -> str:
    """The SUITE_CPU_ENGINE setting, or "onnxruntime" where Django's settings are not configured."""
    return _setting("SUITE_CPU_ENGINE", "onnxruntime")


def device_resolve(*, device: str, dtype: str, cuda_available: bool, bf16_supported: bool) -> tuple[torch.device, torch.dtype]:
    """The device and autocast dtype for the settings `device` and `dtype` on a machine with or without CUDA.

    1. `cuda` without a CUDA device fails (a GPU worker must not quietly serve from the CPU); `auto` takes CUDA when present.
    2. On CUDA: `auto` is bf16 where supported, else fp16; `bfloat16` where unsupported fails; `float32` turns autocast off.
    3. On the CPU the dtype is float32 whatever was asked: the settings of a mixed fleet stay valid on its CPU hosts, and
       half precision on CPU is slower on most CPUs and patchy in autocast (int8, SUITE_QUANTIZE, is the CPU's fast path).
    """
    if device not in DEVICES:
        raise SuiteError(f"SUITE_DEVICE={device!r} is not one of {', '.join(DEVICES)}.", field="SUITE_DEVICE")
    if dtype != "auto" and dtype not in DTYPES:
        raise SuiteError(f"SUITE_DTYPE={dtype!r} is not one of auto, {', '.join(DTYPES)}.", field="SUITE_DTYPE")
    if device == "cuda" and not cuda_available:
        raise SuiteError("SUITE_DEVICE=cuda but torch sees no CUDA device (a CPU-only torch build, no driver, or "
                         "CUDA_VISIBLE_DEVICES empty); use SUITE_DEVICE=auto or cpu on this host.", field="SUITE_DEVICE")
    if device == "cpu" or not cuda_available:
        return torch.device("cpu"), torch.float32
    if dtype == "auto":
        return torch.device("cuda"), torch.bfloat16 if bf16_supported else torch.float16
    if dtype == "bfloat16" and not bf16_supported:
        raise SuiteError("SUITE_DTYPE=bfloat16 but this CUDA device does not support bf16; use float16 or auto.",
                         field="SUITE_DTYPE")
    return torch.device("cuda"), DTYPES[dtype]


@lru_cache(maxsize=1)
def device_pick() -> tuple[torch.device, torch.dtype]:
    """The device and the compute dtype for autocast, from SUITE_DEVICE and SUITE_DTYPE; cached per process.

    1. Apply the CPU thread count (SUITE_TORCH_THREADS) once.
    2. Resolve the settings against this machine (device_resolve); weights stay float32, autocast does the rest.
    """
    threads_apply()
    device, dtype = device_configured()
    cuda = torch.cuda.is_available()
    return device_resolve(device=device, dtype=dtype, cuda_available=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported())


def tolerance_for(dtype: torch.dtype) -> float:
    """The absolute tolerance for comparing probabilities or unit-norm embeddings computed under `dtype` autocast.

    float32: 1e-5 (summation order only). bfloat16 keeps 8 mantissa bits (relative step 2**-8 ≈ 4e-3), and a few layers
    of accumulated rounding before softmax move probabilities by up to ~1e-2: 2e-2. float16 keeps 11 bits (≈ 5e-4 per
    step): 5e-3. Two runs of the same path on the same device and dtype agree far closer; these bound path vs path.
    """
    return {torch.bfloat16: 2e-2, torch.float16: 5e-3}.get(dtype, 1e-5)


def autocast_for(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """An autocast context that is active on CUDA only (CPU float32 runs unchanged)."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=device.type == "cuda")
