"""NumPy float64 references, written from the header's formulas."""
import numpy as np


def attention(q, k, v, causal=False, window_left=-1, window_right=-1, sink_tokens=0, scale=0.0,
              softcap=0.0, alibi=None, sinks=None, mask=None):
    """One request: q [Sq, Hq, D], k [Sk, Hkv, D], v [Sk, Hkv, Dv] ->
    out [Sq, Hq, Dv], lse [Sq, Hq]. mask [Hm, Sq, Sk]."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    sq, hq, d = q.shape
    sk, hkv, _ = k.shape
    g = hq // hkv
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("ihd,jhd->hij", q, k) * (scale or 1.0 / np.sqrt(d))
    if softcap:
        s = softcap * np.tanh(s / softcap)
    i, j, off = np.arange(sq)[:, None], np.arange(sk)[None, :], sk - sq
    if alibi is not None:
        s = s - np.asarray(alibi, np.float64)[:, None, None] * np.abs(i + off - j)
    if mask is not None:
        s = s + np.asarray(mask, np.float64)
    vis = np.ones((sq, sk), bool)
    if causal:
        vis &= j <= i + off
    win = ((window_left < 0) | (j >= i + off - window_left)) & \
        ((window_right < 0) | (j <= i + off + window_right))
    vis &= (j < sink_tokens) | win
    s = np.where(vis[None], s, -np.inf)
    if sinks is not None:
        sink = np.broadcast_to(np.asarray(sinks, np.float64)[:, None, None], (hq, sq, 1))
        s_all = np.concatenate([s, sink], axis=2)
    else:
        s_all = s
    m = s_all.max(axis=2, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m)
    den = np.exp(s_all - m).sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        out = np.einsum("hij,jhd->ihd", p / np.where(den > 0, den, 1), v)  # masked rows: p = 0
        lse = np.log(den[..., 0]) + m[..., 0]
    return out, lse.T


def merge(vs, lses):
    """Partials vs [N, ..., D], lses [N, ...] -> out [..., D], lse [...]."""
    vs, lses = np.asarray(vs, np.float64), np.asarray(lses, np.float64)
    m = lses.max(axis=0)
    mm = np.where(np.isfinite(m), m, 0.0)
    w = np.exp(lses - mm)
    den = w.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den[..., None] > 0, (w[..., None] * vs).sum(axis=0) /
                       np.where(den > 0, den, 1)[..., None], 0.0)
        lse = np.where(den > 0, np.log(den) + mm, -np.inf)
    return out, lse


def rel_l2(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.isfinite(got).all(), "non-finite output"
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
