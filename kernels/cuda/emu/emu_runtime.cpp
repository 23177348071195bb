// emu_runtime.cpp — the runtime behind gdnf_emu.h: blocks of fibers, collectives, deferred
// cp.async, the warp and warpgroup matrix products, and the few pn_cuda_* host calls the
// emulated kernels' host code makes (memory from malloc). Single-threaded: one fiber runs at
// a time and switches only inside a collective, so no locking is needed.
//
// Scheduling: emu_run runs a block's threads round-robin; a thread runs until it arrives at a
// collective that still waits for others (it then swaps back to the scheduler) or returns
// from the kernel. The last thread to arrive at a collective runs the operation on every
// participant's data (their stacks stay alive while they wait) and goes on. A pass over the
// block in which no thread could run while some have not finished is a deadlock: the run
// stops and names the waiting threads.
#include "kernels/cuda/emu/gdnf_emu.h"
#include <stdarg.h>
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// ---------------------------------------------------------------- fiber switch
// On x86-64 a fiber switch saves the callee-saved registers, MXCSR and the x87 control word on
// the old stack and loads them from the new one (System V ABI): glibc's swapcontext also
// saves the signal mask with a system call on every switch (half of the run time), and under
// AddressSanitizer it clears the shadow of the whole target stack each time. Elsewhere
// ucontext does the switch.
#if defined(__x86_64__)
extern "C" void emu_fiber_switch(void **save_sp, void *load_sp);
asm(R"(
    .text
    .globl emu_fiber_switch
    .type emu_fiber_switch, @function
emu_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_fiber_switch, .-emu_fiber_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
struct emu_ctx {
    void *sp = nullptr;
};
static void ctx_switch(emu_ctx *from, emu_ctx *to) { emu_fiber_switch(&from->sp, to->sp); }
// A context that starts fn on the stack [base, base + size) (fn must never return).
static void ctx_make(emu_ctx *c, unsigned char *base, size_t size, void (*fn)(void)) {
    uint64_t *top = (uint64_t *)(((uintptr_t)(base + size)) & ~(uintptr_t)15);
    *--top = 0;                  // (alignment: fn starts with rsp ≡ 8 mod 16, as after a call)
    *--top = (uint64_t)(uintptr_t)fn;  // the switch's ret goes here
    for (int r = 0; r < 6; r++) *--top = 0;  // rbp rbx r12 r13 r14 r15
    uint32_t mx;
    uint16_t cw;
    asm volatile("stmxcsr %0" : "=m"(mx));
    asm volatile("fnstcw %0" : "=m"(cw));
    *--top = (uint64_t)mx | ((uint64_t)cw << 32);
    c->sp = top;
}
#else
struct emu_ctx {
    ucontext_t uc;
};
static void ctx_switch(emu_ctx *from, emu_ctx *to) { swapcontext(&from->uc, &to->uc); }
static void ctx_make(emu_ctx *c, unsigned char *base, size_t size, void (*fn)(void)) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = base;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, fn, 0);
}
#endif

