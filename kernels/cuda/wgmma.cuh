// wgmma.cuh — Hopper warpgroup matrix products (wgmma.mma_async, sm_90a) on bf16 operands in
// shared memory with fp32 accumulators, for kernels that keep a small state in registers and
// multiply it by per-step tiles (gdn_wscan.cuh, gdn_fast_bwd.cu's chunk kernel). Needs
// -gencode=arch=compute_90a,code=sm_90a.
//
// Operand layout: no swizzle. A tile (R, C) of bf16 is stored as 8×8 "core matrices" of 128
// contiguous bytes (8 rows of 16 bytes), row blocks outer: wg_off(r, c, C). The same bytes
// serve as a K-major operand (rows = M or N, columns = K) and as an MN-major one (rows = K,
// columns = M or N; imm-trans = 1). In both the descriptor's leading byte offset is the
// distance between core matrices adjacent along K and the stride byte offset the distance
// along M / N — measured on the H100 for all four transpose combinations and N = 64, 96
// (results/gpu-tests/2026-11-23-h100-session12-wgmma-layout-probe.log; the other reading,
// LBO and SBO swapped for MN-major operands, gives wrong products or faults).
//   K-major, rows × C:  LBO = 128, SBO = 16·C, one 16-deep k step = +256 bytes
//   MN-major, rows (K) × C:  LBO = 16·C, SBO = 128, one k step = +32·C bytes
// Accumulator fragment of m64nNk16 (thread = 32·warp + lane, g = lane/4, t = lane%4):
// d[4i + 2h + e] = (row 16·warp + g + 8h, column 8i + 2t + e), as mma.sync's C per 8 columns.
//
// Ordering: shared memory written by ordinary stores or cp.async and read next by wgmma needs
// wg_fence_proxy() in each writing thread before the barrier; wg_fence() precedes the first
// wgmma of a phase whose accumulators ordinary instructions touched.
#pragma once
#ifndef GDNF_HOST_EMU
#include <stdint.h>

// Byte offset of element (r, c) in the core-matrix tiling of a tile with C columns.
static __host__ __device__ __forceinline__ int wg_off(int r, int c, int C) {
    return ((r >> 3) * (C >> 3) + (c >> 3)) * 128 + (r & 7) * 16 + (c & 7) * 2;
}

static __device__ __forceinline__ uint64_t wg_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32);
}
static __device__ __forceinline__ void wg_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wg_commit(void) {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wg_wait_all(void) {
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// Barrier of warpgroup w's 128 threads alone (named barrier 1 + w; 0 is __syncthreads).
static __device__ __forceinline__ void wg_bar_sync(int w) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(1 + w) : "memory");
}
static __device__ __forceinline__ void wg_fence_proxy(void) {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// The pointer, opaque to the compiler: descriptors built from it inside a loop are not hoisted
// out of it (hoisted, the per-step descriptors of every tile took ~70 registers and spilled).
template <typename T>
static __device__ __forceinline__ T *wg_opaque(T *p) {
    asm volatile("" : "+l"(p));
    return p;
}
static __device__ __forceinline__ int wg_opaque_i(int x) {
    asm volatile("" : "+r"(x));
    return x;
}

// d (+)= A · B, m64nNk16; acc = 0 overwrites d. TA / TB: 1 = MN-major operand.
template <int TA, int TB>
static __device__ __forceinline__ void wg_mma_n32(float (&d)[16], uint64_t da, uint64_t db, int acc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, %19, %20;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
}
template <int TA, int TB>
static __device__ __forceinline__ void wg_mma_n48(float (&d)[24], uint64_t da, uint64_t db, int acc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1, %27, %28;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
}
template <int TA, int TB>
static __device__ __forceinline__ void wg_mma_n64(float (&d)[32], uint64_t da, uint64_t db, int acc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, %35, %36;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
}
template <int TA, int TB>
static __device__ __forceinline__ void wg_mma_n96(float (&d)[48], uint64_t da, uint64_t db, int acc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, %48, %49, p, 1, 1, %51, %52;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
        : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
}
template <int TA, int TB>
static __device__ __forceinline__ void wg_mma_n128(float (&d)[64], uint64_t da, uint64_t db, int acc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, %67, %68;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(acc), "n"(TA), "n"(TB));
}
#endif  // GDNF_HOST_EMU

// N chosen at compile time (the state width of the caller).
template <int N, int TA, int TB>
static __device__ __forceinline__ void wg_mma(float (&d)[N / 2], uint64_t da, uint64_t db, int acc) {
    static_assert(N == 32 || N == 48 || N == 64 || N == 96 || N == 128, "wg_mma: N must be 32, 48, 64, 96 or 128");
    if constexpr (N == 32)
        wg_mma_n32<TA, TB>(d, da, db, acc);
    else if constexpr (N == 48)
        wg_mma_n48<TA, TB>(d, da, db, acc);
    else if constexpr (N == 64)
        wg_mma_n64<TA, TB>(d, da, db, acc);
    else if constexpr (N == 96)
        wg_mma_n96<TA, TB>(d, da, db, acc);
    else
        wg_mma_n128<TA, TB>(d, da, db, acc);
}
