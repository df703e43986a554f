"""polyattn: fused attention kernels (CPU, CUDA, OpenCL) from Python.

    import numpy as np, polyattn as pa
    ctx = pa.Context("cpu")
    q = np.random.rand(2, 16, 8, 64).astype(np.float32)   # [B, S, Hq, D]
    k = np.random.rand(2, 16, 2, 64).astype(np.float32)   # [B, S, Hkv, D]
    out = np.empty_like(q)
    ctx.attention(q, k, k, out, causal=True)               # out filled in place

A ctypes binding over libpolyattn: no compiled extension. Tensors come from
anything with __dlpack__ (NumPy on the CPU backend, PyTorch/CuPy CUDA tensors
on the CUDA backend), viewed in place.
"""
from . import _ops  # noqa: F401  (adds the operations to Context)
from ._core import (BF16, F16, F32, I32, BackendError, Buffer, Context, Error, InvalidArgument,
                    NoDevice, OutOfMemory, Tensor, Unsupported, WorkspaceTooSmall)
from ._lib import HAS_APPEND, lib as _clib, path as library_path
from ._ops import AttentionPlan, MlaPlan, Plan

__version__ = "0.1.0"


def version():
    """The loaded library's version, (major, minor, patch)."""
    import ctypes
    v = [ctypes.c_int() for _ in range(3)]
    _clib.pa_version(*[ctypes.byref(x) for x in v])
    return tuple(x.value for x in v)


def backend_compiled(name):
    from ._core import BACKENDS
    return bool(_clib.pa_backend_compiled(BACKENDS[name]))


def device_count(name):
    import ctypes
    from ._core import BACKENDS
    n = ctypes.c_int(0)
    _clib.pa_device_count(BACKENDS[name], ctypes.byref(n))
    return n.value


__all__ = ["Context", "Buffer", "Tensor", "Plan", "AttentionPlan", "MlaPlan", "Error",
           "InvalidArgument", "Unsupported", "OutOfMemory", "NoDevice", "BackendError",
           "WorkspaceTooSmall", "F32", "F16", "BF16", "I32", "version", "backend_compiled",
           "device_count", "library_path", "HAS_APPEND"]