namespace {

constexpr int MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 512 * 1024;

enum Kind { K_NONE, K_SYNC, K_BAR, K_SYNCWARP, K_SHFL, K_LDSM, K_MOVM, K_MMA, K_WGMMA };
const char *kind_name(int k) {
    static const char *n[] = {"-", "__syncthreads", "bar.sync", "__syncwarp", "shfl", "ldmatrix", "movmatrix", "mma.sync", "wgmma"};
    return n[k];
}

// One participant's data at a collective.
struct Arg {
    const void *in;  // the thread's operand (pointer to its registers or to its shared-memory address)
    void *out;       // where its result goes
    uint64_t u;      // a scalar operand (shuffle value)
    int i0, i1;      // small operands (shuffle kind / argument, ldmatrix trans)
};

struct Coll {
    int kind = K_NONE, arrived = 0, need = 0;
    uint64_t key = 0;  // what every participant must agree on (shuffle kind, wgmma shape, ...)
    Arg arg[MAX_THREADS];
};

struct Copy {
    void *dst;
    unsigned char bytes[16];
    int n;
};

struct Thread {
    emu_ctx ctx;
    int tid = 0;
    bool done = false;
    Coll *waiting = nullptr;  // the collective it waits at
    int wg_group = 0;         // wgmma.wait_group 0 passed so far
    std::vector<Copy> pending;
    std::vector<size_t> groups;  // end index in `pending` of each committed group
};

struct Block {
    int nthreads = 0;
    int64_t bid = 0;
    unsigned char *smem = nullptr;
    size_t smem_bytes = 0;
    int live = 0;
    Coll block;                           // __syncthreads
    Coll bar[16];                         // named barriers
    std::vector<Coll *> warp, wg;         // per warp, per warpgroup
};

// The products of a warpgroup read shared memory as it was when the first of its warps had
// arrived (all 32 lanes) at the first product after the warpgroup's last wgmma.wait_group:
// the warps of a warpgroup are not in step and the products run asynchronously until the
// wait, so every tile they read must be complete before the first is issued (a barrier and
// fence.proxy.async). A tile that another warp writes with no barrier before the products,
// or one written between the products and their wait, is read with its previous contents.
// Threads run in index order (or the reverse), so one warp arrives while the others have
// not yet run the code before the products.
struct WgSnap {
    int warp_arrived[4] = {0, 0, 0, 0};
    int group = -1;  // the product group (per thread: waits passed) the snapshot belongs to
    std::vector<unsigned char> mem;
};
WgSnap g_snap[MAX_THREADS / 128];

Block g_blk;
Thread g_th[MAX_THREADS];
unsigned char *g_stacks = nullptr;
emu_ctx g_sched;
Thread *g_cur = nullptr;
const std::function<void()> *g_body = nullptr;
int g_sms = 132;
bool g_reverse = false;  // run a block's threads from the last to the first (emu_set_reverse)
bool g_eager = false;    // cp.async lands at its issue, not at its wait (emu_set_copy_eager)
bool g_greedy = false;   // always run the first runnable thread (emu_set_greedy)
#ifdef EMU_ASAN
const void *g_main_bottom = nullptr;
size_t g_main_size = 0;
#endif

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...) {
    fprintf(stderr, "postnas: emulated kernel (block %lld, thread %d): ", (long long)g_blk.bid, g_cur ? g_cur->tid : -1);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void to_sched(void) {
    Thread *me = g_cur;
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(me->done ? nullptr : &fake, g_main_bottom, g_main_size);
    ctx_switch(&me->ctx, &g_sched);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    ctx_switch(&me->ctx, &g_sched);
#endif
}

void fiber_main(void) {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_main_bottom, &g_main_size);
#endif
    (*g_body)();
    g_cur->done = true;
    g_blk.live--;
    to_sched();
}

// The collective `c` of `need` threads: record this thread's argument, then either wait for
// the others or, as the last, run op over all of them and release them.
template <typename Op>
void collective(Coll &c, int kind, int need, uint64_t key, int slot, const Arg &a, Op &&op) {
    if (c.arrived == 0) {
        c.kind = kind, c.need = need, c.key = key;
    } else if (c.kind != kind || c.key != key || c.need != need) {
        die("divergence: this thread is at %s (key %llu) while others of its group wait at %s (key %llu)",
            kind_name(kind), (unsigned long long)key, kind_name(c.kind), (unsigned long long)c.key);
    }
    c.arg[slot] = a;
    if (++c.arrived < need) {
        g_cur->waiting = &c;
        to_sched();
        return;  // released: the last arriver ran the operation
    }
    op(c.arg);
    c.arrived = 0, c.kind = K_NONE;
    for (int i = 0; i < g_blk.nthreads; i++)
        if (g_th[i].waiting == &c) g_th[i].waiting = nullptr;
}

