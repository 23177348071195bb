// gdn_fast.cu — chunked gated delta rule forward on bf16 tensor cores (mma.sync m16n8k16,
// fp32 accumulation): the fast twin of pn_cuda_gated_delta_fwd (kernels/cuda/gdn.cu, same
// contract, pn_cuda_gdn_fast.h). Why the old one is slow and what this one changes:
// kernels/cuda/GDN_NOTES.md.
//
// ---------------------------------------------------------------- the algorithm
// Per (b, h), chunks of C = 64 rows; in chunk n (rows t0 .. t0+nr−1, nr ≤ 64) with start
// state S (K, V) fp32, γ the chunk-local cumsum of g, rk_i / rq_i the L2-norm factors of the
// RAW bf16 rows k_i, q_i (1 without qk_l2norm), k̂ = rk·k, q̂ = rq·q:
//   L_ij = β_i k̂_i·k̂_j e^{γ_i−γ_j} (j < i),   A' = (I + L)⁻¹ diag(β)             (64, 64)
//   P_ij = scale q̂_i·k̂_j e^{γ_i−γ_j} (j ≤ i)                                      (64, 64)
//   X'   = V − diag(rk e^γ) (K S)        [K, Q raw bf16 rows as mma operands]    (64, V)
//   Vn   = A' X'                         [= U − W S of fla's WY form]           (64, V)
//   O    = diag(scale rq e^γ) (Q S) + P Vn                                      (64, V)
//   S   ← e^{γ_last} S + Kᵀ diag(rk e^{γ_last−γ}) Vn                            (K, V)
// (expanding U − W S = A diag(β) V − A diag(β e^γ) K̂ S shows X' = V − diag(e^γ) K̂ S; the
// W and U matrices are never formed.) Rows past T are zero in K, Q, V and have β = rk =
// rq = 0 and γ = γ_last, so they add nothing anywhere. Decays are exp of non-positive
// differences for g ≤ 0, and the upper triangle is masked before exp.
//
// ---------------------------------------------------------------- kernels
// 1. gdnf_prep_kernel<KD>: one block (4 warps) per (b·h, chunk), all chunks in parallel.
//    Loads K, Q (64, KD) bf16 with cp.async, row norms, γ (warp scan in double), K Kᵀ and
//    Q Kᵀ on tensor cores (lower 16×16 blocks only), L and P masked before exp, then
//    A = (I + L)⁻¹ in fp32: the four diagonal 16×16 blocks by forward substitution in
//    registers (lane = column), the six blocks below by block merging
//      A_ab = −A_aa Σ_{b≤m<a} L_am A_mb   (down each block column: (1,0) (2,0) (3,0) | (2,1)
//    (3,1) | (3,2)), each warp on its own 4-column slice of every block column, no barrier.
//    Writes A' and P (bf16, (BH, NT, 64, 64)) and the row scalars
//    rows = {scale·rq·e^γ, rk·e^γ, rk·e^{γ_last−γ}, e^{γ_last}} (float4, (BH, NT, 64)).
// 2. gdnf_scan_kernel<KD, BV, OUT, OT>: one block (8 warps) per (b·h, segment, column tile
//    of BV ∈ {32, 64} state columns); walks its chunks in order holding its (KD, BV) slice
//    of the state in fp32 registers (the recurrence is independent across V columns). Per
//    chunk, with the chunk's K, Q, A', P, V tile and rows double-buffered in shared memory
//    (cp.async of chunk n+1 overlaps chunk n), three barriers:
//      b) [K; Q] S: warp w < 4 K rows 16w.., w ≥ 4 Q rows (without OUT: K rows, column
//         halves); S is read as bf16 from Sb. K rows → X' (bf16, Xs); Q rows stay in
//         registers scaled by scale·rq·e^γ.
//      c) Vn = A' X' (warp = row tile × column half, lower blocks only) → Vns (bf16, for
//         P Vn) and Vnd = rk e^{γ_last−γ} Vn (bf16, for the state update).
//      d) state owners: S = e^{γ_last} S + Kᵀ Vnd (Kᵀ fragments by ldmatrix.trans of K),
//         new S → Sb as bf16; warps 4-7 add P Vns to their Q S rows and write O.
//    Ownership of the state: KD = 64: warp w has rows 16(w&3).., column half w>>2; KD = 96,
//    128: warp w < KD/16 has rows 16w.., all BV columns.
//    The same pass on Hopper warpgroup products, 1, 2 or 4 column tiles per block sharing the
//    chunk's K, Q, A', P: gdn_wscan.cuh (GDN_NOTES §11, §13); wscan_nw below picks which runs.
// 3. Long sequences at small B·H (B·H·V/BV < #SMs): intra-card context parallelism. The
//    chunks are cut into nseg segments; the state map over a segment is affine,
//    S_end = M S_start + D, column by column. (a) The scan kernel without outputs runs every
//    segment but the last on V + K columns: the V real ones start at 0 and read v, the K
//    extra ones start as the identity and read v = 0 ("ident" mode); its end state is
//    [D | M] (K, V + K). (b)
//    gdnf_combine_kernel, per (b·h, 8 columns), walks the segments in fp32:
//    start_{s+1} = M_s start_s + D_s. (c) The scan kernel with outputs runs every segment
//    from its start state; the last segment writes ht.
// 4. Where a one-segment wgmma pass leaves SMs idle, the prep of the later chunks runs beside it
//    on those SMs, the pass waiting per chunk on a ready flag ("prep overlap" below; GDN_NOTES §20).
//
// ---------------------------------------------------------------- expected cost (not measured)
// B8 T4096 H12 K96 V256: prep 6144 blocks (48 KB smem, 88 regs, 4 per SM); scan 384 blocks
// (148.5 KB, 166 regs, 1 per SM, 2.9 waves × 64 chunks, ~740 mma per chunk, smem-operand
// bound) → ~0.3–0.5 ms; HBM ≈ 1.4× the minimal bytes (prep reads q, k; A', P round trip).
// B1 T65536 H8 K128 V128: 8 segments of 128 chunks; (a) 224 blocks (108 KB, 126 regs, 2 per
// SM), (b) 7 sequential steps, (c) 128 blocks (169 KB, 1 per SM) → ~0.4 ms.
// Resources (ptxas, sm_90a): no spills or stack in any instantiation.
//
// ---------------------------------------------------------------- mma fragments (PTX ISA)
// m16n8k16, g = lane/4, t = lane%4: A a0 (g, 2t..2t+1) a1 (g+8, 2t..) a2 (g, 2t+8..)
// a3 (g+8, 2t+8..); B b0 (k 2t..2t+1, n g) b1 (k 2t+8.., n g); C c0 (g, 2t) c1 (g, 2t+1)
// c2 (g+8, 2t) c3 (g+8, 2t+1). ldmatrix.x4: lanes 8i..8i+7 address the 8 rows of matrix i,
// register i receives matrix i; without .trans lane l gets (row l/4, cols 2(l%4), +1), with
// .trans (rows 2(l%4), +1, col l/4). Hence, for a 16×16 tile at (r0, c0):
//   row-major A:                 ldsm(row r0 + l%16, col c0 + 8(l/16))
//   B stored (k, n) row-major:   ldsm.trans(row k0 + l%16, col n0 + 8(l/16)) → b0 b1 of
//                                n-tile n0, b0 b1 of n-tile n0+8
//   B stored (n, k) (Bᵀ rows):   ldsm(row n0 + l%8 + 8(l/16), col k0 + 8((l/8)%2))
//   A stored (k, m) (Aᵀ rows):   ldsm.trans(row k0 + l%8 + 8(l/16), col m0 + 8((l/8)%2)).
// Shared row strides are 16-byte multiples whose 8-row footprints cover all 32 banks
// (KD + 8, BV + 8, 72 bf16), so ldmatrix is conflict-free.
//
// GDNF_HOST_EMU: when defined, the file compiles as host C++ against the emulation header
// kernels/cuda/emu/gdnf_emu.h (warp and warpgroup collectives, cp.async, launches emulated
// on the CPU): the cpu test tests/emu/test_gdn_emu.c runs these kernels that way. The device
// build never defines it.
#include "kernels/cuda/gdn_fast_common.cuh"  // primitives, per-chunk kernel, state pass
#include "kernels/cuda/gdn_wscan.cuh"        // the state pass with outputs on wgmma (V % 64 == 0)


