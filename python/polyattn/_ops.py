"""Plans and runs of every operation: attention, MLA decode, head GEMM and
the three merges. Each run takes polyattn Tensors or anything with
__dlpack__ (viewed in place; see Context.tensor)."""
import ctypes

from ._core import Context, Tensor, Unsupported, check, dtype_code, invalid
from ._lib import (HAS_APPEND, AttentionArgs, AttentionDesc, Batch, KvAppendArgs, MlaAppendArgs,
                   MlaArgs, MlaDesc, PaTensor, lib)

RETURN_LSE, DETERMINISTIC, HAS_SINKS, HAS_ALIBI, HAS_MASK = 1, 2, 4, 8, 16


def _i32(values, name):
    if values is None:
        return None
    vals = [int(x) for x in (values.tolist() if hasattr(values, "tolist") else values)]
    bad = [x for x in vals if not -2**31 <= x < 2**31]
    if bad:
        raise invalid(name, f"{bad[0]} does not fit in int32")
    return (ctypes.c_int32 * max(1, len(vals)))(*vals), len(vals)


def _batch(seqlens_q, seqlens_k, cu_seqlens_q, cu_seqlens_k):
    arrs = [_i32(x, n) for x, n in ((seqlens_q, "seqlens_q"), (seqlens_k, "seqlens_k"),
                                    (cu_seqlens_q, "cu_seqlens_q"), (cu_seqlens_k, "cu_seqlens_k"))]
    sizes = [a[1] - (i >= 2) for i, a in enumerate(arrs) if a]
    if not sizes:
        raise invalid("batch", "give seqlens_q/seqlens_k or cu_seqlens_q/cu_seqlens_k")
    if len(set(sizes)) != 1:
        raise invalid("batch", f"lengths disagree on the batch size: {sizes}")
    b = Batch(sizes[0], *[a[0] if a else None for a in arrs])
    return b, arrs  # arrs keep the ctypes arrays alive


class Plan:
    """Host work done once for one batch; run() enqueues on the context."""

    def __init__(self, ctx, handle, run_fn, args_type, names):
        self.ctx, self._handle = ctx, handle
        self._run_fn, self._args_type, self._names = run_fn, args_type, names
        self._last = None
        ctx._children.add(self)

    @property
    def handle(self):
        if not self._handle:
            raise invalid("Plan", "used after close()")
        return self._handle

    @property
    def workspace_size(self):
        return lib.pa_plan_workspace_size(self.handle)

    def num_splits(self, b):
        return lib.pa_plan_num_splits(self.handle, b)

    def run(self, workspace=None, **tensors):
        unknown = set(tensors) - set(self._names)
        if unknown:
            raise TypeError(f"run: unknown tensors {sorted(unknown)}; known: {self._names}")
        args = self._args_type()
        kept = []
        for name, obj in tensors.items():
            t = self.ctx.tensor(obj, name)
            if t is not None:
                setattr(args, name, t.struct())
                kept.append(t)
        ws = workspace.buffer if isinstance(workspace, Tensor) else workspace
        check(self._run_fn(self.handle, ctypes.byref(args), ws.handle if ws else None),
              self.ctx.handle, self._run_fn.__name__)
        self._last = kept  # views stay valid until the next run (GPU work is async)

    def close(self):
        if self._handle and self.ctx._alive():
            if self._last is not None and self.ctx.backend != "cpu":
                self.ctx.synchronize()  # a queued run may still read the plan's schedule
            lib.pa_plan_destroy(self._handle)
        self._handle = None
        self._last = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _some(**kw):
    return {k: v for k, v in kw.items() if v is not None}


class AttentionPlan(Plan):
    def run(self, q, k, v, out, *, block_table=None, lse=None, sinks=None, alibi_slopes=None,
            mask=None, k_scale=None, v_scale=None, workspace=None):
        """k_scale / v_scale: fp8 caches (a library with the fp8 API)."""
        super().run(workspace, q=q, k=k, v=v, out=out, block_table=block_table, lse=lse,
                    sinks=sinks, alibi_slopes=alibi_slopes, mask=mask,
                    **_some(k_scale=k_scale, v_scale=v_scale))