int lane(void) { return g_cur->tid & 31; }
Coll &warp_coll(void) { return *g_blk.warp[g_cur->tid >> 5]; }

float bf(uint16_t x) { return __bfloat162float(__nv_bfloat16{x}); }
uint16_t lo16(uint32_t u) { return (uint16_t)(u & 0xffffu); }
uint16_t hi16(uint32_t u) { return (uint16_t)(u >> 16); }
uint32_t pack16(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

void complete_copies(Thread &t, size_t upto) {
    for (size_t i = 0; i < upto; i++) memcpy(t.pending[i].dst, t.pending[i].bytes, (size_t)t.pending[i].n);
    t.pending.erase(t.pending.begin(), t.pending.begin() + (ptrdiff_t)upto);
    for (size_t &g : t.groups) g -= upto;
}

// Element (row, k) of a wgmma shared-memory operand (wgmma.cuh): K-major = rows along M / N
// with K contiguous inside a core matrix, MN-major = the transpose.
float wg_elem(const unsigned char *mem, uint64_t desc, int mn, int k, int trans) {
    const size_t base = (size_t)(desc & 0x3fff) << 4;
    const size_t lbo = (size_t)((desc >> 16) & 0x3fff) << 4, sbo = (size_t)((desc >> 32) & 0x3fff) << 4;
    size_t off;
    if (!trans)
        off = base + (size_t)(mn >> 3) * sbo + (size_t)(k >> 3) * lbo + (size_t)(mn & 7) * 16 + (size_t)(k & 7) * 2;
    else
        off = base + (size_t)(k >> 3) * lbo + (size_t)(mn >> 3) * sbo + (size_t)(k & 7) * 16 + (size_t)(mn & 7) * 2;
    if (off + 2 > g_blk.smem_bytes) die("wgmma operand outside shared memory (offset %zu of %zu)", off, g_blk.smem_bytes);
    uint16_t x;
    memcpy(&x, mem + off, 2);
    return bf(x);
}

// Thread i of the block as a fresh fiber that will run the kernel from its start.
void fiber_init(Thread &t, int i) {
    t.tid = i, t.done = false, t.waiting = nullptr, t.wg_group = 0;
    t.pending.clear(), t.groups.clear();
#ifdef EMU_ASAN
    // the redzones of the frames an earlier fiber left on this stack when it ended
    ASAN_UNPOISON_MEMORY_REGION(g_stacks + (size_t)i * STACK_BYTES, STACK_BYTES);
#endif
    ctx_make(&t.ctx, g_stacks + (size_t)i * STACK_BYTES, STACK_BYTES, fiber_main);
}

// One block: fresh fibers for its threads, shared memory 0xFF, run until every thread returned.
void run_block(int64_t bid) {
    Block &b = g_blk;
    const int threads = b.nthreads;
    const size_t smem = b.smem_bytes;
    b.bid = bid;
    memset(b.smem, 0xff, smem);
    for (WgSnap &sn : g_snap) {
        for (int &c : sn.warp_arrived) c = 0;
        sn.group = -1;
    }
    b.live = threads;
    for (int i = 0; i < threads; i++) fiber_init(g_th[i], i);
    while (b.live > 0) {
        bool ran = false;
        for (int j = 0; j < threads; j++) {
            Thread &t = g_th[g_reverse ? threads - 1 - j : j];
            if (t.done || t.waiting) continue;
            g_cur = &t;
            ran = true;
#ifdef EMU_ASAN
            void *fake = nullptr;
            __sanitizer_start_switch_fiber(&fake, g_stacks + (size_t)t.tid * STACK_BYTES, STACK_BYTES);
            ctx_switch(&g_sched, &t.ctx);
            __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
            ctx_switch(&g_sched, &t.ctx);
#endif
            if (g_greedy) break;  // from the first thread again: the early ones run as far ahead as they can
        }
        if (!ran) {
            for (int i = 0; i < threads; i++)
                if (!g_th[i].done) {
                    g_cur = &g_th[i];
                    die("deadlock: thread %d waits at %s (%d of %d arrived) and no thread of the block can run", i,
                        kind_name(g_th[i].waiting->kind), g_th[i].waiting->arrived, g_th[i].waiting->need);
                }
        }
    }
    for (int i = 0; i < threads; i++) complete_copies(g_th[i], g_th[i].pending.size());
    g_cur = nullptr;
}

}  // namespace