// ================================================================ kernel 3: segment starts
// One block per (b·h, 8 state columns): start_0 = h0 (or 0), start_{s+1} = M_s start_s + D_s
// with [D_s | M_s] = DM (BH, nseg−1, KD, V + KD); starts (BH, nseg, KD, V). fp32 throughout.
// Thread: column c = tid % 8, rows rg + 32u.
template <int KD>
static size_t combine_smem_bytes(void) {
    return sizeof(float) * ((size_t)KD * (KD + 4) + (size_t)KD * GDNF_CB);
}

template <int KD>
__global__ void __launch_bounds__(GDNF_SCAN_THREADS)
    gdnf_combine_kernel(const float *__restrict__ DM, const float *h0, float *__restrict__ starts, int V, int nseg) {
    constexpr int LDM = KD + 4, U = KD / 32;
    float *Ms = reinterpret_cast<float *>(GDNF_SMEM), *Ss = Ms + KD * LDM;
    const int tid = threadIdx.x, c = tid & (GDNF_CB - 1), rg = tid / GDNF_CB;
    const int nct = V / GDNF_CB;
    const int64_t bh = blockIdx.x / nct;
    const int c0 = (int)(blockIdx.x % nct) * GDNF_CB;
    const int64_t KV = (int64_t)KD * V, W = V + KD;
    float s[U];
#pragma unroll
    for (int u = 0; u < U; u++) s[u] = h0 ? h0[bh * KV + (int64_t)(rg + 32 * u) * V + c0 + c] : 0.f;
    for (int sg = 0; sg < nseg - 1; sg++) {
#pragma unroll
        for (int u = 0; u < U; u++) starts[(bh * nseg + sg) * KV + (int64_t)(rg + 32 * u) * V + c0 + c] = s[u];
        const float *D = DM + (bh * (nseg - 1) + sg) * (int64_t)KD * W;
        __syncthreads();  // the previous segment's readers are done with Ms, Ss
        for (int e = tid; e < KD * KD / 4; e += GDNF_SCAN_THREADS) {
            const int r = e / (KD / 4), m4 = (e % (KD / 4)) * 4;
            *reinterpret_cast<float4 *>(Ms + r * LDM + m4) = *reinterpret_cast<const float4 *>(D + r * W + V + m4);
        }
#pragma unroll
        for (int u = 0; u < U; u++) Ss[(rg + 32 * u) * GDNF_CB + c] = s[u];
        __syncthreads();
        float acc[U];
#pragma unroll
        for (int u = 0; u < U; u++) acc[u] = D[(rg + 32 * u) * W + c0 + c];
        for (int m = 0; m < KD; m++) {
            const float x = Ss[m * GDNF_CB + c];
#pragma unroll
            for (int u = 0; u < U; u++) acc[u] += Ms[(rg + 32 * u) * LDM + m] * x;
        }
#pragma unroll
        for (int u = 0; u < U; u++) s[u] = acc[u];
    }
#pragma unroll
    for (int u = 0; u < U; u++) starts[(bh * nseg + nseg - 1) * KV + (int64_t)(rg + 32 * u) * V + c0 + c] = s[u];
}

