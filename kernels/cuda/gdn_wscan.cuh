// gdn_wscan.cuh — the gated delta rule forward's state pass with outputs on Hopper warpgroup
// products (wgmma, wgmma.cuh): the twin of gdnf_scan_kernel<KD, 64, OUT = true> (same
// arguments, same math, gdn_fast.cu's comment), run by gdn_fast.cu for V a multiple of 64 where
// its automatic choice (wscan_nw) or pn_cuda_gdn_fast_debug_wgmma(nw) picks it (Status below).
//
// Why: the mma.sync pass spends ~776 instructions per warp per chunk on ~100 m16n8k16 products
// and their ldmatrix loads, issue-bound at one 8-warp block per SM (GDN_NOTES §10). Here one
// warpgroup (4 warps, 128 threads) owns a (b·h, segment, 64-column) state tile and every chunk
// product is one wgmma per 16-deep step read straight from shared memory. A block holds NW ∈
// {1, 2, 4} such warpgroups on NW consecutive tiles of one (b·h, segment): they share the
// chunk's K, Q, A', P and row scalars, which the whole block loads once (§13):
//   b) Y = K S                  m64n64, depth KD   (S as Sᵀ bf16, K-major B)
//   c) Vn = A' X'               m64n64, depth 64   (X' = V − diag(rk e^γ) Y, MN-major B)
//   d) O = diag(scale rq e^γ) Q S + P Vn, m64n64; then Sᵀ ← e^{γ_last} Sᵀ + Vndᵀ K, m64nKD,
//      depth 64, Vnd = diag(rk e^{γ_last−γ}) Vn (both operands MN-major).
// The state is held transposed, Sᵀ (64 columns of V × KD) fp32, as the accumulator of d) —
// M = 64 fits one warpgroup for every KD — and copied to shared memory as bf16 after each
// chunk (the operand of b), as the mma.sync pass does). X' and then Vn take one 64×64 tile,
// Vnd the V tile. Shared memory (K, Q, A', P shared, Sᵀ, V, X per warpgroup, the row scalars
// twice), at KD = 96: 42 + 28·NW KB for NW = 1, 2 → three blocks of one warpgroup per SM or two
// of two, whose other blocks on the SM hide the loads; 194 KB for NW = 4 (DB below), one block.
// With NW = 1, 2 each piece of chunk n+1 is fetched (cp.async) as soon as chunk n's last reader
// of its buffer has passed a block barrier: the rows at the top, A' after c), Q and P after O, K
// and V after the state update; the next chunk waits for all of them. With NW = 4 (DB) the
// shared tiles are double-buffered: the block barrier at the top of chunk n is the only one a
// chunk has (every warpgroup is then past chunk n − 1), chunk n+1's shared tiles are fetched
// right after it, and the barriers inside the chunk are the warpgroup's own (named barrier
// 1 + w, wg_bar_sync), so the four warpgroups drift apart within a chunk and one's products
// overlap another's element-wise work and stores (§13: forward 0.72 → 0.65 ms).
// Rows past T load as zeros and carry β = rk = rq = 0 (the prep kernel's rows), so they
// add nothing; columns past V load as zeros, their state rows stay zero and are not stored.
// Q S is computed in d) rather than b), and Vnd goes to the V tile (dead after b)), so that no
// more than 80 accumulator registers are live at once (with both in flight, and with the
// per-element addresses hoisted out of the loop, the kernel spilled to local memory, which
// with 70 KB of shared memory per block misses L1 and ran the L2 at 88%).
//
// Status (H100, 2026-11-23, GDN_NOTES §11, §13): host emulation gives outputs bit-identical to
// the mma.sync pass (same roundings, same summation order) for NW = 1, 2 and 4; on the H100 the
// gpu test passes with each. With one warpgroup per block the pass was L2-bound (86% of L2
// throughput: each of a head's four blocks loaded the chunk's K, Q, A' and P, 40 of its 49 KB per
// chunk) and the forward level with the mma.sync pass (0.80 vs 0.79 ms at B8 T4096 H12 K96
// V256). Sharing those tiles: L2 throughput 55% with two per block, forward 0.75 ms with two and
// 0.71–0.74 ms with four; with four and DB 0.65 ms (the pass 590 µs at base clocks against the
// mma.sync pass's 760 µs), so the automatic choice runs this pass there (gdn_fast.cu, wscan_nw).
// At 1 × 65,536 × 8 heads (a segmented pass of 16 tiles per segment) it stays on mma.sync: 1.16
// ms against 1.39 / 1.54 / 1.79 ms here, with one 4-warp block per SM or idle SMs.
// Registers (ptxas, sm_90a; wscan_min_blocks): one warpgroup per block 133–184, no spills; two
// at KD = 128 (one block per SM) 184, no spills; two at KD ≤ 96 (two blocks per SM) 128 with no
// spills at KD = 64, 24–28 bytes at 96; four (512 threads, DB) 123–127 with no spills at KD ≤ 96,
// 128 with 20–56 bytes at KD = 128. With RDY (the prep-overlap waits, session 20): four warpgroups
// 124–128 registers, no spills at KD ≤ 96, 0 / 20 bytes at 128 (bf16 / fp32 o); two 121–128, no
// spills but 8 bytes at KD = 64 bf16; one 143–189, no spills.
#pragma once
#include "kernels/cuda/wgmma.cuh"