// ---------------------------------------------------------------- identity
int emu_thread_index(void) { return g_cur->tid; }
int64_t emu_block_index(void) { return g_blk.bid; }
int emu_block_threads(void) { return g_blk.nthreads; }
unsigned char *emu_smem(void) { return g_blk.smem; }
int emu_device_sms(void) { return g_sms; }
extern "C" void emu_set_device_sms(int sms) { g_sms = sms > 0 ? sms : 132; }
extern "C" void emu_set_reverse(int on) { g_reverse = on != 0; }
extern "C" void emu_set_copy_eager(int on) { g_eager = on != 0; }
extern "C" void emu_set_greedy(int on) { g_greedy = on != 0; }

// ---------------------------------------------------------------- launch
void emu_run(int64_t grid, int threads, size_t smem, const std::function<void()> &body) {
    if (threads <= 0 || threads > MAX_THREADS || threads % 32) die("launch of %d threads per block", threads);
    if (!g_stacks) {
        g_stacks = (unsigned char *)mmap(nullptr, (size_t)MAX_THREADS * STACK_BYTES, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (g_stacks == MAP_FAILED) die("cannot map the fiber stacks");
    }
    Block &b = g_blk;
    b.nthreads = threads;
    b.smem_bytes = smem;
    std::vector<unsigned char> sm(smem + 16);
    b.smem = sm.data();
    for (Coll *c : b.warp) delete c;
    for (Coll *c : b.wg) delete c;
    b.warp.clear(), b.wg.clear();
    for (int w = 0; w < threads / 32; w++) b.warp.push_back(new Coll());
    for (int w = 0; w < (threads + 127) / 128; w++) b.wg.push_back(new Coll());
    g_body = &body;
    for (int64_t bid = 0; bid < grid; bid++) run_block(bid);
    b.smem = nullptr;
}

// ---------------------------------------------------------------- barriers, shuffles
void emu_syncthreads(void) {
    collective(g_blk.block, K_SYNC, g_blk.nthreads, 0, g_cur->tid, Arg{}, [](Arg *) {});
}
void emu_bar_sync(int id, int count) {
    if (id < 0 || id >= 16) die("named barrier %d", id);
    // hardware counts arrivals per warp; the kernels name whole warpgroups, so threads agree
    collective(g_blk.bar[id], K_BAR, count, (uint64_t)count, g_cur->tid % count, Arg{}, [](Arg *) {});
}
void emu_syncwarp(void) { collective(warp_coll(), K_SYNCWARP, 32, 0, lane(), Arg{}, [](Arg *) {}); }

uint64_t emu_shfl(uint64_t v, int kind, int arg) {
    uint64_t r = 0;
    Arg a{};
    a.u = v, a.out = &r, a.i0 = kind, a.i1 = arg;
    collective(warp_coll(), K_SHFL, 32, (uint64_t)kind, lane(), a, [](Arg *x) {
        uint64_t val[32];
        for (int l = 0; l < 32; l++) val[l] = x[l].u;
        for (int l = 0; l < 32; l++) {
            const int k = x[l].i0, p = x[l].i1;
            int src = l;
            if (k == EMU_SHFL_IDX) src = p & 31;
            else if (k == EMU_SHFL_UP) src = l - p >= 0 ? l - p : l;
            else if (k == EMU_SHFL_DOWN) src = l + p < 32 ? l + p : l;
            else src = (l ^ p) & 31;
            *(uint64_t *)x[l].out = val[src];
        }
    });
    return r;
}

// ---------------------------------------------------------------- warp matrix operations
void emu_ldsm(uint32_t r[4], const void *p, int trans) {
    Arg a{};
    a.in = p, a.out = r, a.i0 = trans;
    const unsigned char *s = g_blk.smem;
    if ((const unsigned char *)p < s || (const unsigned char *)p + 16 > s + g_blk.smem_bytes)
        die("ldmatrix address outside shared memory");
    collective(warp_coll(), K_LDSM, 32, (uint64_t)trans, lane(), a, [](Arg *x) {
        uint16_t m[4][8][8];  // matrix i, row j = the 8 elements at lane 8i + j's address
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 8; j++) memcpy(m[i][j], x[8 * i + j].in, 16);
        for (int l = 0; l < 32; l++) {
            uint32_t *o = (uint32_t *)x[l].out;
            const int rr = l >> 2, cc = 2 * (l & 3);
            for (int i = 0; i < 4; i++)
                o[i] = x[l].i0 ? pack16(m[i][cc][rr], m[i][cc + 1][rr]) : pack16(m[i][rr][cc], m[i][rr][cc + 1]);
        }
    });
}