// ================================================================ host side
static int g_force_nseg = 0, g_last_nseg = 0;
// g_wgmma_nw: −1 = automatic (wscan_nw), 0 = the mma.sync pass, 1 / 2 / 4 = the wgmma pass
// with that many 64-column tiles (warpgroups) per block; g_last_wgmma: what the last call ran
// (0 = mma.sync).
static int g_wgmma_nw = -1, g_last_wgmma = 0;

static int device_sms(void) {
    int dev = 0, sms = 132;
    PN_CHECK_CUDA(cudaGetDevice(&dev));
    PN_CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
}

// The automatic choice of the pass with outputs (GDN_NOTES §13; H100, B8 T4096 H12 K96 V256,
// three runs: forward 0.79 / 0.77 / 0.78 ms with the mma.sync pass, 0.81 / 0.80 / 0.80, 0.75 /
// 0.75 / 0.76 and 0.74 / 0.71 / 0.72 ms with 1, 2 and 4 tiles per wgmma block; a fourth run
// with the 4-tile form's shared tiles double-buffered: 0.78, 0.80, 0.76, 0.65 ms). A one-segment pass whose tiles pair
// up runs on wgmma: two tiles per block while those blocks fit one per SM, else four (an SM
// then runs four warpgroups either way, and four per block load the shared tiles half as
// often). A segmented pass (few B·H: the long-sequence shape) keeps the mma.sync pass, whose
// 8-warp blocks fill an SM alone: the wgmma blocks there are 1.2–1.5× slower (§11, §13).
static int wscan_nw(const gdnf_scan_args &a, int64_t grid) {
    if (g_wgmma_nw >= 0) return g_wgmma_nw;
    if (a.nseg != 1 || a.ntiles % 2) return 0;
    return a.ntiles % 4 == 0 && grid / 2 > device_sms() ? 4 : 2;
}

