"""MLA decode, head GEMM and the three merges vs float64 references (CPU)."""
import numpy as np
import pytest

from reference import attention as ref, merge, rel_l2

rng = np.random.default_rng(11)


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("sq", [1, 2])
def test_mla_paged(ctx, sq):
    """DeepSeek shapes (512/64), two requests, MTP (sq = 2, causal)."""
    H, Dc, Dr, page = 16, 512, 64, 16
    lens_k = [37, 20]
    npages = [-(-n // page) for n in lens_k]
    table = np.array([[2, 0, 4], [1, 3, 0]], np.int32)[:, :max(npages)]
    ckv, kpe = rand(5, page, Dc) * 0.1, rand(5, page, Dr) * 0.1
    T = 2 * sq
    q_nope, q_pe = rand(T, H, Dc), rand(T, H, Dr)
    out = np.zeros((T, H, Dc), np.float32)
    lse = np.zeros((T, H), np.float32)
    plan = ctx.mla_plan(H, Dc, Dr, "f32", page_size=page, seqlens_q=[sq, sq], seqlens_k=lens_k,
                        causal=True, return_lse=True)
    plan.run(q_nope, q_pe, ckv, kpe, table, out, lse=lse)
    for b in range(2):
        rows = (table[b, :, None] * page + np.arange(page)).reshape(-1)[:lens_k[b]]
        k = np.concatenate([ckv.reshape(-1, Dc)[rows], kpe.reshape(-1, Dr)[rows]], 1)[:, None]
        q = np.concatenate([q_nope, q_pe], 2)[b * sq:(b + 1) * sq]
        o, l = ref(q, k, ckv.reshape(-1, Dc)[rows][:, None], causal=True)
        assert rel_l2(out[b * sq:(b + 1) * sq], o) < 1e-5
        assert np.allclose(lse[b * sq:(b + 1) * sq], l, atol=1e-4)


def test_head_gemm_transposed_weight(ctx):
    T, H, K, N = 5, 4, 128, 96
    x, wt = rand(T, H, K), rand(H, N, K)
    w = wt.transpose(0, 2, 1)  # [H, K, N] with stride 1 on K
    y = np.zeros((T, H, N), np.float32)
    ctx.head_gemm(x, w, y)
    assert rel_l2(y, np.einsum("thk,hkn->thn", x.astype(np.float64), w)) < 1e-5


def test_merges(ctx):
    T, N, H, D = 6, 3, 4, 32
    v, s = rand(T, N, H, D), rand(T, N, H)
    s[0, :, 0] = -np.inf  # a row of empty states: o = 0, lse = -inf
    want_o, want_l = merge(v.transpose(1, 0, 2, 3), s.transpose(1, 0, 2))
    out, lse = np.zeros((T, H, D), np.float32), np.zeros((T, H), np.float32)
    ctx.merge_states(v, s, out, lse)
    assert rel_l2(out, want_o) < 1e-5 and np.allclose(lse, want_l, atol=1e-5)
    assert not out[0, 0].any() and lse[0, 0] == -np.inf

    out2 = np.zeros((T, H, D), np.float32)
    a, b = np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1])
    la, lb = np.ascontiguousarray(s[:, 0]), np.ascontiguousarray(s[:, 1])
    ctx.merge_state_pair(a, la, b, lb, out2)  # no lse_out
    assert rel_l2(out2, merge([a, b], [la, lb])[0]) < 1e-5

    indptr = np.array([0, 2, 2, 5], np.int32)  # rows of 2, 0 and 3 partials
    vp, sp = rand(5, H, D), rand(5, H)
    out3, lse3 = np.zeros((3, H, D), np.float32), np.zeros((3, H), np.float32)
    ctx.merge_states_varlen(vp, sp, indptr, out3, lse3)
    for r in range(3):
        o, l = merge(vp[indptr[r]:indptr[r + 1]], sp[indptr[r]:indptr[r + 1]]) \
            if indptr[r + 1] > indptr[r] else (np.zeros((H, D)), np.full(H, -np.inf))
        assert np.allclose(out3[r], o, atol=1e-5) and np.allclose(lse3[r], l, atol=1e-5)
