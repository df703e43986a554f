"""Contexts, buffers, tensors and errors: the objects every operation uses."""
import ctypes
import weakref

from . import _dlpack
from ._lib import HAS_APPEND, ContextDesc, DeviceInfo, PaTensor, lib

F32, F16, BF16, I32, FP8_E4M3, FP8_E5M2 = 0, 1, 2, 3, 4, 5
DTYPES = {"f32": F32, "float32": F32, "f16": F16, "float16": F16, "bf16": BF16,
          "bfloat16": BF16, "i32": I32, "int32": I32}
DTYPE_NAMES = {F32: "f32", F16: "f16", BF16: "bf16", I32: "i32"}
if HAS_APPEND:  # fp8 KV caches: uint8 storage, named with Context.tensor(x, dtype=...)
    DTYPES.update({"fp8_e4m3": FP8_E4M3, "float8_e4m3fn": FP8_E4M3, "fp8_e5m2": FP8_E5M2,
                   "float8_e5m2": FP8_E5M2})
    DTYPE_NAMES.update({FP8_E4M3: "fp8_e4m3", FP8_E5M2: "fp8_e5m2"})
_DL_DTYPES = {(_dlpack.FLOAT, 32): F32, (_dlpack.FLOAT, 16): F16, (_dlpack.BFLOAT, 16): BF16,
              (_dlpack.INT, 32): I32}
BACKENDS = {"auto": 0, "cpu": 1, "cuda": 2, "opencl": 3}
_CUDA_STREAM_LEGACY = 1  # cudaStreamLegacy; also DLPack's number for it


class Error(Exception):
    """A failed polyattn call: .status (int), .status_name, .message (the
    context's last-error text, which names the field and the values)."""

    def __init__(self, status, what, message=""):
        self.status = status
        self.status_name = lib.pa_status_str(status).decode() if status else "binding"
        self.message = message
        if not message.startswith(self.status_name):  # the library's text starts with it
            message = f"{self.status_name}: {message}" if message else self.status_name
        super().__init__(f"{what}: {message}")


class InvalidArgument(Error, ValueError):
    pass


class Unsupported(Error):
    pass


class OutOfMemory(Error, MemoryError):
    pass


class NoDevice(Error):
    pass


class BackendError(Error):
    pass


class WorkspaceTooSmall(Error):
    pass


_ERRORS = {-1: InvalidArgument, -2: Unsupported, -3: OutOfMemory, -4: NoDevice, -5: BackendError,
           -6: WorkspaceTooSmall}


def check(status, ctx_handle, what):
    if status != 0:
        msg = lib.pa_context_last_error(ctx_handle).decode(errors="replace") if ctx_handle else ""
        raise _ERRORS.get(status, Error)(status, what, msg)


def invalid(what, message):
    """An argument the binding rejects before calling the library."""
    return InvalidArgument(-1, what, message)


def dtype_code(d):
    if isinstance(d, int) and d in DTYPE_NAMES:
        return d
    code = DTYPES.get(str(d).replace("torch.", ""))
    if code is None:
        raise invalid("dtype", f"{d!r} is not one of {', '.join(DTYPE_NAMES.values())}")
    return code


def _stream_handle(stream):
    """cudaStream_t as an int from an int, a torch.cuda.Stream or a cupy Stream."""
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            stream = getattr(stream, attr)
            break
    if not isinstance(stream, int):
        raise TypeError(f"stream: expected an int handle, torch.cuda.Stream or cupy Stream, "
                        f"got {type(stream).__name__}")
    return stream or _CUDA_STREAM_LEGACY


