"""pa_kv_append / pa_mla_append and fp8 caches through the binding, where the
loaded library has them (CPU backend, NumPy)."""

import numpy as np
import pytest

import polyattn as pa
from reference import attention as ref, rel_l2

if not pa.HAS_APPEND:
    pytest.skip("the loaded libpolyattn has no pa_kv_append", allow_module_level=True)
from polyattn._lib import lib  # noqa: E402

rng = np.random.default_rng(5)


def test_kv_append_slots(ctx):
    pages, page, H, D, T = 4, 8, 2, 16, 5
    kc = np.full((pages, page, H, D), 9.0, np.float32)
    vc = np.full_like(kc, 9.0)
    k = rng.standard_normal((T, H, D)).astype(np.float32)
    v = rng.standard_normal((T, H, D)).astype(np.float32)
    slots = np.array([0, 9, -1, 31, 17], np.int32)
    ctx.kv_append(k, v, slots, kc, vc)
    for t, s in enumerate(slots):
        if s >= 0:
            assert (kc[s // page, s % page] == k[t]).all() and (vc[s // page, s % page] == v[t]).all()
    written = np.zeros(pages * page, bool)
    written[slots[slots >= 0]] = True
    assert (kc.reshape(-1, H, D)[~written] == 9.0).all()


def test_kv_append_out_of_range_writes_nothing(ctx):
    kc = np.zeros((2, 4, 1, 8), np.float32)
    k = np.ones((1, 1, 8), np.float32)
    with pytest.raises(pa.InvalidArgument, match="slot"):
        ctx.kv_append(k, k, np.array([8], np.int32), kc, kc.copy())
    assert not kc.any()


def test_fp8_cache_decode_attention(ctx):
    """Append into an e4m3 cache (uint8 codes), then paged decode over it vs
    the reference on the decoded cache."""
    pages, page, Hq, Hkv, D = 3, 16, 4, 2, 64
    lens = [20, 11]
    table = np.array([[2, 0], [1, 0]], np.int32)
    codes = lambda a: ctx.tensor(a, "cache", dtype="fp8_e4m3")  # noqa: E731
    kc8, vc8 = np.zeros((pages, page, Hkv, D), np.uint8), np.zeros((pages, page, Hkv, D), np.uint8)
    ks, vs = np.array([0.05], np.float32), np.array([0.02], np.float32)
    slots = np.concatenate([[table[b, p // page] * page + p % page for p in range(n)]
                            for b, n in enumerate(lens)]).astype(np.int32)
    k = rng.standard_normal((len(slots), Hkv, D)).astype(np.float32)
    v = rng.standard_normal((len(slots), Hkv, D)).astype(np.float32)
    ctx.kv_append(k, v, slots, codes(kc8), codes(vc8), k_scale=ks, v_scale=vs)
    table8 = np.array([lib.pa_fp8_decode(4, c) for c in range(256)], np.float64)
    assert np.abs(table8[kc8[table[0, 0]][0]] * ks[0] - k[0]).max() < 0.07 * 4
    q = rng.standard_normal((2, Hq, D)).astype(np.float32)
    out = np.zeros_like(q)
    plan = ctx.attention_plan(Hq, Hkv, D, "f32", kv_dtype="fp8_e4m3", page_size=page,
                              seqlens_q=[1, 1], seqlens_k=lens)
    plan.run(q, codes(kc8), codes(vc8), out, block_table=table, k_scale=ks, v_scale=vs)
    kd, vd = table8[kc8] * ks[0], table8[vc8] * vs[0]
    for b, n in enumerate(lens):
        rows = (table[b, :, None] * page + np.arange(page)).reshape(-1)[:n]
        o, _ = ref(q[b:b + 1], kd.reshape(-1, Hkv, D)[rows], vd.reshape(-1, Hkv, D)[rows])
        assert rel_l2(out[b], o[0]) < 1e-5


def test_mla_append(ctx):
    pages, page, Dc, Dr = 2, 4, 32, 8
    ckc, kpc = np.zeros((pages, page, Dc), np.float32), np.zeros((pages, page, Dr), np.float32)
    ckv, kpe = rng.standard_normal((2, Dc)).astype(np.float32), \
        rng.standard_normal((2, Dr)).astype(np.float32)
    ctx.mla_append(ckv, kpe, np.array([5, 0], np.int32), ckc, kpc)
    assert (ckc[1, 1] == ckv[0]).all() and (kpc[0, 0] == kpe[1]).all()
