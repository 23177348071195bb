// gdnf_emu.h — host emulation of the CUDA device features that the tensor-core linear-attention
// kernels use, so that their real source (gdn_fast.cu, gdn_fast_bwd.cu, sgla_fast.cu,
// gla_fast.cu and the headers they include) compiles as host C++ (-DGDNF_HOST_EMU, through
// the *_emu.cpp wrappers here) and runs on a CPU: the cpu tests tests/emu/test_gdn_emu.c and
// test_gla_emu.c check the kernels' index math, layouts, barriers and host orchestration on
// every CI run, where the gpu tests need a lent H100.
//
// What is emulated (emu_runtime.cpp):
//  - a launch runs its blocks one after another; each block's threads are fibers (own stacks,
//    a register-saving switch on x86-64, ucontext elsewhere) that run until they reach a
//    collective, so every thread has its own locals as on the GPU. Shared memory is per
//    block and starts as 0xFF bytes (NaN in fp32 and bf16), so a read of an unwritten tile
//    shows up in the outputs;
//  - collectives: __syncthreads, named barriers (bar.sync id, n), __syncwarp and the
//    shuffles, ldmatrix (.trans), movmatrix, mma.sync m16n8k16 and wgmma m64nNk16 (both
//    operands in shared memory, through the descriptors of wgmma.cuh). The last thread to
//    arrive runs the operation for all of them; threads that disagree on which collective
//    they are at (divergence), or a block where every live thread waits (a barrier some
//    thread never reaches), stop the run with a message naming the block and thread;
//  - a warpgroup's products read shared memory as it was when its first warp reached the
//    first product after its last wgmma.wait_group, so a tile another warp writes without a
//    barrier before the products is read stale (emu_runtime.cpp, WgSnap); threads run in
//    index order or, with emu_set_reverse(1), the reverse, so a plain shared-memory read of
//    another thread's write with no barrier between reads stale data in one of the orders;
//  - cp.async is deferred: a copy lands in shared memory only when its thread waits for its
//    group (cp.async.wait_group / wait_all), so a tile read before its wait reads the
//    previous contents, as it may on the GPU; with emu_set_copy_eager(1) it lands at its
//    issue instead, so a copy into a buffer that another thread still reads (a fetch issued
//    before the barrier that says the readers are done) overwrites what that thread reads;
//  - with emu_set_greedy(1) the first runnable thread (in index order, or the reverse) always
//    runs next, so the early threads of a block run as far ahead of the others as their
//    barriers let them (a producer that does not wait for its consumers shows);
//  - products sum in fp32 over k in order; bf16 rounds to nearest even.
// What is not: timing, occupancy, register and shared-memory limits, bank conflicts, writes
// to a product's operands between its issue and its wait, and races that neither thread
// order shows (compute-sanitizer racecheck on the device covers those). Checked by breaking
// the kernels on purpose (2026-11-24): a barrier removed before a wgmma product of the forward
// pass, or a cp.async wait made to leave the newest group in flight in the backward's
// per-chunk kernel, makes tests/emu/test_gdn_emu fail with infinite errors.
#pragma once
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <functional>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)

// ---------------------------------------------------------------- vector types
struct float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// ---------------------------------------------------------------- bf16
struct __nv_bfloat16 {
    uint16_t x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
static inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.x << 16); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        b.x = (uint16_t)((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
    else
        b.x = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return b;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
    return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{__bfloat162float(h.x), __bfloat162float(h.y)};
}
#define __expf expf  // (glibc declares a __expf of its own)
// CUDA's integer min / max overloads
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }

// ---------------------------------------------------------------- launch, thread identity
struct emu_dim3 {
    unsigned x, y, z;
};
int emu_thread_index(void);
int64_t emu_block_index(void);
int emu_block_threads(void);
unsigned char *emu_smem(void);
#define threadIdx (emu_dim3{(unsigned)emu_thread_index(), 0u, 0u})
#define blockIdx (emu_dim3{(unsigned)emu_block_index(), 0u, 0u})
#define blockDim (emu_dim3{(unsigned)emu_block_threads(), 1u, 1u})
#define GDNF_SMEM emu_smem()

// Runs body (the kernel call) for every thread of blocks 0 .. grid−1, `threads` per block,
// with `smem` bytes of shared memory per block; returns when the grid has finished.
void emu_run(int64_t grid, int threads, size_t smem, const std::function<void()> &body);
template <typename F>
static void emu_launch(int64_t grid, int threads, size_t smem, F &&f) {
    emu_run(grid, threads, smem, std::function<void()>(f));
}