#define GDNW_THREADS 128  // one warpgroup
#define GDNW_BV 64        // state columns per warpgroup (= M of the state update)

// Shared memory of a block of NW warpgroups: the chunk's tiles every warpgroup reads (K, Q, A',
// P, the row scalars twice), then per warpgroup w its own Sᵀ, V and X tiles at o_w + w·per.
// DB (four warpgroups): the shared tiles twice, stage (n − first chunk) & 1, at o_k + stage·sh.
// DBV (DB with KD ≤ 96, where it fits): each warpgroup's V tile twice as well, so that chunk n+1's
// V is fetched at the top of chunk n with the shared tiles; with one V tile it could only be
// fetched after chunk n's state update (the tile holds Vnd until then), and the wait for it at
// the top of chunk n+1 was the pass's largest stall (GDN_NOTES §16).
template <int KD, int NW>
struct wscan_layout {
    static constexpr bool DB = NW == 4, DBV = DB && KD <= 96;
    static constexpr size_t kq = (size_t)GDNF_C * KD * 2, mm = (size_t)GDNF_C * GDNF_C * 2;
    static constexpr size_t o_k = 0, o_q = kq, o_a = 2 * kq, o_p = o_a + mm, sh = o_p + mm;
    static constexpr size_t o_r = (DB ? 2 : 1) * sh;
    static constexpr size_t o_w = o_r + 2 * GDNF_C * 16;
    // within a warpgroup's part: Sᵀ, V, X, then the second V (DBV)
    static constexpr size_t o_s = 0, o_v = kq, o_x = kq + mm, o_v2 = kq + 2 * mm, per = kq + (DBV ? 3 : 2) * mm;
    static constexpr size_t total = o_w + NW * per;
};

// Rows 0..63 × C columns of a bf16 matrix (row stride ld elements) → the core-matrix tiling of
// dst by cp.async, by NT threads of which this is thread `me`; rows >= nr and columns >= nc
// are zero-filled (the source is not read). Eight consecutive threads fill one core matrix
// (128 contiguous bytes: no bank conflict); a warp reads 64 contiguous bytes of each of 8 rows.
template <int C, int NT>
static __device__ __forceinline__ void wscan_load(unsigned char *dst, const gdnf_bf16 *src, int64_t ld, int nr, int nc,
                                                  int me) {
    // (the thread index is made opaque so that these addresses are computed here, per call, and
    // not hoisted out of the chunk loop into registers)
    for (int e = wg_opaque_i(me); e < GDNF_C * (C / 8); e += NT) {
        const int r = (e & 7) + 8 * (e / C), c = ((e >> 3) % (C / 8)) * 8;
        const bool ok = r < nr && c < nc;
        cp_async16(dst + wg_off(r, c, C), src + (ok ? r * ld + c : 0), ok);
    }
}

// acc = X S over the KD features: X a (64, KD) tile (K-major A), S through its transpose Sᵀ
// (K-major B). Waits for the product.
template <int KD>
static __device__ __forceinline__ void wscan_mm_s(float (&acc)[32], const unsigned char *X, const unsigned char *St) {
    const unsigned char *xs = wg_opaque(X), *ss = wg_opaque(St);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < KD / 16; kk++)
        wg_mma_n64<0, 0>(acc, wg_desc(xs + 256 * kk, 128, 16 * KD), wg_desc(ss + 256 * kk, 128, 16 * KD), kk > 0);
    wg_commit();
    wg_wait_all();
}