class MlaPlan(Plan):
    def run(self, q_nope, q_pe, ckv, kpe, block_table, out, *, lse=None, kv_scale=None,
            workspace=None):
        super().run(workspace, q_nope=q_nope, q_pe=q_pe, ckv=ckv, kpe=kpe,
                    block_table=block_table, out=out, lse=lse, **_some(kv_scale=kv_scale))


def attention_plan(self, num_q_heads, num_kv_heads, head_dim, dtype="f32", *, seqlens_q=None,
                   seqlens_k=None, cu_seqlens_q=None, cu_seqlens_k=None, head_dim_v=None,
                   kv_dtype=None, o_dtype=None, causal=False, window_left=-1, window_right=-1,
                   sink_tokens=0, scale=0.0, softcap=0.0, page_size=0, num_splits=0, kv_chunk=0,
                   return_lse=False, deterministic=False, sinks=False, alibi=False, mask=False):
    """pa_attention_plan: the fields of pa_attention_desc as keywords, the
    batch as host integer sequences; sinks/alibi/mask say which optional
    inputs run() will get."""
    d = AttentionDesc()
    lib.pa_attention_desc_init(ctypes.byref(d), num_q_heads, num_kv_heads, head_dim,
                               dtype_code(dtype))
    if head_dim_v is not None:
        d.head_dim_v = head_dim_v
    if kv_dtype is not None:
        d.kv_dtype = dtype_code(kv_dtype)
    if o_dtype is not None:
        d.o_dtype = dtype_code(o_dtype)
    d.causal, d.window_left, d.window_right, d.sink_tokens = int(causal), window_left, \
        window_right, sink_tokens
    d.scale, d.softcap, d.page_size, d.num_splits, d.kv_chunk = scale, softcap, page_size, \
        num_splits, kv_chunk
    d.flags = (RETURN_LSE * bool(return_lse) | DETERMINISTIC * bool(deterministic) |
               HAS_SINKS * bool(sinks) | HAS_ALIBI * bool(alibi) | HAS_MASK * bool(mask))
    b, _keep = _batch(seqlens_q, seqlens_k, cu_seqlens_q, cu_seqlens_k)
    h = ctypes.c_void_p()
    check(lib.pa_attention_plan(self.handle, ctypes.byref(d), ctypes.byref(b), ctypes.byref(h)),
          self.handle, "pa_attention_plan")
    return AttentionPlan(self, h.value, lib.pa_attention_run, AttentionArgs,
                         [n for n, _ in AttentionArgs._fields_])


def mla_plan(self, num_heads, head_dim_ckv=512, head_dim_kpe=64, dtype="bf16", *, page_size,
             seqlens_q, seqlens_k, kv_dtype=None, o_dtype=None, causal=False, scale=0.0,
             num_splits=0, kv_chunk=0, return_lse=False, deterministic=False):
    """pa_mla_plan (absorbed MLA decode over a paged latent cache)."""
    code = dtype_code(dtype)
    d = MlaDesc(num_heads, head_dim_ckv, head_dim_kpe, code,
                code if kv_dtype is None else dtype_code(kv_dtype),
                code if o_dtype is None else dtype_code(o_dtype), page_size, int(causal),
                scale, num_splits, kv_chunk,
                RETURN_LSE * bool(return_lse) | DETERMINISTIC * bool(deterministic))
    b, _keep = _batch(seqlens_q, seqlens_k, None, None)
    h = ctypes.c_void_p()
    check(lib.pa_mla_plan(self.handle, ctypes.byref(d), ctypes.byref(b), ctypes.byref(h)),
          self.handle, "pa_mla_plan")
    return MlaPlan(self, h.value, lib.pa_mla_run, MlaArgs, [n for n, _ in MlaArgs._fields_])


def _call(self, fn, **tensors):
    structs, kept = [], []
    for name, obj in tensors.items():
        t = self.tensor(obj, name)
        structs.append(ctypes.byref(t.struct()) if t is not None else ctypes.byref(PaTensor()))
        kept.append(t)
    check(fn(self.handle, *structs), self.handle, fn.__name__)


def _append(self, fn, args_type, **tensors):
    if not HAS_APPEND:
        raise Unsupported(-2, fn, "the loaded libpolyattn has no paged-cache append")
    args, kept = args_type(), []
    for name, obj in tensors.items():
        t = self.tensor(obj, name)
        if t is not None:
            setattr(args, name, t.struct())
            kept.append(t)
    f = getattr(lib, fn)
    check(f(self.handle, ctypes.byref(args)), self.handle, fn)