uint32_t emu_movm_trans(uint32_t v) {
    uint32_t r = 0;
    Arg a{};
    a.u = v, a.out = &r;
    collective(warp_coll(), K_MOVM, 32, 0, lane(), a, [](Arg *x) {
        uint16_t m[8][8];  // lane l: row l/4, columns 2(l%4), +1
        for (int l = 0; l < 32; l++) {
            m[l >> 2][2 * (l & 3)] = lo16((uint32_t)x[l].u);
            m[l >> 2][2 * (l & 3) + 1] = hi16((uint32_t)x[l].u);
        }
        for (int l = 0; l < 32; l++) *(uint32_t *)x[l].out = pack16(m[2 * (l & 3)][l >> 2], m[2 * (l & 3) + 1][l >> 2]);
    });
    return r;
}

struct MmaIn {
    const uint32_t *a;
    uint32_t b0, b1;
};
void emu_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    MmaIn in{a, b0, b1};
    Arg x{};
    x.in = &in, x.out = c;
    collective(warp_coll(), K_MMA, 32, 0, lane(), x, [](Arg *y) {
        float A[16][16], B[16][8], D[16][8];
        for (int l = 0; l < 32; l++) {
            const MmaIn &m = *(const MmaIn *)y[l].in;
            const float *cl = (const float *)y[l].out;
            const int g = l >> 2, t = l & 3;
            A[g][2 * t] = bf(lo16(m.a[0])), A[g][2 * t + 1] = bf(hi16(m.a[0]));
            A[g + 8][2 * t] = bf(lo16(m.a[1])), A[g + 8][2 * t + 1] = bf(hi16(m.a[1]));
            A[g][2 * t + 8] = bf(lo16(m.a[2])), A[g][2 * t + 9] = bf(hi16(m.a[2]));
            A[g + 8][2 * t + 8] = bf(lo16(m.a[3])), A[g + 8][2 * t + 9] = bf(hi16(m.a[3]));
            B[2 * t][g] = bf(lo16(m.b0)), B[2 * t + 1][g] = bf(hi16(m.b0));
            B[2 * t + 8][g] = bf(lo16(m.b1)), B[2 * t + 9][g] = bf(hi16(m.b1));
            D[g][2 * t] = cl[0], D[g][2 * t + 1] = cl[1], D[g + 8][2 * t] = cl[2], D[g + 8][2 * t + 1] = cl[3];
        }
        for (int r = 0; r < 16; r++)
            for (int n = 0; n < 8; n++) {
                float s = D[r][n];
                for (int k = 0; k < 16; k++) s += A[r][k] * B[k][n];
                D[r][n] = s;
            }
        for (int l = 0; l < 32; l++) {
            float *cl = (float *)y[l].out;
            const int g = l >> 2, t = l & 3;
            cl[0] = D[g][2 * t], cl[1] = D[g][2 * t + 1], cl[2] = D[g + 8][2 * t], cl[3] = D[g + 8][2 * t + 1];
        }
    });
}