// Every chunk (nch = 0), or chunks n0 .. n0 + nch − 1 of every head, chunk-major, each block
// setting its chunk's flag in ready (when not NULL) after its stores.
template <int KD>
static void prep_launch(const gdnf_bf16 *q, const gdnf_bf16 *k, const float *g, const float *beta, gdnf_bf16 *A,
                        gdnf_bf16 *P, float4 *R, int64_t BH, int T, int H, int NT, float scale, int l2, int n0 = 0,
                        int nch = 0, unsigned *ready = nullptr) {
    const size_t smem = PREP_SMEM_BYTES;
    const int64_t grid = nch > 0 ? BH * nch : BH * NT;
    const gdnf_prep_order ord = nch > 0 ? gdnf_prep_order{BH, n0, ready} : gdnf_prep_order{0, 0, nullptr};
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnf_prep_kernel<KD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnf_prep_kernel<KD><<<(unsigned)grid, GDNF_PREP_THREADS, smem, pn_stream()>>>(q, k, g, beta, A, P, R, T, H, NT,
                                                                                   scale, l2, nullptr, nullptr, ord);
#else
    emu_launch(grid, GDNF_PREP_THREADS, smem,
               [&] { gdnf_prep_kernel<KD>(q, k, g, beta, A, P, R, T, H, NT, scale, l2, nullptr, nullptr, ord); });
#endif
    PN_CHECK_LAUNCH();
}

template <int KD, int BV, bool OUT, typename OT>
static void scan_launch(const gdnf_scan_args &a, int64_t grid) {
    const size_t smem = scan_layout<KD, BV, OUT>::total;
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnf_scan_kernel<KD, BV, OUT, OT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
#ifndef GDNF_HOST_EMU
    gdnf_scan_kernel<KD, BV, OUT, OT><<<(unsigned)grid, GDNF_SCAN_THREADS, smem, pn_stream()>>>(a);
#else
    emu_launch(grid, GDNF_SCAN_THREADS, smem, [&] { gdnf_scan_kernel<KD, BV, OUT, OT>(a); });
#endif
    PN_CHECK_LAUNCH();
}