// acc (+)= M X over the 64 chunk rows: M a (64, 64) tile (A' or P, K-major A), X a (64, 64)
// tile of rows × state columns (MN-major B); add = 0 overwrites acc. Waits for the product.
// TM = 1: Mᵀ X instead (the tile read MN-major: the backward's A'ᵀ, Pᵀ).
template <int TM = 0>
static __device__ __forceinline__ void wscan_mm_rows(float (&acc)[32], const unsigned char *M, const unsigned char *X,
                                                     int add) {
    const unsigned char *ms = wg_opaque(M), *xs = wg_opaque(X);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
        wg_mma_n64<TM, 1>(acc, TM ? wg_desc(ms + 2048 * kk, 1024, 128) : wg_desc(ms + 256 * kk, 128, 1024),
                          wg_desc(xs + 2048 * kk, 1024, 128), add || kk > 0);
    wg_commit();
    wg_wait_all();
}

// Every element pair of this thread's m64n64 accumulator: fn(index x of the pair's first float,
// byte offset of the pair in a tiled (64, 64) tile relative to the thread's `xo`, its row).
template <typename F>
static __device__ __forceinline__ void wscan_each_pair(int warp, int g, F &&fn) {
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) fn(4 * i + 2 * hh, 1024 * hh + 128 * i, 16 * warp + g + 8 * hh);
}