// ---------------------------------------------------------------- warpgroup products
uint64_t wg_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    const ptrdiff_t off = (const unsigned char *)p - g_blk.smem;
    if (off < 0 || (size_t)off >= g_blk.smem_bytes || (off & 15) || (lbo & 15) || (sbo & 15))
        die("wgmma descriptor: offset %td, LBO %u, SBO %u: not in shared memory or not 16-byte aligned", off, lbo, sbo);
    return (uint64_t)(((uint32_t)off & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32);
}

struct WgIn {
    uint64_t da, db;
    int acc;
};

void emu_wgmma(float *d, int n, uint64_t da, uint64_t db, int acc, int ta, int tb) {
    WgIn in{da, db, acc};
    Arg x{};
    x.in = &in, x.out = d, x.i0 = n;
    const int wgi = g_cur->tid >> 7;
    WgSnap &sn = g_snap[wgi];
    if (++sn.warp_arrived[(g_cur->tid >> 5) & 3] == 32 && sn.group != g_cur->wg_group) {
        sn.mem.assign(g_blk.smem, g_blk.smem + g_blk.smem_bytes);
        sn.group = g_cur->wg_group;
    }
    const uint64_t key = (uint64_t)n | ((uint64_t)ta << 16) | ((uint64_t)tb << 17);
    collective(*g_blk.wg[wgi], K_WGMMA, 128, key, g_cur->tid & 127, x, [n, ta, tb, &sn](Arg *y) {
        const WgIn &w0 = *(const WgIn *)y[0].in;
        for (int l = 1; l < 128; l++) {
            const WgIn &w = *(const WgIn *)y[l].in;
            if (w.da != w0.da || w.db != w0.db || w.acc != w0.acc)
                die("wgmma: the warpgroup's threads disagree on the descriptors or scale-d");
        }
        static float A[64][16], B[16][128];
        for (int m = 0; m < 64; m++)
            for (int k = 0; k < 16; k++) A[m][k] = wg_elem(sn.mem.data(), w0.da, m, k, ta);
        for (int k = 0; k < 16; k++)
            for (int c = 0; c < n; c++) B[k][c] = wg_elem(sn.mem.data(), w0.db, c, k, tb);
        // thread 32·warp + lane: d[4i + 2h + e] = (row 16·warp + g + 8h, column 8i + 2t + e)
        for (int l = 0; l < 128; l++) {
            float *dl = (float *)y[l].out;
            const int warp = l >> 5, g = (l & 31) >> 2, t = l & 3;
            for (int i = 0; i < n / 8; i++)
                for (int h = 0; h < 2; h++)
                    for (int e = 0; e < 2; e++) {
                        const int r = 16 * warp + g + 8 * h, c = 8 * i + 2 * t + e;
                        float s = w0.acc ? dl[4 * i + 2 * h + e] : 0.f;
                        for (int k = 0; k < 16; k++) s += A[r][k] * B[k][c];
                        dl[4 * i + 2 * h + e] = s;
                    }
        }
        for (int &c : sn.warp_arrived) c = 0;
    });
}
// wgmma.wait_group 0: the thread's next products are a new group, with a new snapshot.
void emu_wg_wait(void) { g_cur->wg_group++; }

