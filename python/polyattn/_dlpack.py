"""Reads a DLPack capsule (the legacy, unversioned DLManagedTensor that
`obj.__dlpack__()` returns when no max_version is asked for).

The capsule is kept alive, unconsumed, for as long as the view is used: its
own destructor then calls the producer's deleter, so nothing is freed twice
and nothing leaks.
"""
import ctypes

CPU, CUDA, CUDA_HOST, OPENCL, ROCM, CUDA_MANAGED = 1, 2, 3, 4, 10, 13
DEVICE_NAMES = {CPU: "cpu", CUDA: "cuda", CUDA_HOST: "cuda_host", OPENCL: "opencl", ROCM: "rocm",
                CUDA_MANAGED: "cuda_managed"}
INT, UINT, FLOAT, BFLOAT = 0, 1, 2, 4


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class View:
    """What a capsule describes: data address (byte_offset applied), device,
    dtype (code, bits, lanes), shape and strides in elements."""

    def __init__(self, capsule):
        self.capsule = capsule  # keeps the producer's memory alive
        ptr = _get_pointer(capsule, b"dltensor")
        t = DLManagedTensor.from_address(ptr).dl_tensor
        self.data = (t.data or 0) + t.byte_offset
        self.device_type, self.device_id = t.device.device_type, t.device.device_id
        self.dtype = (t.dtype.code, t.dtype.bits, t.dtype.lanes)
        self.shape = tuple(t.shape[i] for i in range(t.ndim))
        if t.strides:
            self.strides = tuple(t.strides[i] for i in range(t.ndim))
        else:  # NULL strides: compact row-major
            st, acc = [], 1
            for n in reversed(self.shape):
                st.append(acc)
                acc *= n
            self.strides = tuple(reversed(st))

    @property
    def device_name(self):
        return DEVICE_NAMES.get(self.device_type, f"dlpack device {self.device_type}")


def view(obj, stream=None):
    """A View of obj's memory through obj.__dlpack__ (stream: the consumer's
    stream in DLPack's convention, for CUDA producers)."""
    dev = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else CPU
    if stream is None or dev not in (CUDA, CUDA_MANAGED, ROCM):
        return View(obj.__dlpack__())
    return View(obj.__dlpack__(stream=stream))