// Every element of this thread's fragment of a transposed state (64 state columns × KD, the
// m64nKD accumulator): fn(index into the thread's KD/2 floats, state column v, feature f).
template <int KD, typename F>
static __device__ __forceinline__ void wscan_each_state(int warp, int g, int t, F &&fn) {
#pragma unroll
    for (int i = 0; i < KD / 8; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
#pragma unroll
            for (int e = 0; e < 2; e++) fn(4 * i + 2 * hh + e, 16 * warp + g + 8 * hh, 8 * i + 2 * t + e);
}

// That state as bf16 → St, the tiled (64, KD) B operand of the next chunk's products; so is the
// thread's fragment offset in such a tile (the kernels' `so`).
template <int KD>
static __device__ __forceinline__ void wscan_store_state(unsigned char *St, int so, const float (&s)[KD / 2]) {
#pragma unroll
    for (int i = 0; i < KD / 8; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(St + so + 16 * KD * hh + 128 * i), s[4 * i + 2 * hh],
                      s[4 * i + 2 * hh + 1]);
}

// Blocks per SM that the shared memory allows (wscan_layout): the register bound for launch_bounds.
template <int KD, int NW>
constexpr int wscan_min_blocks() {
    return NW == 1 ? (KD == 128 ? 2 : 3) : NW == 2 ? (KD == 128 ? 1 : 2) : 1;
}

// NW warpgroups per block, warpgroup w on the block's w-th 64-column tile: they share the
// chunk's K, Q, A', P and rows (loaded once per block instead of once per tile), and keep
// their own Sᵀ, V and X tiles. Every barrier is block-wide: the warpgroups run in step.
// ready, RDY: the chunk-ready flags of a prep running beside the pass (GDN_NOTES §20), waited for
// only when RDY. The flags are a parameter of their own, not a field of gdnf_scan_args, and RDY a
// template switch, so that the other passes compile as before: with the field added to the
// arguments, ptxas allocated them differently (K 128, one or two warpgroups 184 → 254 registers;
// four at K 96, bf16 o, 0 → 16 bytes of spill).
template <int KD, int NW, typename OT, bool RDY = false>
__global__ void __launch_bounds__(GDNW_THREADS *NW, wscan_min_blocks<KD, NW>())
    gdnw_scan_kernel(const gdnf_scan_args a, const unsigned *ready) {
    using Lay = wscan_layout<KD, NW>;
    static_assert(KD == 64 || KD == 96 || KD == 128, "KD must be 64, 96 or 128");
    static_assert(NW == 1 || NW == 2 || NW == 4, "NW must be 1, 2 or 4");
    constexpr int NTH = GDNW_THREADS * NW;
    constexpr uint32_t KB = 16 * KD;  // bytes between row blocks of a (64, KD) tile
    unsigned char *sm = GDNF_SMEM;
    const int tid = threadIdx.x, wgi = tid >> 7, ltid = tid & 127, lane = tid & 31, warp = ltid >> 5;
    const int g = lane >> 2, t = lane & 3;
    constexpr bool DB = Lay::DB;
    unsigned char *own = sm + Lay::o_w + wgi * Lay::per;
    unsigned char *St = own + Lay::o_s, *Vt1 = own + Lay::o_v, *Xt = own + Lay::o_x;
    float4 *Rb = reinterpret_cast<float4 *>(sm + Lay::o_r);
    const int nblk = (a.ntiles + NW - 1) / NW;  // blocks per (b·h, segment)
    const int tile = (int)(blockIdx.x % nblk) * NW + wgi, rest = (int)(blockIdx.x / nblk);
    const int seg = rest % a.nseg;
    const int64_t bh = rest / a.nseg;
    // a warpgroup past the last tile (ntiles not a multiple of NW) has nc <= 0: it loads zeros,
    // keeps a zero state and stores nothing, but takes part in the shared loads and barriers
    const int b = (int)(bh / a.H), h = (int)(bh % a.H), c0 = tile * GDNW_BV, nc = a.V - c0;
    const int nb = seg * a.cps, ne = min(a.NT, nb + a.cps);
    // chunk n's V tile (DBV: stage (n − first chunk) & 1)
    auto vtile = [&](int n) { return Lay::DBV && ((n - nb) & 1) ? own + Lay::o_v2 : Vt1; };
    const int64_t kst = (int64_t)a.H * KD, vst = (int64_t)a.H * a.V;
    // This thread's fragment element (row 16·warp + g + 8h, column 8i + 2t) in a tiled (64, 64)
    // tile is at xo + 1024 h + 128 i, in a tiled (64, KD) tile at so + 16 KD h + 128 i; written
    // with compile-time offsets so that the compiler keeps one register per tile kind, not one
    // per element (hoisted addresses made the kernel spill).
    const int xo = 2048 * warp + 16 * g + 4 * t, so = 32 * KD * warp + 16 * g + 4 * t;
    const int oo = 128 * (16 * warp + g) + 16 * g + 4 * t;  // O staging: row r at 128 r, block i at (i ^ g)·16

    // Sᵀ: this thread's (state column v = 16·warp + g + 8h, feature f = 8i + 2t + e).
    float s[KD / 2];
    // Sᵀ as bf16 → St, the B operand of the next chunk's products.
    auto store_state = [&] { wscan_store_state<KD>(St, so, s); };
    {
        const int64_t slot = a.s0_nseg == 1 ? 0 : seg;
#pragma unroll
        for (int i = 0; i < KD / 8; i++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int v = 16 * warp + g + 8 * hh, f = 8 * i + 2 * t + e;
                    s[4 * i + 2 * hh + e] =
                        a.s0 && v < nc ? a.s0[((bh * a.s0_nseg + slot) * KD + f) * (int64_t)a.V + c0 + v] : 0.f;
                }
        store_state();
    }
    // Chunk n's inputs: which = 1 K, 2 Q, 4 A', 8 P, 16 V, 32 rows (into slot (n − nb) & 1).
    // Chunk n's copy of the shared tiles (K at +0, Q, A', P at Lay::o_q, o_a, o_p).
    auto shared_tiles = [&](int n) { return sm + (DB ? ((n - nb) & 1) * Lay::sh : 0); };
    // K, Q, A', P and the rows are loaded by the whole block, V by its warpgroup.
    auto load = [&](int n, int which) {
        const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
        const int64_t row0 = (int64_t)b * a.T + t0, ci = bh * a.NT + n;
        unsigned char *Kt = shared_tiles(n), *Qt = Kt + Lay::o_q, *At = Kt + Lay::o_a, *Pt = Kt + Lay::o_p;
        if (which & 1) wscan_load<KD, NTH>(Kt, a.k + (row0 * a.H + h) * KD, kst, nr, KD, tid);
        if (which & 2) wscan_load<KD, NTH>(Qt, a.q + (row0 * a.H + h) * KD, kst, nr, KD, tid);
        if (which & 4) wscan_load<GDNF_C, NTH>(At, a.A + ci * GDNF_C * GDNF_C, GDNF_C, GDNF_C, GDNF_C, tid);
        if (which & 8) wscan_load<GDNF_C, NTH>(Pt, a.P + ci * GDNF_C * GDNF_C, GDNF_C, GDNF_C, GDNF_C, tid);
        if (which & 16)
            wscan_load<GDNF_C, GDNW_THREADS>(vtile(n), a.v + (row0 * a.H + h) * a.V + (nc > 0 ? c0 : 0), vst, nr, nc,
                                             ltid);
        if ((which & 32) && tid < GDNF_C) cp_async16(Rb + ((n - nb) & 1) * GDNF_C + tid, a.rows + ci * GDNF_C + tid, true);
        cp_async_commit();
    };
    // Prep overlap (RDY): thread 0 sees a chunk's flag before the block barrier ahead of
    // the loads of the chunk's A', P and rows; chunks nb, nb + 1 here, chunk n + 2 during chunk
    // n's state update (off the chain: the warpgroup waits for its product there anyway).
    if constexpr (RDY) {
        if (tid == 0)
            for (int n = nb; n < min(ne, nb + 2); n++) gdnf_flag_wait(ready, bh * a.NT + n);
        __syncthreads();
    }
    if (nb < ne) load(nb, 63);

    // The barrier inside a chunk: with the shared tiles double-buffered (DB) nothing the other
    // warpgroups touch changes inside a chunk, so the warpgroup's own; else the block's (the
    // shared tiles of chunk n + 1 are fetched as chunk n's last reader of each passes it).
    auto sync_in = [&] {
        if constexpr (DB)
            wg_bar_sync(wgi);
        else
            __syncthreads();
    };
    for (int n = nb; n < ne; n++) {
        const float4 *Rs = Rb + ((n - nb) & 1) * GDNF_C;
        const unsigned char *Kt = shared_tiles(n), *Qt = Kt + Lay::o_q, *At = Kt + Lay::o_a, *Pt = Kt + Lay::o_p;
        const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
        const bool more = n + 1 < ne;
        // (vtile(n) is Vt1 without DBV too, but through it the KD = 128 form spilled 68 / 96 bytes, not 56 / 56)
        unsigned char *Vt = Lay::DBV ? vtile(n) : Vt1;
        cp_async_wait_all();
        wg_fence_proxy();
        __syncthreads();  // chunk n's tiles and Sᵀ (the chunk's start state) are visible to wgmma
        // DB: every warpgroup is past chunk n − 1, whose buffers (V too with DBV) take chunk n + 1's
        if (more) load(n + 1, DB ? (Lay::DBV ? 1 | 2 | 4 | 8 | 16 | 32 : 1 | 2 | 4 | 8 | 32) : 32);
        // This thread's two rows (16·warp + g and + 8): each loop below reads their scalar once. A
        // read of Rs per element pair was reloaded every time (the compiler cannot move it past
        // the tile stores) and every scaling waited on it. Pair x is on the second row when x & 2.
        const float4 *Rw = Rs + 16 * warp + g;

        // ---- b) Y = K S;  X' = V − rk e^γ Y → Xt
        float y[32];
        wscan_mm_s<KD>(y, Kt, St);
        const float rk0 = Rw[0].y, rk1 = Rw[8].y;
        wscan_each_pair(warp, g, [&](int x, int off, int) {
            const float rk = x & 2 ? rk1 : rk0;
            const float2 vv = ld_bf16x2(reinterpret_cast<const gdnf_bf16 *>(Vt + xo + off));
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(Xt + xo + off), vv.x - rk * y[x], vv.y - rk * y[x + 1]);
        });
        wg_fence_proxy();
        sync_in();  // X' visible; V read by everyone

        // ---- c) Vn = A' X' → Xt (for P Vn), Vnd = rk e^{γ_last−γ} Vn → Vt (for the state update)
        wscan_mm_rows(y, At, Xt, 0);
        sync_in();  // every warp's product has read X' and A'
        if (!DB && more) load(n + 1, 4);
        const float rd0 = Rw[0].z, rd1 = Rw[8].z;
        wscan_each_pair(warp, g, [&](int x, int off, int) {
            const float rd = x & 2 ? rd1 : rd0;
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(Xt + xo + off), y[x], y[x + 1]);
            st_bf16x2(reinterpret_cast<gdnf_bf16 *>(Vt + xo + off), rd * y[x], rd * y[x + 1]);
        });
        wg_fence_proxy();
        sync_in();

        // ---- d) O = diag(scale rq e^γ) Q S + P Vn: the Q S rows are scaled between the two products
        float o[32];
        wscan_mm_s<KD>(o, Qt, St);
        const float rq0 = Rw[0].x, rq1 = Rw[8].x;
        wscan_each_pair(warp, g, [&](int x, int, int) {
            const float rq = x & 2 ? rq1 : rq0;
            o[x] *= rq, o[x + 1] *= rq;
        });
        wscan_mm_rows(o, Pt, Xt, 1);
        sync_in();  // Q, Sᵀ, P and Vn read
        if (!DB && more) load(n + 1, 2 | 8);
        if constexpr (!std::is_same<OT, float>::value) {
            // O (bf16) → St: row r at 128 r, 16-byte column block i at (i ^ r%8)·16 (the swizzle
            // keeps both these stores and the row reads below free of bank conflicts)
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++)
                    st_bf16x2(reinterpret_cast<gdnf_bf16 *>(St + ((oo + 1024 * hh) ^ (i << 4))), o[4 * i + 2 * hh],
                              o[4 * i + 2 * hh + 1]);
        }
        const float el = Rs[0].w;