class Context:
    """One device and one queue. backend: auto | cpu | cuda | opencl.
    stream (CUDA): the caller's stream (int handle, torch.cuda.Stream or cupy
    Stream); work is enqueued on it, and tensors taken through DLPack are
    handed over on it. Without one a CUDA context uses the legacy default
    stream, so it is ordered with the caller's work there too. options:
    "key=value,..." as the README's configuration table lists."""

    def __init__(self, backend="auto", device=-1, stream=None, num_threads=0, cache_dir=None,
                 options=None):
        if backend not in BACKENDS:
            raise invalid("Context", f"backend={backend!r}: expected one of {list(BACKENDS)}")
        self._handle = None
        self._children = weakref.WeakSet()  # plans and buffers, closed before the context
        self._stream = None if stream is None else _stream_handle(stream)
        self._device = device
        self._options = options.encode() if options else None
        self._create(BACKENDS[backend], device, num_threads, cache_dir)
        if self.backend == "cuda" and self._stream is None:
            # A context that made its own stream could not name it to DLPack
            # producers: take the legacy default stream instead.
            self.close()
            self._stream = _CUDA_STREAM_LEGACY
            self._create(BACKENDS["cuda"], device, num_threads, cache_dir)

    def _create(self, backend, device, num_threads, cache_dir):
        d = ContextDesc(backend, device, self._stream, num_threads,
                        cache_dir.encode() if cache_dir else None, self._options)
        h = ctypes.c_void_p()
        check(lib.pa_context_create(ctypes.byref(d), ctypes.byref(h)), None, "pa_context_create")
        self._handle = h.value

    @property
    def handle(self):
        if not self._handle:
            raise invalid("Context", "used after close()")
        return self._handle

    @property
    def backend(self):
        return lib.pa_backend_name(lib.pa_context_backend(self.handle)).decode()

    @property
    def stream(self):
        """The CUDA stream handle work goes to (None on other backends)."""
        return self._stream if self.backend == "cuda" else None

    def info(self):
        i = DeviceInfo()
        check(lib.pa_context_info(self.handle, ctypes.byref(i)), self.handle, "pa_context_info")
        return {"name": i.name.decode(), "backend": self.backend,
                "compute_units": i.compute_units, "global_mem": i.global_mem,
                "shared_mem": i.shared_mem, "features": i.features.decode()}

    @property
    def last_error(self):
        return lib.pa_context_last_error(self.handle).decode(errors="replace")

    def synchronize(self):
        check(lib.pa_context_synchronize(self.handle), self.handle, "pa_context_synchronize")

    def close(self):
        """Destroys the context, and first the plans and buffers still made
        from it (they hold it open otherwise, so close() is optional)."""
        if self._handle:
            children = sorted(self._children, key=lambda c: isinstance(c, Buffer))
            for c in children:  # plans before buffers
                c.close()
            lib.pa_context_destroy(self._handle)
            self._handle = None

    def _alive(self):
        """False once closed: a child finalised after its context (garbage
        cycles end in any order) must not call into it."""
        return bool(self._handle)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<polyattn.Context {self.backend}: {self.info()['name']}>" if self._handle else \
            "<polyattn.Context closed>"

    # -- memory ---------------------------------------------------------------
    def buffer(self, nbytes):
        """A new device buffer of nbytes."""
        h = ctypes.c_void_p()
        check(lib.pa_buffer_create(self.handle, nbytes, ctypes.byref(h)), self.handle,
              "pa_buffer_create")
        return Buffer(self, h.value, nbytes, owned=True)

    def wrap(self, native, nbytes):
        """A buffer over memory the caller owns (host pointer, CUDA device
        pointer or cl_mem, as an int); the caller keeps it alive."""
        h = ctypes.c_void_p()
        check(lib.pa_buffer_wrap(self.handle, native, nbytes, ctypes.byref(h)), self.handle,
              "pa_buffer_wrap")
        return Buffer(self, h.value, nbytes, owned=False)

    def empty(self, shape, dtype="f32"):
        """A new contiguous tensor in its own device buffer (contents undefined)."""
        code = dtype_code(dtype)
        n = 1
        for s in shape:
            n *= int(s)
        buf = self.buffer(max(1, n) * lib.pa_dtype_size(code))
        return Tensor(buf, 0, code, shape)

    def from_host(self, array, dtype=None):
        """A device copy of a NumPy array (any backend). dtype "bf16" rounds
        a float array to bfloat16 (nearest even)."""
        import numpy as np
        a = np.ascontiguousarray(array)
        if dtype is not None and dtype_code(dtype) == BF16:
            a = _to_bf16_bits(a)
            code = BF16
        else:
            code = _numpy_dtype(a.dtype, "array")
            if dtype is not None and dtype_code(dtype) != code:
                raise invalid("from_host", f"array dtype {a.dtype} but dtype={dtype!r}")
        t = self.empty(a.shape, code)
        if a.nbytes:
            t.buffer.write(0, a)
        return t

    def tensor(self, obj, name="tensor", dtype=None):
        """obj as a polyattn.Tensor: a Tensor of this context as it is, or any
        object with __dlpack__ (NumPy, PyTorch, CuPy, JAX) viewed in place.
        dtype names the elements of a same-size DLPack type (an fp8 cache
        held as uint8)."""
        if obj is None:
            return None
        if isinstance(obj, Tensor):
            if obj.buffer.ctx is not self:
                raise invalid(name, "a Tensor of another context")
            return obj
        if not hasattr(obj, "__dlpack__"):
            raise TypeError(f"{name}: expected a polyattn.Tensor or an object with __dlpack__, "
                            f"got {type(obj).__name__}")
        return self._wrap_dlpack(obj, name, dtype)

    def _wrap_dlpack(self, obj, name, dtype=None):
        v = _dlpack.view(obj, self._stream if self.backend == "cuda" else None)
        ok = {"cpu": (_dlpack.CPU, _dlpack.CUDA_HOST),
              "cuda": (_dlpack.CUDA, _dlpack.CUDA_MANAGED)}.get(self.backend, ())
        if v.device_type not in ok:
            hint = " (copy it with ctx.from_host())" if v.device_type == _dlpack.CPU else ""
            raise invalid(name, f"memory on {v.device_name} cannot be used in place by a "
                          f"{self.backend} context{hint}")
        if self.backend == "cuda" and self._device >= 0 and v.device_id != self._device:
            raise invalid(name, f"on cuda:{v.device_id} but the context is on cuda:{self._device}")
        code, bits, lanes = v.dtype
        dt = _DL_DTYPES.get((code, bits))
        if dtype is not None and lanes == 1:
            want = dtype_code(dtype)
            if bits != 8 * lib.pa_dtype_size(want):
                raise invalid(name, f"dtype={dtype!r} but the elements have {bits} bits")
            dt = want
        if dt is None or lanes != 1:
            kind = {0: "int", 1: "uint", 2: "float", 4: "bfloat", 5: "complex", 6: "bool"}
            got = f"{kind.get(code, f'code {code} ')}{bits}" + (f"x{lanes}" if lanes != 1 else "")
            raise invalid(name, f"dtype {got} is not float32, float16, bfloat16 or int32")
        if not 1 <= len(v.shape) <= 4:
            raise invalid(name, f"ndim={len(v.shape)}: polyattn tensors have 1 to 4 dims")
        if any(s < 0 for s in v.strides):
            raise invalid(name, f"strides={v.strides}: negative strides are not supported")
        esize = lib.pa_dtype_size(dt)
        if 0 in v.shape or not v.data:
            buf = self.buffer(esize)  # nothing is read or written through it
        else:
            extent = 1 + sum((n - 1) * s for n, s in zip(v.shape, v.strides))
            buf = self.wrap(v.data, extent * esize)
        buf._keep = (v.capsule, obj)
        return Tensor(buf, 0, dt, v.shape, v.strides)


