"""Finds and loads libpolyattn, and declares its C API for ctypes.

ctypes rather than cffi: it ships with Python (no dependency, nothing to
compile at install or import time), and the API is a few dozen functions over
plain structs, which ctypes declares as easily as cffi's ABI mode would.
The structs below mirror include/polyattn.h; tests/test_abi.py compiles a
program against the header and checks every size and offset.
"""
import ctypes
import ctypes.util
import glob
import os

PA_MAX_DIMS = 4
c_int, c_float, c_size_t, c_int64, c_void_p = (ctypes.c_int, ctypes.c_float, ctypes.c_size_t,
                                               ctypes.c_int64, ctypes.c_void_p)
P_i32 = ctypes.POINTER(ctypes.c_int32)


def _candidates():
    """Where the library may be, in order: $POLYATTN_LIBRARY (a file),
    $POLYATTN_BUILD_DIR (a meson build folder), the system's search path
    (an installed libpolyattn), then build*/ folders of the source tree this
    package sits in (python/ beside meson.build)."""
    env = os.environ.get("POLYATTN_LIBRARY")
    if env:
        yield env
        return
    bdir = os.environ.get("POLYATTN_BUILD_DIR")
    if bdir:
        yield from sorted(glob.glob(os.path.join(bdir, "libpolyattn.so*")))
        yield os.path.join(bdir, "libpolyattn.dylib")
        return
    yield "libpolyattn.so.0"
    found = ctypes.util.find_library("polyattn")
    if found:
        yield found
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.exists(os.path.join(root, "meson.build")):
        yield from sorted(glob.glob(os.path.join(root, "build*", "libpolyattn.so")),
                          key=os.path.getmtime, reverse=True)


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path}: {e}")
    raise ImportError("polyattn: libpolyattn not found; set POLYATTN_LIBRARY to the .so or "
                      "POLYATTN_BUILD_DIR to a meson build folder. Tried:\n  " +
                      "\n  ".join(tried or ["(nothing)"]))


lib, path = _load()
# The fp8 / append API (pa_kv_append, k_scale and v_scale in the run
# arguments) is used where the loaded library has it: the argument structs
# grow only then, so the binding works with a library from before it too.
HAS_APPEND = hasattr(lib, "pa_kv_append")


class DeviceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 128), ("backend", c_int), ("compute_units", c_int),
                ("global_mem", c_int64), ("shared_mem", c_int64),
                ("features", ctypes.c_char * 128)]


class ContextDesc(ctypes.Structure):
    _fields_ = [("backend", c_int), ("device", c_int), ("native_queue", c_void_p),
                ("num_threads", c_int), ("cache_dir", ctypes.c_char_p),
                ("options", ctypes.c_char_p)]


class PaTensor(ctypes.Structure):
    _fields_ = [("buf", c_void_p), ("offset", c_size_t), ("dtype", c_int), ("ndim", c_int),
                ("shape", c_int64 * PA_MAX_DIMS), ("stride", c_int64 * PA_MAX_DIMS)]


class AttentionDesc(ctypes.Structure):
    _fields_ = [("num_q_heads", c_int), ("num_kv_heads", c_int), ("head_dim_qk", c_int),
                ("head_dim_v", c_int), ("q_dtype", c_int), ("kv_dtype", c_int),
                ("o_dtype", c_int), ("causal", c_int), ("window_left", c_int),
                ("window_right", c_int), ("sink_tokens", c_int), ("scale", c_float),
                ("softcap", c_float), ("page_size", c_int), ("num_splits", c_int),
                ("kv_chunk", c_int), ("flags", ctypes.c_uint)]


class Batch(ctypes.Structure):
    _fields_ = [("batch_size", c_int), ("seqlens_q", P_i32), ("seqlens_k", P_i32),
                ("cu_seqlens_q", P_i32), ("cu_seqlens_k", P_i32)]


class AttentionArgs(ctypes.Structure):
    _fields_ = [(n, PaTensor) for n in ("q", "k", "v", "out", "block_table", "lse", "sinks",
                                         "alibi_slopes", "mask") +
                (("k_scale", "v_scale") if HAS_APPEND else ())]


