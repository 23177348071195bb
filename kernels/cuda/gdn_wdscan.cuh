// gdn_wdscan.cuh — the gated delta rule backward's reverse state-gradient scan on Hopper warpgroup
// products (wgmma, wgmma.cuh): the twin of gdnb_dscan_kernel<KD, 64> (gdn_fast_bwd.cu; same
// arguments, same math, same roundings and summation order), run by gdn_fast_bwd.cu where the
// 64-column V tiles come in fours (wdscan_pick; pn_cuda_gdn_fast_bwd_debug_dscan forces a form).
//
// Why: the mma.sync scan runs one 8-warp block per (b·h, 64-column tile), one per SM (179 KB of
// shared memory at KD 96), so at B8 T4096 H12 V256 its 384 blocks take three waves of 64
// sequential chunks each, and every block loads the chunk's K, Q, A', P itself. Here a block of
// four warpgroups owns four consecutive tiles of one b·h (the forward's gdn_wscan.cuh design,
// GDN_NOTES §13): the chunk's K, Q, A', P and row scalars are loaded once per block and
// double-buffered, the block barrier at the top of a chunk is its only block-wide one, and the
// barriers inside a chunk are the warpgroup's own (named barrier 1 + w), so the warpgroups drift
// and overlap. 96 blocks: one wave.
//
// Per warpgroup the state gradient is held transposed, dSᵀ (64 state columns × KD) fp32, as the
// accumulator of the update (M = 64 fits one warpgroup for every KD), and copied to shared memory
// as bf16 after each chunk (the B operand of K dS). Per chunk n, in reverse (gdn_fast_bwd.cu's
// notation; rows Rs = {scale rq e^γ, rk e^γ, rk d, el}):
//   store dS (= dS1 of chunk n, bf16) to dhs          (from registers, movmatrix transposes)
//   dOb = bf16(dO), Dq = bf16(scale rq e^γ dO)       (dO fp32 fetched into T1..T2, see below)
//   Y  = diag(rk d) K dS + Pᵀ dO                      m64n64: K dS depth KD (K-major A, dSᵀ K-major
//                                                     B), rows scaled, then Pᵀ dO depth 64 (P as
//                                                     MN-major A, dO MN-major B) accumulates
//   dX = A'ᵀ Y, Dx = −diag(rk e^γ) dX                 m64n64, depth 64
//   dSᵀ ← el dSᵀ + Dqᵀ Q + Dxᵀ K                      m64nKD, depth 64, both operands MN-major,
//                                                     the Q and K steps alternating per 16 rows
// A and P hold zeros above the diagonal, so the whole products add exact zeros where the
// mma.sync scan skips the blocks; each element sums its products in the mma.sync scan's order,
// so the results are bit-identical (host emulation).
// Shared memory at KD = 96: K, Q, A', P twice (80 KB), the row scalars twice, and per warpgroup
// dSᵀ (12 KB) and two (64, 64) bf16 tiles (T1: dO → Y → Dx; T2: Dq): 194 KB (KD 128: 226 KB).
// The chunk's fp32 dO has no buffer of its own (four more 16 KB tiles would not fit): chunk
// n − 1's is fetched by cp.async into T1..T2 once chunk n's state update has read them, and
// converted in place at the top of chunk n − 1 (each thread reads its elements, a warpgroup
// barrier, then the bf16 stores).
#pragma once
#include "kernels/cuda/gdn_wscan.cuh"  // wscan_load, wscan_mm_s

#define GDNWD_NW 4  // 64-column tiles (warpgroups) per block

template <int KD>
struct wdscan_layout {
    static constexpr size_t kq = (size_t)GDNF_C * KD * 2, mm = (size_t)GDNF_C * GDNF_C * 2;
    static constexpr size_t o_q = kq, o_a = 2 * kq, o_p = o_a + mm, sh = o_p + mm;  // one stage
    static constexpr size_t o_r = 2 * sh;
    static constexpr size_t o_w = o_r + 2 * GDNF_C * 16;
    static constexpr size_t o_s = 0, o_t1 = kq, o_t2 = kq + mm, per = kq + 2 * mm;  // within a warpgroup's part
    static constexpr size_t total = o_w + GDNWD_NW * per;
};