template <int KD, int NW, typename OT, bool RDY>
static void wscan_launch_k(const gdnf_scan_args &a, int64_t grid, size_t smem, cudaStream_t st, const unsigned *ready) {
    PN_CHECK_CUDA(
        cudaFuncSetAttribute(gdnw_scan_kernel<KD, NW, OT, RDY>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnw_scan_kernel<KD, NW, OT, RDY><<<(unsigned)grid, GDNW_THREADS * NW, smem, st>>>(a, ready);
#else
    (void)st;
    emu_launch(grid, GDNW_THREADS * NW, smem, [&] { gdnw_scan_kernel<KD, NW, OT, RDY>(a, ready); });
#endif
    PN_CHECK_LAUNCH_ON(st);
}

// ready (flags of a prep beside the pass) selects the instantiation that waits for them.
template <int KD, int NW, typename OT>
static void wscan_launch(const gdnf_scan_args &a, int64_t grid, cudaStream_t st, const unsigned *ready) {
    const size_t smem = wscan_layout<KD, NW>::total;
    // grid counts one block per 64-column tile; here NW tiles share a block
    grid = grid / a.ntiles * ((a.ntiles + NW - 1) / NW);
    if (ready)
        wscan_launch_k<KD, NW, OT, true>(a, grid, smem, st, ready);
    else
        wscan_launch_k<KD, NW, OT, false>(a, grid, smem, st, nullptr);
    g_last_wgmma = NW;
}

template <int KD, typename OT>
static void wscan_pick(int nw, const gdnf_scan_args &a, int64_t grid, cudaStream_t st, const unsigned *ready) {
    if (nw == 4)
        wscan_launch<KD, 4, OT>(a, grid, st, ready);
    else if (nw == 2)
        wscan_launch<KD, 2, OT>(a, grid, st, ready);
    else
        wscan_launch<KD, 1, OT>(a, grid, st, ready);
}

// With outputs and 64-column tiles the state pass can run on wgmma (gdn_wscan.cuh; wscan_nw).
template <int KD, int BV>
static void scan_pick_out(const gdnf_scan_args &a, int64_t grid, bool out, pn_cuda_dtype o_dt, cudaStream_t st,
                          const unsigned *ready) {
    const int nw = out && BV == GDNW_BV ? wscan_nw(a, grid) : 0;
    if (!out)
        scan_launch<KD, BV, false, float>(a, grid);
    else if (nw && o_dt == PN_CUDA_F32)
        wscan_pick<KD, float>(nw, a, grid, st, ready);
    else if (nw)
        wscan_pick<KD, gdnf_bf16>(nw, a, grid, st, ready);
    else if (o_dt == PN_CUDA_F32)
        scan_launch<KD, BV, true, float>(a, grid);
    else
        scan_launch<KD, BV, true, gdnf_bf16>(a, grid);
}

// st: the stream of a wgmma pass, ready: chunk-ready flags (BH·NT) of a prep running beside it
// (only a wgmma pass can wait for them; NULL = the prep has finished before the pass starts);
// the mma.sync passes run on the backend stream.
template <int KD>
static void scan_pick(int BV, const gdnf_scan_args &a, int64_t grid, bool out, pn_cuda_dtype o_dt,
                      cudaStream_t st = pn_stream(), const unsigned *ready = nullptr) {
    if (BV == 64)
        scan_pick_out<KD, 64>(a, grid, out, o_dt, st, ready);
    else
        scan_pick_out<KD, 32>(a, grid, out, o_dt, st, ready);
}

template <int KD>
static void combine_launch(const float *DM, const float *h0, float *starts, int64_t BH, int V, int nseg) {
    const size_t smem = combine_smem_bytes<KD>();
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnf_combine_kernel<KD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int64_t grid = BH * (V / GDNF_CB);
#ifndef GDNF_HOST_EMU
    gdnf_combine_kernel<KD><<<(unsigned)grid, GDNF_SCAN_THREADS, smem, pn_stream()>>>(DM, h0, starts, V, nseg);
#else
    emu_launch(grid, GDNF_SCAN_THREADS, smem, [&] { gdnf_combine_kernel<KD>(DM, h0, starts, V, nseg); });
#endif
    PN_CHECK_LAUNCH();
}

// Segments for the state pass: split only when the plain grid (base blocks, one per SM)
// leaves half the SMs or more idle. The output pass then fills one wave (⌊SMs/base⌋
// segments): its critical path, waves × chunks per segment, does not shrink with more
// segments, while the combine kernel's sequential steps grow with them. >= 4 chunks each.
static int pick_segments(int64_t base, int NT, bool out) {
    if (!out) return 1;  // the split is for outputs; the state-only call runs one pass
    if (g_force_nseg >= 1) return g_force_nseg < NT ? g_force_nseg : NT;
    const int sms = device_sms();
    if (base >= sms) return 1;
    int64_t n = sms / base;
    if (n > NT / 4) n = NT / 4;
    return n >= 2 ? (int)n : 1;
}

// ---------------------------------------------------------------- prep overlap (GDN_NOTES §20)
// A one-segment wgmma pass with fewer blocks than SMs (B8 T4096 H12 V256: 96 four-tile blocks,
// one per SM, 36 SMs idle) runs beside the second part of the prep kernel: the prep first
// covers chunks 0 .. n1−1 of every head on the whole GPU; then the pass starts on the
// high-priority side stream and the prep of chunks n1 .. NT−1 (chunk-major, so the early
// chunks come first) runs on the SMs the pass leaves free. Each prep block sets its chunk's
// flag after its last store; the pass's thread 0 waits for chunk n + 2's flag during chunk n
// (gdn_wscan.cuh). Deadlock-free: the prep never waits, and the pass's blocks, at most SMs − 1
// of them, leave at least one SM to it. n1 is set so that the prep on the free SMs stays
// ahead of the pass: with the pass PASS_PER_PREP times as long as the whole prep on the whole
// GPU, the prep on a share φ = free SMs / SMs of the GPU needs the first (1 − φ·PASS_PER_PREP)
// of the chunks done before the pass starts (at least 1/8). ncu gives 2.5 for the pass alone
// (GDN_NOTES §16); beside the prep the pass runs ~15% slower (the memory system is shared),
// and the sweep of the first slice on the H100 (three repeats, GDN_NOTES §20) was fastest at
// 16–20% for B8 T4096 H12 K96 V256 (0.526–0.533 ms against 0.587–0.593 with the prep first,
// 0.542–0.548 at 33%) and at 12% for B4 T4096 H16 K128 V128: 3.0 gives 19% and 12%.
#define GDNF_PASS_PER_PREP 3.0
static int g_overlap = -1, g_overlap_pct = 0, g_last_overlap = 0;

// Chunks the prep covers before the pass starts (the n1 above), or 0: no overlap.
static int overlap_split(int64_t blocks, int NT) {
    if (g_overlap == 0 || NT < 2) return 0;
    const int sms = device_sms();
    const int64_t free_sms = sms - blocks;
    // automatic: only where an eighth of the GPU or more is free; forced (1): any free SM
    if (free_sms < 1 || (g_overlap < 0 && free_sms * 8 < sms)) return 0;
    double f = g_overlap_pct > 0 ? g_overlap_pct / 100.0 : 1.0 - (double)free_sms / sms * GDNF_PASS_PER_PREP;
    if (f < 0.125) f = 0.125;
    const int n1 = (int)ceil(f * NT);  // >= 1
    return n1 < NT ? n1 : 0;
}

template <int KD>
static void fwd_fast(int B, int T, int H, int V, float scale, int l2, const gdnf_bf16 *q, const gdnf_bf16 *k,
                     const gdnf_bf16 *v, const float *g, const float *beta, const float *h0, void *o,
                     pn_cuda_dtype o_dt, float *ht) {
    const int64_t BH = (int64_t)B * H;
    const int NT = (int)pn_ceil_div(T, GDNF_C);
    const int BV = pn_cuda_gdn_fast_pick_bv(V), ntiles = V / BV;
    const int64_t nchunks = BH * NT;
    if (nchunks > 0x7fffffff || BH * NT * ((V + KD) / 32) > 0x7fffffff) {
        fprintf(stderr, "postnas: internal error: %s: gated delta rule fast forward: grid too large (B·H = %lld, T = %d)\n",
                __FILE__, (long long)BH, T);
        exit(1);
    }
    g_last_wgmma = 0;
    gdnf_bf16 *A = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)nchunks * GDNF_C * GDNF_C * 2);
    gdnf_bf16 *P = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)nchunks * GDNF_C * GDNF_C * 2);
    float4 *R = (float4 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)nchunks * GDNF_C * sizeof(float4));
    g_last_overlap = 0;

    gdnf_scan_args a;
    memset(&a, 0, sizeof a);
    a.q = q, a.k = k, a.v = v, a.A = A, a.P = P, a.rows = R, a.o = o;
    a.T = T, a.H = H, a.V = V, a.NT = NT;
    int nseg = pick_segments(BH * ntiles, NT, o != NULL);
    int cps = NT;
    if (nseg >= 2) {
        cps = (int)pn_ceil_div(NT, nseg);
        nseg = (int)pn_ceil_div(NT, cps);  // no empty segment
    }
    if (nseg < 2) {
        a.cps = NT, a.nseg = 1, a.ntiles = ntiles;
        a.s0 = h0, a.s0_nseg = 1;
        a.s1 = ht, a.s1_nseg = 1, a.s1_cols = V, a.s1_last_only = 0, a.ident = 0;
        const int nw = o && BV == GDNW_BV ? wscan_nw(a, BH * ntiles) : 0;
        const int n1 = nw ? overlap_split(BH * pn_ceil_div(ntiles, nw), NT) : 0;
        if (n1 == 0) {
            prep_launch<KD>(q, k, g, beta, A, P, R, BH, T, H, NT, scale, l2);
            scan_pick<KD>(BV, a, BH * ntiles, o != NULL, o_dt);
        } else {
            const size_t fb = (size_t)nchunks * sizeof(unsigned);
            unsigned *flags = (unsigned *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, fb);
#ifndef GDNF_HOST_EMU
            PN_CHECK_CUDA(cudaMemsetAsync(flags, 0, fb, pn_stream()));
#else
            memset(flags, 0, fb);
#endif
            prep_launch<KD>(q, k, g, beta, A, P, R, BH, T, H, NT, scale, l2, 0, n1, flags);
#ifndef GDNF_HOST_EMU
            const cudaStream_t side = pn_cuda_side_fork();
            scan_pick<KD>(BV, a, BH * ntiles, true, o_dt, side, flags);
            prep_launch<KD>(q, k, g, beta, A, P, R, BH, T, H, NT, scale, l2, n1, NT - n1, flags);
            pn_cuda_side_join();  // before the arena may hand out flags, A, P, R again
#else
            // the emulation runs each launch to its end: the whole prep first
            prep_launch<KD>(q, k, g, beta, A, P, R, BH, T, H, NT, scale, l2, n1, NT - n1, flags);
            scan_pick<KD>(BV, a, BH * ntiles, true, o_dt, pn_stream(), flags);
#endif
            pn_cuda_free(flags);
            g_last_overlap = n1;
        }
        g_last_nseg = 1;
    } else {
        prep_launch<KD>(q, k, g, beta, A, P, R, BH, T, H, NT, scale, l2);
        // (a) segments 0 .. nseg−2 from [0 | I]: end states [D | M] (BH, nseg−1, KD, V + KD)
        const int W = V + KD, BVp = W % 64 == 0 ? 64 : 32;
        float *DM = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)BH * (nseg - 1) * KD * W * sizeof(float));
        float *starts = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)BH * nseg * KD * V * sizeof(float));
        gdnf_scan_args p = a;
        p.cps = cps, p.nseg = nseg - 1, p.ntiles = W / BVp;
        p.s0 = NULL, p.s0_nseg = 1;
        p.s1 = DM, p.s1_nseg = nseg - 1, p.s1_cols = W, p.s1_last_only = 0, p.ident = 1;
        p.o = NULL;
        scan_pick<KD>(BVp, p, BH * (nseg - 1) * p.ntiles, false, o_dt);
        // (b) start states of every segment
        combine_launch<KD>(DM, h0, starts, BH, V, nseg);
        // (c) every segment from its start, with outputs; the last one writes ht
        a.cps = cps, a.nseg = nseg, a.ntiles = ntiles;
        a.s0 = starts, a.s0_nseg = nseg;
        a.s1 = ht, a.s1_nseg = 1, a.s1_cols = V, a.s1_last_only = 1, a.ident = 0;
        scan_pick<KD>(BV, a, BH * nseg * ntiles, true, o_dt);
        pn_cuda_free(DM);
        pn_cuda_free(starts);
        g_last_nseg = nseg;
    }
    // Freed blocks return to the cache; later work on the stream runs after these kernels.
    pn_cuda_free(A);
    pn_cuda_free(P);
    pn_cuda_free(R);
}