class MlaDesc(ctypes.Structure):
    _fields_ = [("num_heads", c_int), ("head_dim_ckv", c_int), ("head_dim_kpe", c_int),
                ("q_dtype", c_int), ("kv_dtype", c_int), ("o_dtype", c_int),
                ("page_size", c_int), ("causal", c_int), ("scale", c_float),
                ("num_splits", c_int), ("kv_chunk", c_int), ("flags", ctypes.c_uint)]


class MlaArgs(ctypes.Structure):
    _fields_ = [(n, PaTensor) for n in ("q_nope", "q_pe", "ckv", "kpe", "block_table", "out",
                                         "lse") + (("kv_scale",) if HAS_APPEND else ())]


class KvAppendArgs(ctypes.Structure):
    _fields_ = [(n, PaTensor) for n in ("k", "v", "slot_mapping", "k_cache", "v_cache",
                                         "k_scale", "v_scale")]


class MlaAppendArgs(ctypes.Structure):
    _fields_ = [(n, PaTensor) for n in ("ckv", "kpe", "slot_mapping", "ckv_cache", "kpe_cache",
                                         "kv_scale")]



_P = ctypes.POINTER
_protos = {
    "pa_status_str": (ctypes.c_char_p, [c_int]),
    "pa_version": (None, [_P(c_int)] * 3),
    "pa_dtype_size": (c_size_t, [c_int]),
    "pa_backend_name": (ctypes.c_char_p, [c_int]),
    "pa_backend_compiled": (c_int, [c_int]),
    "pa_device_count": (c_int, [c_int, _P(c_int)]),
    "pa_device_get_info": (c_int, [c_int, c_int, _P(DeviceInfo)]),
    "pa_context_create": (c_int, [_P(ContextDesc), _P(c_void_p)]),
    "pa_context_destroy": (None, [c_void_p]),
    "pa_context_backend": (c_int, [c_void_p]),
    "pa_context_info": (c_int, [c_void_p, _P(DeviceInfo)]),
    "pa_context_last_error": (ctypes.c_char_p, [c_void_p]),
    "pa_context_synchronize": (c_int, [c_void_p]),
    "pa_buffer_create": (c_int, [c_void_p, c_size_t, _P(c_void_p)]),
    "pa_buffer_wrap": (c_int, [c_void_p, c_void_p, c_size_t, _P(c_void_p)]),
    "pa_buffer_destroy": (None, [c_void_p]),
    "pa_buffer_size": (c_size_t, [c_void_p]),
    "pa_buffer_write": (c_int, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "pa_buffer_read": (c_int, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "pa_buffer_native": (c_void_p, [c_void_p]),
    "pa_attention_desc_init": (None, [_P(AttentionDesc), c_int, c_int, c_int, c_int]),
    "pa_attention_plan": (c_int, [c_void_p, _P(AttentionDesc), _P(Batch), _P(c_void_p)]),
    "pa_plan_workspace_size": (c_size_t, [c_void_p]),
    "pa_plan_num_splits": (c_int, [c_void_p, c_int]),
    "pa_plan_destroy": (None, [c_void_p]),
    "pa_attention_run": (c_int, [c_void_p, _P(AttentionArgs), c_void_p]),
    "pa_mla_plan": (c_int, [c_void_p, _P(MlaDesc), _P(Batch), _P(c_void_p)]),
    "pa_mla_run": (c_int, [c_void_p, _P(MlaArgs), c_void_p]),
    "pa_head_gemm": (c_int, [c_void_p, _P(PaTensor), _P(PaTensor), _P(PaTensor)]),
    "pa_merge_state_pair": (c_int, [c_void_p] + [_P(PaTensor)] * 6),
    "pa_merge_states": (c_int, [c_void_p] + [_P(PaTensor)] * 4),
    "pa_merge_states_varlen": (c_int, [c_void_p] + [_P(PaTensor)] * 5),
}
if HAS_APPEND:
    _protos.update({
        "pa_kv_append": (c_int, [c_void_p, _P(KvAppendArgs)]),
        "pa_mla_append": (c_int, [c_void_p, _P(MlaAppendArgs)]),
        "pa_fp8_decode": (c_float, [c_int, ctypes.c_uint8]),
        "pa_fp8_encode": (ctypes.c_uint8, [c_int, c_float]),
    })
for _name, (_res, _args) in _protos.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args
