"""Attention through the binding vs the float64 reference, CPU backend
(zero-copy NumPy views) and, for the host-copy path, every backend present."""
import numpy as np
import pytest

import polyattn as pa
from reference import attention as ref, rel_l2

rng = np.random.default_rng(7)
TOL = {"f32": 1e-5, "f16": 2e-3}


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_padded_gqa(ctx, causal, dtype):
    B, S, Sk, Hq, Hkv, D = 2, 7, 13, 8, 2, 64
    q, k, v = rand(B, S, Hq, D, dtype=dtype), rand(B, Sk, Hkv, D, dtype=dtype), \
        rand(B, Sk, Hkv, D, dtype=dtype)
    out = np.full_like(q, np.nan)
    lse = np.full((B, S, Hq), np.nan, np.float32)
    ctx.attention(q, k, v, out, lse=lse, causal=causal)  # out, lse written in place
    for b in range(B):
        o, l = ref(q[b], k[b], v[b], causal=causal)
        assert rel_l2(out[b], o) < TOL["f32" if dtype == np.float32 else "f16"]
        assert np.allclose(lse[b], l, atol=1e-4)


def test_ragged_features(ctx):
    """cu_seqlens, window + sink tokens, softcap, ALiBi, sinks, head_dim_v."""
    lens_q, lens_k = [3, 1, 5], [9, 17, 5]
    cq, ck = np.cumsum([0] + lens_q), np.cumsum([0] + lens_k)
    Hq, Hkv, D, Dv = 6, 3, 40, 24
    q, k, v = rand(cq[-1], Hq, D), rand(ck[-1], Hkv, D), rand(ck[-1], Hkv, Dv)
    sinks, alibi = rand(Hq), np.abs(rand(Hq)) * 0.1
    out = np.zeros((cq[-1], Hq, Dv), np.float32)
    plan = ctx.attention_plan(Hq, Hkv, D, "f32", head_dim_v=Dv, cu_seqlens_q=cq, cu_seqlens_k=ck,
                              causal=True, window_left=4, sink_tokens=2, softcap=5.0,
                              sinks=True, alibi=True)
    plan.run(q, k, v, out, sinks=sinks, alibi_slopes=alibi)
    for b in range(3):
        o, _ = ref(q[cq[b]:cq[b + 1]], k[ck[b]:ck[b + 1]], v[ck[b]:ck[b + 1]], causal=True,
                   window_left=4, sink_tokens=2, softcap=5.0, sinks=sinks, alibi=alibi)
        assert rel_l2(out[cq[b]:cq[b + 1]], o) < 1e-5


def test_paged_splits_strided_views(ctx):
    """Paged K/V with a shuffled block table, split-KV forced, q and out as
    strided views into bigger arrays (no copies: the parent sees the result)."""
    B, Hq, Hkv, D, page = 3, 8, 2, 64, 16
    lens_k = np.array([40, 1, 77], np.int32)
    pages_per = -(-lens_k // page)
    perm = rng.permutation(int(pages_per.sum()) + 2)
    table = np.zeros((B, pages_per.max()), np.int32)
    n = 0
    for b in range(B):
        table[b, :pages_per[b]] = perm[n:n + pages_per[b]]
        n += pages_per[b]
    kc, vc = rand(len(perm), page, Hkv, D), rand(len(perm), page, Hkv, D)
    qbig = rand(B, 2 * Hq, D)
    q = qbig[:, ::2]  # stride 2 over heads
    outbig = np.zeros((B, Hq, 2 * D), np.float32)
    out = outbig[:, :, :D]
    plan = ctx.attention_plan(Hq, Hkv, D, "f32", page_size=page, seqlens_q=[1] * B,
                              seqlens_k=lens_k, num_splits=4)
    assert max(plan.num_splits(b) for b in range(B)) > 1
    plan.run(q, kc, vc, out, block_table=table)
    for b in range(B):
        rows = (table[b, :, None] * page + np.arange(page)).reshape(-1)[:lens_k[b]]
        o, _ = ref(q[b:b + 1], kc.reshape(-1, Hkv, D)[rows], vc.reshape(-1, Hkv, D)[rows])
        assert rel_l2(outbig[b, :, :D], o[0]) < 1e-5
    assert not outbig[:, :, D:].any()


def test_host_copies_every_backend(any_ctx):
    """from_host / Tensor.numpy(): the path for backends whose memory NumPy
    cannot view (OpenCL); bf16 rounded on the host."""
    B, S, H, D = 1, 5, 4, 64
    q, k, v = rand(B, S, H, D), rand(B, S, H, D), rand(B, S, H, D)
    tq, tk, tv = (any_ctx.from_host(x, "bf16") for x in (q, k, v))
    out = any_ctx.empty((B, S, H, D), "f32")
    any_ctx.attention(tq, tk, tv, out, causal=True)
    got = out.numpy()
    o, _ = ref(tq.numpy()[0], tk.numpy()[0], tv.numpy()[0], causal=True)
    assert rel_l2(got[0], o) < 1e-2


def test_errors_name_the_field_and_write_nothing(ctx):
    q, k = rand(1, 4, 4, 64), rand(1, 4, 2, 32)
    out = np.full_like(q, 7.0)
    with pytest.raises(pa.InvalidArgument, match=r"k\.shape\[3\]=32") as e:
        ctx.attention(q, k, k, out, head_dim_v=64)
    assert e.value.status == -1 and "PA_ERR_INVALID_ARGUMENT" in str(e.value)
    assert (out == 7.0).all()
    with pytest.raises(pa.InvalidArgument, match="float64"):
        ctx.attention(q.astype(np.float64), k, k, out)
    with pytest.raises(pa.InvalidArgument, match="negative strides"):
        ctx.attention(q[:, ::-1], k, k, out)
    with pytest.raises(TypeError, match="__dlpack__"):
        ctx.attention([1.0], k, k, out)
    with pytest.raises(pa.InvalidArgument, match="num_q_heads"):
        ctx.attention_plan(6, 4, 64, seqlens_q=[1], seqlens_k=[1])
    assert "num_q_heads" in ctx.last_error