static bool gdnf_aligned(const void *p, uintptr_t m) { return ((uintptr_t)p & (m - 1)) == 0; }

extern "C" int pn_cuda_gated_delta_fwd_fast_supported(int K, int V) {
    return (K == 64 || K == 96 || K == 128) && V >= 32 && V % 32 == 0;
}

extern "C" void pn_cuda_gated_delta_fwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                             const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                             const float *beta, const float *h0, void *o, pn_cuda_dtype o_dt,
                                             float *ht) {
    const bool aligned = gdnf_aligned(q, 16) && gdnf_aligned(k, 16) && gdnf_aligned(v, 16) && gdnf_aligned(o, 16) &&
                         gdnf_aligned(h0, 8) && gdnf_aligned(ht, 8);
    // Unsupported head sizes, misaligned buffers and T == 0 (state copy) run the
    // correctness-first kernels of gdn.cu, which share this contract.
    if (!pn_cuda_gated_delta_fwd_fast_supported(K, V) || !aligned || T <= 0) {
        g_last_nseg = 0;
        pn_cuda_gated_delta_fwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, o, o_dt, ht);
        return;
    }
    if ((int64_t)B * H <= 0 || (!o && !ht)) {
        g_last_nseg = 1;
        return;
    }
    const gdnf_bf16 *qb = reinterpret_cast<const gdnf_bf16 *>(q), *kb = reinterpret_cast<const gdnf_bf16 *>(k);
    const gdnf_bf16 *vb = reinterpret_cast<const gdnf_bf16 *>(v);
    if (K == 64)
        fwd_fast<64>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, o, o_dt, ht);
    else if (K == 96)
        fwd_fast<96>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, o, o_dt, ht);
    else
        fwd_fast<128>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, o, o_dt, ht);
}

