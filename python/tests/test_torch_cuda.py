"""The binding on the CUDA backend with PyTorch CUDA tensors (zero-copy
through DLPack, on the caller's stream), against
torch.nn.functional.scaled_dot_product_attention. Skips without a GPU.
Runs under pytest, or alone (`python3 test_torch_cuda.py`) where the GPU
machine has no pytest."""
import contextlib
import re
import sys

import polyattn as pa

try:
    import torch
    GPU = torch.cuda.is_available() and pa.backend_compiled("cuda") and \
        pa.device_count("cuda") > 0
except ImportError:
    torch, GPU = None, False
WHY = "needs PyTorch with CUDA and polyattn built with CUDA on a GPU"
if not GPU and __name__ != "__main__":
    import pytest
    pytest.skip(WHY, allow_module_level=True)
F = torch.nn.functional if torch else None
_ctx = {}


def cuda_ctx():
    """One context on one side stream for the module's tests."""
    if not _ctx:
        _ctx["stream"] = torch.cuda.Stream()
        _ctx["ctx"] = pa.Context("cuda", stream=_ctx["stream"])
    return _ctx["ctx"], _ctx["stream"]


@contextlib.contextmanager
def raises(exc, match):
    try:
        yield
    except exc as e:
        assert re.search(match, str(e)), str(e)
    else:
        raise AssertionError(f"{exc.__name__} not raised")


def rel_l2(got, want):
    got, want = got.double(), want.double()
    assert torch.isfinite(got).all()
    return ((got - want).norm() / want.norm()).item()


def sdpa(q, k, v, causal):
    """q [Sq, Hq, D], k/v [Sk, Hkv, D] of one request, bottom-right causal."""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    sq, sk = q.shape[0], k.shape[0]
    mask = None
    if causal:
        i = torch.arange(sq, device=q.device)[:, None]
        j = torch.arange(sk, device=q.device)[None, :]
        mask = j <= i + sk - sq
    o = F.scaled_dot_product_attention(q.transpose(0, 1).float(), k.transpose(0, 1).float(),
                                       v.transpose(0, 1).float(), attn_mask=mask)
    return o.transpose(0, 1)


def test_bf16_gqa_padded():
    for causal in (False, True):
        bf16_gqa_padded(causal)


def bf16_gqa_padded(causal):
    ctx, stream = cuda_ctx()
    B, S, Hq, Hkv, D = 2, 129, 32, 8, 128
    with torch.cuda.stream(stream):
        q = torch.randn(B, S, Hq, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, S, Hkv, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, S, Hkv, D, device="cuda", dtype=torch.bfloat16)
        out = torch.full_like(q, float("nan"))
        ptr = out.data_ptr()
        ctx.attention(q, k, v, out, causal=causal)
        for b in range(B):
            assert rel_l2(out[b], sdpa(q[b], k[b], v[b], causal)) < 1e-2
    assert out.data_ptr() == ptr  # written in place


def test_ragged_on_current_stream():
    """Tensors made on the current stream, context on the same stream."""
    lens_q, lens_k = [5, 1, 64], [5, 300, 100]
    cq = torch.tensor([0] + lens_q).cumsum(0)
    ck = torch.tensor([0] + lens_k).cumsum(0)
    Hq, Hkv, D = 16, 2, 64
    q = torch.randn(int(cq[-1]), Hq, D, device="cuda", dtype=torch.float16)
    k = torch.randn(int(ck[-1]), Hkv, D, device="cuda", dtype=torch.float16)
    v = torch.randn_like(k)
    out = torch.empty_like(q)
    lse = torch.empty(int(cq[-1]), Hq, device="cuda", dtype=torch.float32)
    with pa.Context("cuda", stream=torch.cuda.current_stream()) as ctx:
        ctx.attention(q, k, v, out, lse=lse, cu_seqlens_q=cq, cu_seqlens_k=ck, causal=True)
        for b in range(3):
            qs, ks = slice(int(cq[b]), int(cq[b + 1])), slice(int(ck[b]), int(ck[b + 1]))
            assert rel_l2(out[qs], sdpa(q[qs], k[ks], v[ks], True)) < 2e-3


def test_paged_decode_via_gather():
    """bf16 decode over a shuffled paged cache vs SDPA on the gathered K/V."""
    ctx, stream = cuda_ctx()
    B, Hq, Hkv, D, page = 4, 32, 8, 128, 16
    lens = [100, 37, 250, 5]
    per = [-(-n // page) for n in lens]
    with torch.cuda.stream(stream):
        perm = torch.randperm(sum(per) + 3, device="cuda").to(torch.int32)
        table = torch.zeros(B, max(per), dtype=torch.int32, device="cuda")
        n = 0
        for b in range(B):
            table[b, :per[b]] = perm[n:n + per[b]]
            n += per[b]
        kc = torch.randn(len(perm), page, Hkv, D, device="cuda", dtype=torch.bfloat16)
        vc = torch.randn_like(kc)
        q = torch.randn(B, Hq, D, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        plan = ctx.attention_plan(Hq, Hkv, D, "bf16", page_size=page, seqlens_q=[1] * B,
                                  seqlens_k=lens)
        plan.run(q, kc, vc, out, block_table=table)
        for b in range(B):
            rows = (table[b, :per[b], None].long() * page +
                    torch.arange(page, device="cuda")).reshape(-1)[:lens[b]]
            k, v = kc.reshape(-1, Hkv, D)[rows], vc.reshape(-1, Hkv, D)[rows]
            assert rel_l2(out[b:b + 1], sdpa(q[b:b + 1], k, v, False)) < 1e-2


def test_cpu_tensor_on_cuda_context_is_refused():
    ctx, _ = cuda_ctx()
    q = torch.randn(1, 1, 4, 64)
    with raises(pa.InvalidArgument, "cannot be used in place"):
        ctx.attention(q, q, q, q)


def test_merge_pair_cuda():
    ctx, stream = cuda_ctx()
    with torch.cuda.stream(stream):
        a, b = (torch.randn(8, 4, 64, device="cuda") for _ in range(2))
        la, lb = (torch.randn(8, 4, device="cuda") for _ in range(2))
        out, lse = torch.empty_like(a), torch.empty_like(la)
        ctx.merge_state_pair(a, la, b, lb, out, lse)
        want_l = torch.logaddexp(la, lb)
        want = (a * (la - want_l).exp()[..., None] + b * (lb - want_l).exp()[..., None])
        assert rel_l2(out, want) < 1e-5 and torch.allclose(lse, want_l, atol=1e-5)


if __name__ == "__main__":
    if not GPU:
        print(f"skipped: {WHY}")
        sys.exit(0)
    tests = [f for n, f in sorted(globals().items()) if n.startswith("test_")]
    for f in tests:
        f()
        print(f"{f.__name__} passed")
    print(f"{len(tests)} passed")