#pragma unroll
        for (int e = 0; e < KD / 2; e++) s[e] *= el;
        sync_in();  // the staged O rows are visible

        // ---- d) Sᵀ = e^{γ_last} Sᵀ + Vndᵀ K, while the block writes O
        wg_fence();
        {
            const unsigned char *vs = wg_opaque(Vt), *ks = wg_opaque(Kt);
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
                wg_mma<KD, 1, 1>(s, wg_desc(vs + 2048 * kk, 1024, 128), wg_desc(ks + 2 * KB * kk, KB, 128), 1);
        }
        wg_commit();
        if constexpr (RDY)
            if (threadIdx.x == 0 && n + 2 < ne) gdnf_flag_wait(ready, bh * a.NT + n + 2);
        {
            const int64_t orow0 = (int64_t)b * a.T + t0;
            if constexpr (std::is_same<OT, float>::value) {
                // a quad's four float2 are one whole 32-byte sector of a row
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int r = 16 * warp + g + 8 * hh, col = 8 * i + 2 * t;
                        if (r < nr && col < nc)
                            *reinterpret_cast<float2 *>(static_cast<float *>(a.o) +
                                                        ((orow0 + r) * a.H + h) * (int64_t)a.V + c0 + col) =
                                make_float2(o[4 * i + 2 * hh], o[4 * i + 2 * hh + 1]);
                    }
            } else {
                // eight threads write a row's 128 bytes
                for (int e = ltid; e < GDNF_C * 8; e += GDNW_THREADS) {
                    const int r = e >> 3, cb = e & 7;
                    if (r < nr && 8 * cb < nc)
                        *reinterpret_cast<uint4 *>(static_cast<gdnf_bf16 *>(a.o) +
                                                   ((orow0 + r) * a.H + h) * (int64_t)a.V + c0 + 8 * cb) =
                            *reinterpret_cast<const uint4 *>(St + r * 128 + ((cb ^ (r & 7)) << 4));
                }
            }
        }
        wg_wait_all();
        sync_in();  // K, Vnd and the staged O read
        if (more && !Lay::DBV) load(n + 1, DB ? 16 : 1 | 16);
        store_state();
    }

    if (a.s1 && (!a.s1_last_only || seg == a.nseg - 1)) {
        const int64_t slot = a.s1_last_only ? 0 : seg;
#pragma unroll
        for (int i = 0; i < KD / 8; i++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int v = 16 * warp + g + 8 * hh, f = 8 * i + 2 * t + e;
                    if (v < nc)
                        a.s1[((bh * a.s1_nseg + slot) * KD + f) * (int64_t)a.s1_cols + c0 + v] = s[4 * i + 2 * hh + e];
                }
    }
}