extern "C" void pn_cuda_gdn_fast_debug_segments(int nseg) { g_force_nseg = nseg > 0 ? nseg : 0; }
static int g_force_bv = 0;
extern "C" void pn_cuda_gdn_fast_debug_bv(int bv) { g_force_bv = bv == 32 || bv == 64 ? bv : 0; }
extern "C" int pn_cuda_gdn_fast_pick_bv(int V) {
    if (g_force_bv == 32 || (g_force_bv == 64 && V % 64 == 0)) return g_force_bv;
    return V % 64 == 0 ? 64 : 32;
}
extern "C" int pn_cuda_gdn_fast_debug_last_segments(void) { return g_last_nseg; }
extern "C" void pn_cuda_gdn_fast_debug_wgmma(int nw) {
    g_wgmma_nw = nw == 0 || nw == 1 || nw == 2 || nw == 4 ? nw : -1;
}
extern "C" int pn_cuda_gdn_fast_debug_last_wgmma(void) { return g_last_wgmma; }
extern "C" void pn_cuda_gdn_fast_debug_prep_overlap(int mode, int first_pct) {
    g_overlap = mode < 0 ? -1 : mode > 0 ? 1 : 0;
    g_overlap_pct = first_pct > 0 && first_pct < 100 ? first_pct : 0;
}
extern "C" int pn_cuda_gdn_fast_debug_last_overlap(void) { return g_last_overlap; }