template <int KD>
__global__ void __launch_bounds__(GDNW_THREADS *GDNWD_NW, 1) gdnw_dscan_kernel(const gdnb_dscan_args a) {
    using Lay = wdscan_layout<KD>;
    static_assert(KD == 64 || KD == 96 || KD == 128, "KD must be 64, 96 or 128");
    constexpr int NTH = GDNW_THREADS * GDNWD_NW;
    constexpr uint32_t KB = 16 * KD;  // bytes between row blocks of a (64, KD) tile
    unsigned char *sm = GDNF_SMEM;
    const int tid = threadIdx.x, wgi = tid >> 7, lane = tid & 31, warp = (tid & 127) >> 5;
    const int g = lane >> 2, t = lane & 3;
    unsigned char *own = sm + Lay::o_w + wgi * Lay::per;
    unsigned char *St = own + Lay::o_s, *T1 = own + Lay::o_t1, *T2 = own + Lay::o_t2;
    float4 *Rb = reinterpret_cast<float4 *>(sm + Lay::o_r);
    const int nblk = a.ntiles / GDNWD_NW;  // blocks per b·h (the host guarantees ntiles % 4 == 0)
    const int64_t bh = blockIdx.x / nblk;
    const int b = (int)(bh / a.H), h = (int)(bh % a.H), c0 = ((int)(blockIdx.x % nblk) * GDNWD_NW + wgi) * GDNW_BV;
    const int64_t KV = (int64_t)KD * a.V, kst = (int64_t)a.H * KD;
    // This thread's fragment element (row 16·warp + g + 8h, column 8i + 2t) of a tiled (64, 64)
    // tile is at xo + 1024 h + 128 i, of a tiled (64, KD) tile at so + 16 KD h + 128 i.
    const int xo = 2048 * warp + 16 * g + 4 * t, so = 32 * KD * warp + 16 * g + 4 * t;

    // dSᵀ: this thread's (state column v = 16·warp + g + 8h, feature f = 8i + 2t + e).
    float s[KD / 2];
    auto store_state = [&] { wscan_store_state<KD>(St, so, s); };
    wscan_each_state<KD>(warp, g, t,
                         [&](int x, int v, int f) { s[x] = a.dht ? a.dht[bh * KV + (int64_t)f * a.V + c0 + v] : 0.f; });
    store_state();

    // Chunk n's K, Q, A', P (stage (NT − 1 − n) & 1) and rows, loaded by the whole block.
    auto shared_tiles = [&](int n) { return sm + ((a.NT - 1 - n) & 1) * Lay::sh; };
    auto load = [&](int n) {
        const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
        const int64_t row0 = (int64_t)b * a.T + t0, ci = bh * a.NT + n;
        unsigned char *Kt = shared_tiles(n);
        wscan_load<KD, NTH>(Kt, a.k + (row0 * a.H + h) * KD, kst, nr, KD, tid);
        wscan_load<KD, NTH>(Kt + Lay::o_q, a.q + (row0 * a.H + h) * KD, kst, nr, KD, tid);
        wscan_load<GDNF_C, NTH>(Kt + Lay::o_a, a.A + ci * GDNF_C * GDNF_C, GDNF_C, GDNF_C, GDNF_C, tid);
        wscan_load<GDNF_C, NTH>(Kt + Lay::o_p, a.P + ci * GDNF_C * GDNF_C, GDNF_C, GDNF_C, GDNF_C, tid);
        if (tid < GDNF_C) cp_async16(Rb + ((a.NT - 1 - n) & 1) * GDNF_C + tid, a.rows + ci * GDNF_C + tid, true);
        cp_async_commit();
    };
    // Chunk n's dO tile (64 × 64 fp32, rows past T zero) → T1..T2 (16 KB, dead between the
    // state update and the next chunk's conversion) by the warpgroup's cp.async: 16-byte piece
    // (r, c) at r·16 + (c ^ r%8), so that the fragment reads below are free of bank conflicts.
    auto load_dout = [&](int n) {
        const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
        const float *src = a.dout + (((int64_t)b * a.T + t0) * a.H + h) * (int64_t)a.V + c0;
        for (int e = wg_opaque_i(tid & 127); e < GDNF_C * 16; e += GDNW_THREADS) {
            const int r = e >> 4, c = e & 15;
            const bool ok = r < nr;
            cp_async16(T1 + 16 * (16 * r + (c ^ (r & 7))), src + (ok ? (int64_t)r * a.H * a.V + 4 * c : 0), ok);
        }
        cp_async_commit();
    };
    load(a.NT - 1);
    load_dout(a.NT - 1);

    auto sync_in = [&] { wg_bar_sync(wgi); };
    for (int n = a.NT - 1; n >= 0; n--) {
        const float4 *Rs = Rb + ((a.NT - 1 - n) & 1) * GDNF_C;
        const unsigned char *Kt = shared_tiles(n), *Qt = Kt + Lay::o_q, *At = Kt + Lay::o_a, *Pt = Kt + Lay::o_p;
        cp_async_wait_all();
        wg_fence_proxy();
        __syncthreads();  // chunk n's shared tiles and dSᵀ are visible; every warpgroup is past chunk n + 1
        if (n > 0) load(n - 1);

        // ---- dS (the gradient of chunk n's end state) → dhs, transposed back to (KD, V) by
        // movmatrix: lane (g, t) then holds feature 8i + g, state columns 2t, 2t + 1 of the 8×8 block
        if (a.dhs) {
            gdnf_bf16 *dst = a.dhs + (bh * a.NT + n) * KV + c0 + 16 * warp + 2 * t;
#pragma unroll
            for (int i = 0; i < KD / 8; i++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++)
                    *reinterpret_cast<uint32_t *>(dst + (int64_t)(8 * i + g) * a.V + 8 * hh) =
                        movm_trans(pack_bf16x2(s[4 * i + 2 * hh], s[4 * i + 2 * hh + 1]));
        }
        // ---- dO (fp32 in T1..T2) → T1 (bf16), Dq = scale rq e^γ dO → T2
        {
            float2 d[16];
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int r = 16 * warp + g + 8 * hh;  // column 8i + 2t: piece 2i + t/2, byte 8·(t%2)
                    d[2 * i + hh] = *reinterpret_cast<const float2 *>(T1 + 16 * (16 * r + ((2 * i + (t >> 1)) ^ g)) +
                                                                      8 * (t & 1));
                }
            sync_in();  // the warpgroup has read the fp32 tile
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int off = xo + 1024 * hh + 128 * i;
                    const float rx = Rs[16 * warp + g + 8 * hh].x;
                    st_bf16x2(reinterpret_cast<gdnf_bf16 *>(T1 + off), d[2 * i + hh].x, d[2 * i + hh].y);
                    st_bf16x2(reinterpret_cast<gdnf_bf16 *>(T2 + off), rx * d[2 * i + hh].x, rx * d[2 * i + hh].y);
                }
        }
        wg_fence_proxy();
        sync_in();  // dO and Dq visible

        // ---- Y = diag(rk d) K dS + Pᵀ dO → T1
        float y[32];
        wscan_mm_s<KD>(y, Kt, St);
        wscan_each_pair(warp, g, [&](int x, int, int r) {
            const float rz = Rs[r].z;
            y[x] *= rz, y[x + 1] *= rz;
        });
        wscan_mm_rows<1>(y, Pt, T1, 1);
        sync_in();  // every warp's product has read dO
        wscan_each_pair(warp, g, [&](int x, int off, int) {
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(T1 + xo + off), y[x], y[x + 1]);
        });
        wg_fence_proxy();
        sync_in();  // Y visible

        // ---- dX = A'ᵀ Y;  Dx = −rk e^γ dX → T1
        wscan_mm_rows<1>(y, At, T1, 0);
        sync_in();  // every warp's product has read Y
        wscan_each_pair(warp, g, [&](int x, int off, int r) {
            const float ry = -Rs[r].y;
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(T1 + xo + off), ry * y[x], ry * y[x + 1]);
        });
        wg_fence_proxy();
        sync_in();  // Dx visible

        // ---- dSᵀ ← el dSᵀ + Dqᵀ Q + Dxᵀ K
        const float el = Rs[0].w;
#pragma unroll
        for (int e = 0; e < KD / 2; e++) s[e] *= el;
        wg_fence();
        {
            const unsigned char *dq = wg_opaque(T2), *dx = wg_opaque(T1), *qs = wg_opaque(Qt), *ks = wg_opaque(Kt);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                wg_mma<KD, 1, 1>(s, wg_desc(dq + 2048 * kk, 1024, 128), wg_desc(qs + 2 * KB * kk, KB, 128), 1);
                wg_mma<KD, 1, 1>(s, wg_desc(dx + 2048 * kk, 1024, 128), wg_desc(ks + 2 * KB * kk, KB, 128), 1);
            }
        }
        wg_commit();
        wg_wait_all();
        sync_in();  // every warp's products have read dSᵀ (St), Dq and Dx
        if (n > 0) load_dout(n - 1);
        store_state();
    }
    cp_async_wait_all();
    if (a.dh0)
        wscan_each_state<KD>(warp, g, t, [&](int x, int v, int f) { a.dh0[bh * KV + (int64_t)f * a.V + c0 + v] += s[x]; });
}