// ---------------------------------------------------------------- host runtime stand-ins
typedef void *cudaStream_t;
enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8, cudaDevAttrMultiProcessorCount = 16 };
template <typename F>
static inline int cudaFuncSetAttribute(F, int, int) { return 0; }
static inline int cudaGetDevice(int *d) { return *d = 0, 0; }
int emu_device_sms(void);  // the SM count the host code sees (132, an H100's; emu_set_device_sms)
extern "C" void emu_set_device_sms(int sms);  // for the tests (C)
// Threads of a block run (to their next collective) in index order, or from the last to the
// first: a read of shared memory that another thread writes with no barrier between them
// reads stale data in one of the two orders.
extern "C" void emu_set_reverse(int on);
extern "C" void emu_set_copy_eager(int on);
extern "C" void emu_set_greedy(int on);
static inline int cudaDeviceGetAttribute(int *v, int, int) { return *v = emu_device_sms(), 0; }
#define PN_CHECK_CUDA(call) ((void)(call))
#define PN_CHECK_LAUNCH() ((void)0)
#define PN_CHECK_LAUNCH_ON(st) ((void)(st))
static inline cudaStream_t pn_stream(void) { return nullptr; }
static inline int64_t pn_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline bool pn_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// ---------------------------------------------------------------- collectives (emu_runtime.cpp)
void emu_syncthreads(void);
void emu_bar_sync(int id, int count);
void emu_syncwarp(void);
enum { EMU_SHFL_IDX, EMU_SHFL_UP, EMU_SHFL_DOWN, EMU_SHFL_XOR };  // emu_shfl's kind
uint64_t emu_shfl(uint64_t v, int kind, int arg);
void emu_ldsm(uint32_t r[4], const void *p, int trans);
uint32_t emu_movm_trans(uint32_t x);
void emu_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
void emu_wgmma(float *d, int n, uint64_t da, uint64_t db, int acc, int ta, int tb);
void emu_wg_wait(void);
void emu_cp_async(void *dst, const void *src, int bytes, bool valid);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int keep);  // keep < 0: every copy, committed or not

static inline void __syncthreads(void) { emu_syncthreads(); }
// Launches run one after another to their end, so only the compiler's ordering matters.
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu_syncwarp(); }
template <typename T>
static inline T emu_shfl_t(T v, int kind, int arg) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = emu_shfl(u, kind, arg);
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
template <typename T>
static inline T __shfl_sync(unsigned, T v, int src) {
    return emu_shfl_t(v, EMU_SHFL_IDX, src);
}
template <typename T>
static inline T __shfl_up_sync(unsigned, T v, int delta) {
    return emu_shfl_t(v, EMU_SHFL_UP, delta);
}
template <typename T>
static inline T __shfl_down_sync(unsigned, T v, int delta) {
    return emu_shfl_t(v, EMU_SHFL_DOWN, delta);
}
template <typename T>
static inline T __shfl_xor_sync(unsigned, T v, int mask) {
    return emu_shfl_t(v, EMU_SHFL_XOR, mask);
}

// The device primitives of gdn_fast_common.cuh.
static inline void ldsm_x4(uint32_t r[4], const void *p) { emu_ldsm(r, p, 0); }
static inline void ldsm_x4_t(uint32_t r[4], const void *p) { emu_ldsm(r, p, 1); }
static inline void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) { emu_mma_bf16(c, a, b0, b1); }
static inline void cp_async16(void *dst, const void *src, bool valid) { emu_cp_async(dst, src, 16, valid); }
static inline void cp_async8(void *dst, const void *src, bool valid) { emu_cp_async(dst, src, 8, valid); }
static inline uint32_t movm_trans(uint32_t x) { return emu_movm_trans(x); }
static inline void cp_async_commit(void) { emu_cp_async_commit(); }
static inline void cp_async_wait_all(void) { emu_cp_async_wait(-1); }
static inline void cp_async_wait_but_last(void) { emu_cp_async_wait(1); }

// The primitives of wgmma.cuh. A descriptor holds the operand's offset in the block's shared
// memory and the two strides in the hardware's encoding (16-byte units, 14 bits each).
static inline int wg_off(int r, int c, int C) { return ((r >> 3) * (C >> 3) + (c >> 3)) * 128 + (r & 7) * 16 + (c & 7) * 2; }
uint64_t wg_desc(const void *p, uint32_t lbo, uint32_t sbo);
static inline void wg_fence(void) {}
static inline void wg_commit(void) {}
static inline void wg_wait_all(void) { emu_wg_wait(); }
static inline void wg_fence_proxy(void) {}
static inline void wg_bar_sync(int w) { emu_bar_sync(1 + w, 128); }
template <typename T>
static inline T *wg_opaque(T *p) {
    return p;
}
static inline int wg_opaque_i(int x) { return x; }
// wg_mma_nN<TA, TB>(d, da, db, acc) of wgmma.cuh for each N the kernels use.
#define EMU_WG_MMA(N)                                                                        \
    template <int TA, int TB>                                                                \
    static inline void wg_mma_n##N(float (&d)[(N) / 2], uint64_t da, uint64_t db, int acc) { \
        emu_wgmma(d, (N), da, db, acc, TA, TB);                                              \
    }
EMU_WG_MMA(32)
EMU_WG_MMA(48)
EMU_WG_MMA(64)
EMU_WG_MMA(96)
EMU_WG_MMA(128)
#undef EMU_WG_MMA

// The runtime's side stream (memory.cu): the emulation runs every launch at once, in order.
static inline cudaStream_t pn_cuda_side_fork(void) { return nullptr; }
static inline void pn_cuda_side_join(void) {}