extern "C" void pn_cuda_gdn_fast_debug_prep(int B, int T, int H, int K, float scale, int qk_l2norm, const pn_bf16 *q,
                                            const pn_bf16 *k, const float *g, const float *beta, pn_bf16 *A,
                                            pn_bf16 *P, float *rows) {
    if (!(K == 64 || K == 96 || K == 128) || T <= 0 || (int64_t)B * H <= 0 || !gdnf_aligned(q, 16) ||
        !gdnf_aligned(k, 16) || !gdnf_aligned(rows, 16) || !gdnf_aligned(A, 16) || !gdnf_aligned(P, 16)) {
        fprintf(stderr, "postnas: internal error: %s: debug prep: unsupported call (K = %d, T = %d)\n", __FILE__, K, T);
        exit(1);
    }
    const int64_t BH = (int64_t)B * H;
    const int NT = (int)pn_ceil_div(T, GDNF_C);
    const gdnf_bf16 *qb = reinterpret_cast<const gdnf_bf16 *>(q), *kb = reinterpret_cast<const gdnf_bf16 *>(k);
    gdnf_bf16 *Ab = reinterpret_cast<gdnf_bf16 *>(A), *Pb = reinterpret_cast<gdnf_bf16 *>(P);
    float4 *R = reinterpret_cast<float4 *>(rows);
    if (K == 64)
        prep_launch<64>(qb, kb, g, beta, Ab, Pb, R, BH, T, H, NT, scale, qk_l2norm);
    else if (K == 96)
        prep_launch<96>(qb, kb, g, beta, Ab, Pb, R, BH, T, H, NT, scale, qk_l2norm);
    else
        prep_launch<128>(qb, kb, g, beta, Ab, Pb, R, BH, T, H, NT, scale, qk_l2norm);
}