// ---------------------------------------------------------------- cp.async (deferred)
void emu_cp_async(void *dst, const void *src, int bytes, bool valid) {
    unsigned char *d = (unsigned char *)dst;
    if (d < g_blk.smem || d + bytes > g_blk.smem + g_blk.smem_bytes || ((uintptr_t)d & (uintptr_t)(bytes - 1)))
        die("cp.async of %d bytes to offset %td: outside shared memory or misaligned", bytes, d - g_blk.smem);
    Copy c;
    c.dst = dst, c.n = bytes;
    if (valid) {
        if ((uintptr_t)src & (uintptr_t)(bytes - 1)) die("cp.async of %d bytes from a misaligned source", bytes);
        memcpy(c.bytes, src, (size_t)bytes);
    } else {
        memset(c.bytes, 0, sizeof c.bytes);
    }
    if (g_eager) {
        memcpy(c.dst, c.bytes, (size_t)c.n);
        return;
    }
    g_cur->pending.push_back(c);
}
void emu_cp_async_commit(void) { g_cur->groups.push_back(g_cur->pending.size()); }
void emu_cp_async_wait(int keep) {
    Thread &t = *g_cur;
    if (keep < 0) {
        complete_copies(t, t.pending.size());
        t.groups.clear();
        return;
    }
    // every committed group but the newest `keep`
    if ((int)t.groups.size() <= keep) return;
    const size_t n = t.groups.size() - (size_t)keep, upto = t.groups[n - 1];
    t.groups.erase(t.groups.begin(), t.groups.begin() + (ptrdiff_t)n);
    complete_copies(t, upto);
}

// ---------------------------------------------------------------- host calls of the kernels' host code
extern "C" {
void *pn_cuda_alloc(pn_cuda_mem_category cat, size_t bytes) {
    (void)cat;
    if (!bytes) return nullptr;
    void *p = nullptr;
    if (posix_memalign(&p, 256, bytes)) {
        fprintf(stderr, "postnas: emulation: out of memory (%zu bytes)\n", bytes);
        exit(3);
    }
    memset(p, 0xff, bytes);  // NaN as fp32 and bf16: a read before a write shows
    return p;
}
void pn_cuda_free(void *p) { free(p); }
void pn_cuda_memset(void *p, int value, size_t bytes) {
    if (p && bytes) memset(p, value, bytes);
}
}

// The correctness-first kernels (gdn.cu) that the fast entry points fall back to for shapes
// they do not take: not emulated (the emulation test calls only shapes the fast path runs).
extern "C" {
void pn_cuda_gated_delta_fwd(int, int, int, int K, int V, float, int, const pn_bf16 *, const pn_bf16 *,
                             const pn_bf16 *, const float *, const float *, const float *, void *, pn_cuda_dtype,
                             float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_gated_delta_fwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
void pn_cuda_gated_delta_bwd(int, int, int, int K, int V, float, int, const pn_bf16 *, const pn_bf16 *,
                             const pn_bf16 *, const float *, const float *, const float *, const float *,
                             const float *, float *, float *, float *, float *, float *, float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_gated_delta_bwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
}

// The fp32 kernels (linear_ops.cu) that the simple GLA / GLA fast entry points fall back to:
// not emulated either.
extern "C" {
void pn_cuda_simple_gla_fwd(int, int, int, int K, int V, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                            const float *, const float *, void *, pn_cuda_dtype, float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_simple_gla_fwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
void pn_cuda_simple_gla_bwd(int, int, int, int K, int V, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                            const float *, const float *, const float *, const float *, float *, float *, float *,
                            float *, float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_simple_gla_bwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
void pn_cuda_gla_fwd(int, int, int, int K, int V, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                     const float *, const float *, void *, pn_cuda_dtype, float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_gla_fwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
void pn_cuda_gla_bwd(int, int, int, int K, int V, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                     const float *, const float *, const float *, const float *, float *, float *, float *, float *,
                     float *) {
    fprintf(stderr, "postnas: emulation: pn_cuda_gla_bwd (K = %d, V = %d) is not emulated\n", K, V);
    exit(1);
}
}
