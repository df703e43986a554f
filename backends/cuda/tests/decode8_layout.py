#!/usr/bin/env python3
"""Host model of decode.cu's fp8 register path (dev.cuda.fp8_decode=1): builds the
swz8 ring, the permuted Q/K/V fragments and mma.sync m16n8k16 from its documented
fragment layout, and checks S = Q K^T (key 8t + 2tq + e = ring row 4tq + 2t + e),
O = P V (dim 16n + j = column n of n-tile j), and that the LDS.128 phases and the
padded merge-row stores are free of bank conflicts. Needs numpy; not part of the
meson suites (no GPU semantics beyond the fragment layout)."""
import numpy as np
rng=np.random.default_rng(0)
Q=rng.integers(-3,4,(16,128)).astype(float); K=rng.integers(-3,4,(16,128)).astype(float); V=rng.integers(-3,4,(16,128)).astype(float)
def swz8(r,ch): return ch ^ ((r&1)<<2) ^ (((r>>2)&3)<<1)
# ring: byte array [16 rows * 128]
def ring_of(M):
    R=np.zeros(16*128)
    for r in range(16):
        for ch in range(8):
            p=r*8+swz8(r,ch)
            R[p*16:(p+1)*16]=M[r,ch*16:(ch+1)*16]
    return R
KR,VR=ring_of(K),ring_of(V)
def ld16(R,r,ch):
    p=r*8+swz8(r,ch); return R[p*16:(p+1)*16]
def mma(Afr,Bfr):
    # Afr[lane] = (a0,a1,a2,a3) each pair; Bfr[lane]=(b0,b1) pairs -> C frags
    A=np.zeros((16,16)); B=np.zeros((16,8))
    for lane in range(32):
        g,tq=lane>>2,lane&3
        a0,a1,a2,a3=Afr[lane]; b0,b1=Bfr[lane]
        A[g,2*tq:2*tq+2]=a0; A[g+8,2*tq:2*tq+2]=a1; A[g,2*tq+8:2*tq+10]=a2; A[g+8,2*tq+8:2*tq+10]=a3
        B[2*tq:2*tq+2,g]=b0; B[2*tq+8:2*tq+10,g]=b1
    C=A@B
    out=[]
    for lane in range(32):
        g,tq=lane>>2,lane&3
        out.append((C[g,2*tq],C[g,2*tq+1],C[g+8,2*tq],C[g+8,2*tq+1]))
    return out
# Q frags
qf={}
for lane in range(32):
    qr,qt=lane>>2,lane&3
    for kk in range(8):
        d=64*(kk//4)+16*qt+4*(kk%4)
        qf[lane,kk]=(Q[qr,d:d+2],Q[qr+8,d:d+2],Q[qr,d+2:d+4],Q[qr+8,d+2:d+4])
S=[[np.zeros(4) for t in range(2)] for lane in range(32)]
for t in range(2):
    acc=[np.zeros(4) for _ in range(32)]
    for c in range(2):
        for mq in range(4):
            kk=4*c+mq
            Bfr=[]
            for lane in range(32):
                r0,tq=lane>>2,lane&3
                kr=4*(r0>>1)+2*t+(r0&1)
                x=ld16(KR,kr,4*c+tq)
                Bfr.append((x[4*mq:4*mq+2],x[4*mq+2:4*mq+4]))
            Cf=mma([qf[l,kk] for l in range(32)],Bfr)
            for l in range(32): acc[l]+=np.array(Cf[l])
    for l in range(32): S[l][t]=acc[l]
Sref=Q@K.T
ok=True
for l in range(32):
    r0,tq=l>>2,l&3
    for n in range(2):
        for e in range(4):
            row=r0+8*(e>>1); key=4*tq+2*n+(e&1)
            if abs(S[l][n][e]-Sref[row,key])>1e-9: ok=False
print("S ok",ok)
# PV: P = S
O=[[np.zeros(4) for j in range(16)] for l in range(32)]
Afr=[]
for l in range(32):
    s=S[l]
    Afr.append((np.array([s[0][0],s[0][1]]),np.array([s[0][2],s[0][3]]),np.array([s[1][0],s[1][1]]),np.array([s[1][2],s[1][3]])))
for j in range(16):
    Bfr=[]
    for l in range(32):
        r0,tq=l>>2,l&3
        vw=[ld16(VR,4*tq+i,r0) for i in range(4)]
        Bfr.append((np.array([vw[0][j],vw[1][j]]),np.array([vw[2][j],vw[3][j]])))
    Cf=mma(Afr,Bfr)
    for l in range(32): O[l][j]=np.array(Cf[l])
Oref=Sref@V
ok=True
OM=np.zeros((16,128))
for l in range(32):
    r0,tq=l>>2,l&3
    for x in range(2):
        r=r0+8*x
        for n in range(16):
            OM[r,32*tq+n]=O[l][n][2*x]; OM[r,32*tq+16+n]=O[l][n][2*x+1]
print("O ok",np.allclose(OM,Oref))
# bank check for om stores
for x in range(2):
  for n in range(16):
    banks=set()
    for l in range(32):
        r0,tq=l>>2,l&3; r=r0+8*x; d=32*tq+n
        banks.add((r*132+d+(d>>5))%32)
    assert len(banks)==32
print("om banks ok")
# K/V smem bank check (LDS.128 quarter-warp phases)
for t in range(2):
  for c in range(2):
    for ph in range(4):
      cols=set()
      for l in range(8*ph,8*ph+8):
        r0,tq=l>>2,l&3; kr=4*(r0>>1)+2*t+(r0&1); cols.add(swz8(kr,4*c+tq))
      assert len(cols)==8,(t,c,ph,cols)
for i in range(4):
  for ph in range(4):
    cols=set()
    for l in range(8*ph,8*ph+8):
      r0,tq=l>>2,l&3; vr=4*tq+i; cols.add(swz8(vr,r0))
    assert len(cols)==8
print("lds banks ok")