def kv_append(self, k, v, slot_mapping, k_cache, v_cache, k_scale=None, v_scale=None):
    """pa_kv_append: k/v [T, Hkv, D] into paged caches at slot_mapping (i32
    [T], page * page_size + offset, -1 skips); fp8 caches take their scales."""
    _append(self, "pa_kv_append", KvAppendArgs, k=k, v=v, slot_mapping=slot_mapping,
            k_cache=k_cache, v_cache=v_cache, k_scale=k_scale, v_scale=v_scale)


def mla_append(self, ckv, kpe, slot_mapping, ckv_cache, kpe_cache, kv_scale=None):
    """pa_mla_append: ckv [T, Dc] and kpe [T, Dr] into the latent caches."""
    _append(self, "pa_mla_append", MlaAppendArgs, ckv=ckv, kpe=kpe, slot_mapping=slot_mapping,
            ckv_cache=ckv_cache, kpe_cache=kpe_cache, kv_scale=kv_scale)


def head_gemm(self, x, w, y):
    """y[t, h, :] = x[t, h, :] @ w[h, :, :] (pa_head_gemm)."""
    _call(self, lib.pa_head_gemm, x=x, w=w, y=y)


def merge_state_pair(self, a, lse_a, b, lse_b, out, lse_out=None):
    _call(self, lib.pa_merge_state_pair, a=a, lse_a=lse_a, b=b, lse_b=lse_b, out=out,
          lse_out=lse_out)


def merge_states(self, v, s, out, lse_out=None):
    _call(self, lib.pa_merge_states, v=v, s=s, out=out, lse_out=lse_out)


def merge_states_varlen(self, v, s, indptr, out, lse_out=None):
    _call(self, lib.pa_merge_states_varlen, v=v, s=s, indptr=indptr, out=out, lse_out=lse_out)


def attention(self, q, k, v, out, *, lse=None, block_table=None, seqlens_q=None, seqlens_k=None,
              cu_seqlens_q=None, cu_seqlens_k=None, sinks=None, alibi_slopes=None, mask=None,
              **desc):
    """Plan and run in one call, the desc read off the tensors: padded q
    [B, S, Hq, D] (lengths default to S and k's S), or ragged q [T, Hq, D] with
    the batch given; paged K/V when block_table is given (page size = k.shape[1]).
    Engines keep the plan instead (attention_plan) and run it every step."""
    tq, tk, tv = self.tensor(q, "q"), self.tensor(k, "k"), self.tensor(v, "v")
    paged = block_table is not None
    if tq.ndim == 4 and seqlens_q is None and cu_seqlens_q is None:
        seqlens_q = [tq.shape[1]] * tq.shape[0]
    if tq.ndim == 4 and not paged and seqlens_k is None and cu_seqlens_k is None:
        if tk.ndim != 4:
            raise invalid("k", f"ndim={tk.ndim}: padded q [B, S, H, D] needs padded k")
        seqlens_k = [tk.shape[1]] * tk.shape[0]
    desc.setdefault("page_size", tk.shape[1] if paged else 0)
    desc.setdefault("kv_dtype", tk.dtype)
    desc.setdefault("head_dim_v", tv.shape[-1])
    desc.setdefault("o_dtype", self.tensor(out, "out").dtype)
    plan = self.attention_plan(tq.shape[-2], tk.shape[-2], tq.shape[-1], tq.dtype,
                               seqlens_q=seqlens_q, seqlens_k=seqlens_k,
                               cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                               return_lse=lse is not None, sinks=sinks is not None,
                               alibi=alibi_slopes is not None, mask=mask is not None, **desc)
    plan.run(tq, tk, tv, out, block_table=block_table, lse=lse, sinks=sinks,
             alibi_slopes=alibi_slopes, mask=mask)
    return plan  # holds the views; dropping it waits for the run (Plan.close)


for _f in (attention_plan, mla_plan, head_gemm, merge_state_pair, merge_states,
           merge_states_varlen, attention, kv_append, mla_append):
    setattr(Context, _f.__name__, _f)