class Buffer:
    """Memory on a context's device (owned, or wrapping the caller's)."""

    def __init__(self, ctx, handle, nbytes, owned):
        self.ctx, self._handle, self.nbytes, self.owned = ctx, handle, nbytes, owned
        self._keep = None
        ctx._children.add(self)

    @property
    def handle(self):
        if not self._handle:
            raise invalid("Buffer", "used after close()")
        return self._handle

    @property
    def native(self):
        """Host pointer, CUDA device pointer or cl_mem, as an int."""
        return lib.pa_buffer_native(self.handle)

    def write(self, offset, data):
        """Blocking copy from host memory (bytes-like or a C-contiguous array)."""
        mv = memoryview(data).cast("B")
        src = (ctypes.c_char * len(mv)).from_buffer_copy(mv) if mv.readonly else \
            (ctypes.c_char * len(mv)).from_buffer(mv)
        check(lib.pa_buffer_write(self.handle, offset, src, len(mv)), self.ctx.handle,
              "pa_buffer_write")

    def read(self, offset, nbytes):
        """Blocking copy to host memory; returns bytes."""
        dst = ctypes.create_string_buffer(nbytes)
        check(lib.pa_buffer_read(self.handle, offset, dst, nbytes), self.ctx.handle,
              "pa_buffer_read")
        return dst.raw

    def close(self):
        if self._handle and self.ctx._alive():
            lib.pa_buffer_destroy(self._handle)
        self._handle = None
        self._keep = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Tensor:
    """A strided view into a Buffer: dtype code, shape and strides (elements),
    offset (bytes). Made by Context.tensor / empty / from_host."""

    def __init__(self, buffer, offset, dtype, shape, strides=None):
        self.buffer, self.offset, self.dtype = buffer, offset, dtype
        self.shape = tuple(int(s) for s in shape)
        if strides is None:
            st, acc = [], 1
            for n in reversed(self.shape):
                st.append(acc)
                acc *= n
            strides = reversed(st)
        self.strides = tuple(int(s) for s in strides)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def dtype_name(self):
        return DTYPE_NAMES[self.dtype]

    def struct(self):
        t = PaTensor()
        t.buf, t.offset, t.dtype, t.ndim = self.buffer.handle, self.offset, self.dtype, self.ndim
        for i, (n, s) in enumerate(zip(self.shape, self.strides)):
            t.shape[i], t.stride[i] = n, s
        return t

    def numpy(self):
        """A NumPy copy (bf16 comes back as float32); waits for queued work."""
        import numpy as np
        self.buffer.ctx.synchronize()
        npdt = {F32: np.float32, F16: np.float16, BF16: np.uint16, I32: np.int32,
                FP8_E4M3: np.uint8, FP8_E5M2: np.uint8}[self.dtype]  # fp8: the codes
        if 0 in self.shape:
            return np.zeros(self.shape, np.float32 if self.dtype == BF16 else npdt)
        extent = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.strides))
        raw = np.frombuffer(self.buffer.read(self.offset, extent * np.dtype(npdt).itemsize), npdt)
        a = np.lib.stride_tricks.as_strided(
            raw, self.shape, [s * raw.itemsize for s in self.strides]).copy()
        if self.dtype == BF16:
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a

    def __repr__(self):
        return f"<polyattn.Tensor {self.dtype_name} {list(self.shape)} strides {list(self.strides)}>"


def _numpy_dtype(dt, name):
    import numpy as np
    m = {np.dtype(np.float32): F32, np.dtype(np.float16): F16, np.dtype(np.int32): I32}
    if dt not in m:
        raise invalid(name, f"NumPy dtype {dt} is not float32, float16 or int32")
    return m[dt]


def _to_bf16_bits(a):
    """float array -> uint16 bfloat16 bits, round to nearest even."""
    import numpy as np
    u = np.ascontiguousarray(a, np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(a), np.uint16(0x7FC0), r)
