// attn_cudnn.cu — causal / sliding-window GQA attention through cuDNN's fused flash
// attention (backend graph API, plain C calls), and the dispatch between it and the
// built-in kernel (attn_fallback.cu) behind pn_cuda_attn_fwd / _bwd.
//
// The graph. cuDNN has no single "attention" operation before 9.13 (and its unified
// SDPA node gains masks only in 9.21), so attention is described as the operation graph
// its fused engine pattern-matches: matmul, pointwise and reduction nodes over virtual
// tensors, the same graph the cudnn-frontend SDPA node lowers to (its v1.15 lowering,
// contemporary with cuDNN 9.14, read as documentation of the pattern):
//   fwd: S = Q·Kᵀ; S ·= scale; causal mask (row ≥ col, or for Tq < Tk the bottom-right
//        form row + Tk − Tq ≥ col, built from GEN_INDEX, integer ADD / SUB, CMP_GE and a
//        BINARY_SELECT of −inf); sliding window (col + window − Tk + Tq > row, in float);
//        softmax as reduce-max, sub, exp, reduce-sum, div with Stats = max + ln(sum);
//        O = P·V with P in bf16.
//   bwd: softmax_sum = rowsum(dO ∘ O); S as above minus Stats, the same masks, E = exp;
//        dV = Eᵀ·dO; dS = (dO·Vᵀ − softmax_sum) ∘ E · scale; dK = dSᵀ·Q; dQ = dS·K through
//        an fp32 accumulator; for GQA dK, dV are formed per query head and reduced over
//        the group by a reduction node.
// K (and V in the backward) enter transposed by swapping the last two dims and strides.
// Q, K, V, O keep our (B, T, H, D) layout through strides; a KV-cache slice is a larger
// batch stride. The attention scale is a by-value scalar given at execution, so one plan
// serves every scale; the other scalars (−inf, Tq, Tk, the window shift) are fixed per
// plan and kept with it.
//
// Plans. A plan key is everything the graph depends on (direction, B, Tq, Tk, Hq, Hkv,
// D, window, KV batch stride, whether Stats is an output); the engine comes from
// heuristics mode A — the first config that finalizes wins — and building takes
// milliseconds to seconds (runtime compilation), so plans are kept in a table and a
// repeated shape reuses its plan. A shape cuDNN refuses is remembered too, reported once
// on stderr with cuDNN's reason, and served by the built-in kernel from then on.
//
// Versions. Built against cuDNN 9 headers; only attributes present since 9.0 are set
// (the device-properties ones, compiled with 9.19+ headers, serve only offline checks:
// with a device-properties descriptor of an H100 and a stub libcuda, heuristics and
// runtime compilation run without a GPU, which is how these graphs were checked). At
// the first use the loaded library must be 9.6 or newer (bottom-right masks for any
// Tq, Tk; dQ accumulator zeroed by cuDNN itself): otherwise exit 3 with a hint. A
// rejected attribute (cudnnBackendSetAttribute failing) means the loaded cuDNN lacks
// something this file relies on: exit 3 naming the attribute and both versions.
// Workspace (cuDNN's, plus the bwd's softmax_sum and fp32 dQ accumulator) comes from
// the scratch arena on every call.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_attn.h"
#include <initializer_list>
#include <math.h>
#include <mutex>
#include <string.h>
#include <vector>
#ifdef POSTNAS_HAVE_CUDNN
#include <cudnn.h>
#endif

namespace {

std::mutex g_mu;
int g_backend_env = -1;       // POSTNAS_ATTN_BACKEND, read once
int g_backend_override = -1;  // pn_cuda_attn_backend_set
pn_cuda_attn_backend g_last = PN_CUDA_ATTN_FALLBACK;
int g_plans_built = 0;

pn_cuda_attn_backend backend_choice_locked() {
    if (g_backend_override >= 0) return (pn_cuda_attn_backend)g_backend_override;
    if (g_backend_env < 0) {
        const char *e = getenv("POSTNAS_ATTN_BACKEND");
        if (!e || !e[0] || strcmp(e, "auto") == 0) {
            g_backend_env = PN_CUDA_ATTN_AUTO;
        } else if (strcmp(e, "cudnn") == 0) {
            g_backend_env = PN_CUDA_ATTN_CUDNN;
        } else if (strcmp(e, "fallback") == 0) {
            g_backend_env = PN_CUDA_ATTN_FALLBACK;
        } else {
            fprintf(stderr, "postnas: error: POSTNAS_ATTN_BACKEND=%s: expected auto, cudnn or fallback\n", e);
            exit(2);
        }
    }
    return (pn_cuda_attn_backend)g_backend_env;
}

[[noreturn]] void attn_shape_die(const char *what, int B, int Tq, int Tk, int Hq, int Hkv, int D) {
    fprintf(stderr,
            "postnas: internal error: %s: attention %s (B = %d, Tq = %d, Tk = %d, Hq = %d, Hkv = %d, D = %d; "
            "want Tk >= Tq >= 0, Hq %% Hkv == 0, 1 <= D <= 256)\n",
            __FILE__, what, B, Tq, Tk, Hq, Hkv, D);
    exit(1);
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

#ifdef POSTNAS_HAVE_CUDNN

// ---------------------------------------------------------------- plan table
enum : int64_t {
    UID_Q = 1,
    UID_K,
    UID_V,
    UID_O,
    UID_STATS,
    UID_SCALE,
    UID_DO,
    UID_DQ,
    UID_DK,
    UID_DV,
    UID_SSUM,
    UID_DQACC,
    UID_FIRST_SCALAR = 100,  // by-value constants of the plan
    UID_FIRST_VIRTUAL = 1000,
};

struct plan_key {
    int bwd, B, Tq, Tk, Hq, Hkv, D, window, stats;
    int64_t kv_bs;
};

struct scalar_value {
    int64_t uid;
    union {
        float f;
        int32_t i;
    } v;
};

constexpr int MAX_SCALARS = 8;

struct attn_plan {
    bool used;
    plan_key key;
    bool ok;  // false: cuDNN has no plan for this shape; `why` says why
    char why[512];
    cudnnBackendDescriptor_t plan;
    std::vector<cudnnBackendDescriptor_t> owned;  // every descriptor the plan hangs on, in creation order
    int64_t workspace;
    int nscalars;
    scalar_value scalars[MAX_SCALARS];
};

constexpr int N_PLANS = 64;
attn_plan g_plans[N_PLANS];
int g_next_plan = 0;
cudnnHandle_t g_handle = nullptr;

bool key_eq(const plan_key &a, const plan_key &b) {
    return a.bwd == b.bwd && a.B == b.B && a.Tq == b.Tq && a.Tk == b.Tk && a.Hq == b.Hq && a.Hkv == b.Hkv &&
           a.D == b.D && a.window == b.window && a.stats == b.stats && a.kv_bs == b.kv_bs;
}

void cudnn_version_text(size_t v, char *buf, size_t n) {
    snprintf(buf, n, "%zu.%zu.%zu", v / 10000, (v % 10000) / 100, v % 100);
}

[[noreturn]] void cudnn_die(const char *file, int line, const char *call, cudnnStatus_t st) {
    char msg[512] = "", have[32], built[32];
    cudnnGetLastErrorString(msg, sizeof msg);
    cudnn_version_text(cudnnGetVersion(), have, sizeof have);
    cudnn_version_text(CUDNN_VERSION, built, sizeof built);
    fprintf(stderr, "postnas: device error at %s:%d: %s failed: %s%s%s (cuDNN %s loaded, built against %s)\n", file,
            line, call, cudnnGetErrorString(st), msg[0] ? ": " : "", msg, have, built);
    exit(PN_CUDA_EXIT);
}

#define PN_CHECK_CUDNN(call)                                                  \
    do {                                                                      \
        cudnnStatus_t st_ = (call);                                           \
        if (st_ != CUDNN_STATUS_SUCCESS) cudnn_die(__FILE__, __LINE__, #call, st_); \
    } while (0)

// ---------------------------------------------------------------- graph building
// Descriptor creation and attribute setting must succeed (a failure is a missing
// feature of the loaded cuDNN: exit 3); finalize may legitimately refuse a combination,
// which marks the build failed with cuDNN's reason and makes later steps no-ops.
struct graph_builder {
    std::vector<cudnnBackendDescriptor_t> owned;
    std::vector<cudnnBackendDescriptor_t> ops;
    int64_t next_virtual = UID_FIRST_VIRTUAL;
    int nscalars = 0;
    scalar_value scalars[MAX_SCALARS];
    bool failed = false;
    char why[512] = "";
};

cudnnBackendDescriptor_t gb_create(graph_builder &g, cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d = nullptr;
    PN_CHECK_CUDNN(cudnnBackendCreateDescriptor(type, &d));
    g.owned.push_back(d);
    return d;
}

void gb_set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
            int64_t count, const void *value, const char *what, int line) {
    cudnnStatus_t st = cudnnBackendSetAttribute(d, name, type, count, value);
    if (st != CUDNN_STATUS_SUCCESS) {
        char call[160];
        snprintf(call, sizeof call, "cudnnBackendSetAttribute(%s)", what);
        cudnn_die(__FILE__, line, call, st);
    }
}
#define GB_SET(d, name, type, count, value) gb_set((d), (name), (type), (count), (value), #name, __LINE__)

bool gb_finalize(graph_builder &g, cudnnBackendDescriptor_t d, const char *what) {
    if (g.failed) return false;
    cudnnStatus_t st = cudnnBackendFinalize(d);
    if (st == CUDNN_STATUS_SUCCESS) return true;
    char msg[400] = "";
    cudnnGetLastErrorString(msg, sizeof msg);
    snprintf(g.why, sizeof g.why, "finalizing the %s: %s%s%s", what, cudnnGetErrorString(st), msg[0] ? ": " : "",
             msg);
    g.failed = true;
    return false;
}

struct shape4 {
    int64_t d[4], s[4];
};

cudnnBackendDescriptor_t gb_tensor(graph_builder &g, cudnnDataType_t dt, int nd, const int64_t *dims,
                                   const int64_t *strides, int64_t uid, bool is_virtual, bool by_value) {
    if (g.failed) return nullptr;
    cudnnBackendDescriptor_t t = gb_create(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t alignment = 16;
    const bool yes = true;
    GB_SET(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    GB_SET(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims);
    GB_SET(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides);
    GB_SET(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    GB_SET(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    if (is_virtual) GB_SET(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
    if (by_value) GB_SET(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    return gb_finalize(g, t, "tensor descriptor") ? t : nullptr;
}

cudnnBackendDescriptor_t gb_io(graph_builder &g, cudnnDataType_t dt, const shape4 &sh, int64_t uid) {
    return gb_tensor(g, dt, 4, sh.d, sh.s, uid, false, false);
}

cudnnBackendDescriptor_t gb_virtual(graph_builder &g, cudnnDataType_t dt, const shape4 &sh) {
    return gb_tensor(g, dt, 4, sh.d, sh.s, g.next_virtual++, true, false);
}

// A by-value scalar, dims (1, 1, 1, 1) like the 4-d tensors it meets (a pointwise node
// wants equal ranks). uid 0: a constant of the plan, its value recorded for execution.
cudnnBackendDescriptor_t gb_scalar(graph_builder &g, cudnnDataType_t dt, float f, int32_t i, int64_t uid) {
    if (g.failed) return nullptr;
    if (!uid) {
        if (g.nscalars == MAX_SCALARS) {
            fprintf(stderr, "postnas: internal error: %s: more than %d attention graph constants\n", __FILE__,
                    MAX_SCALARS);
            exit(1);
        }
        scalar_value &s = g.scalars[g.nscalars];
        s.uid = UID_FIRST_SCALAR + g.nscalars++;
        if (dt == CUDNN_DATA_INT32)
            s.v.i = i;
        else
            s.v.f = f;
        uid = s.uid;
    }
    const int64_t ones[4] = {1, 1, 1, 1};
    return gb_tensor(g, dt, 4, ones, ones, uid, false, true);
}
cudnnBackendDescriptor_t gb_f32(graph_builder &g, float v) { return gb_scalar(g, CUDNN_DATA_FLOAT, v, 0, 0); }
cudnnBackendDescriptor_t gb_i32(graph_builder &g, int32_t v) { return gb_scalar(g, CUDNN_DATA_INT32, 0.0f, v, 0); }

// y = mode(x[, b[, t]]) with math precision `comp`; axis only for GEN_INDEX.
void gb_pointwise(graph_builder &g, cudnnPointwiseMode_t mode, cudnnDataType_t comp, cudnnBackendDescriptor_t x,
                  cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                  int64_t axis = -1) {
    if (g.failed) return;
    cudnnBackendDescriptor_t pw = gb_create(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    GB_SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    GB_SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    if (mode == CUDNN_POINTWISE_GEN_INDEX) GB_SET(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    if (!gb_finalize(g, pw, "pointwise descriptor")) return;
    cudnnBackendDescriptor_t op = gb_create(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    GB_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    GB_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) GB_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t) GB_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    GB_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    if (gb_finalize(g, op, "pointwise operation")) g.ops.push_back(op);
}

// c = a · b (batched over the leading dims, broadcast over heads for GQA), fp32 math.
void gb_matmul(graph_builder &g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
               cudnnBackendDescriptor_t c) {
    if (g.failed) return;
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = gb_create(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    GB_SET(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    if (!gb_finalize(g, mm, "matmul descriptor")) return;
    cudnnBackendDescriptor_t op = gb_create(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    GB_SET(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    GB_SET(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    GB_SET(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    GB_SET(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    if (gb_finalize(g, op, "matmul operation")) g.ops.push_back(op);
}

// y = reduce(x) over the dims where y has extent 1, fp32 math.
void gb_reduce(graph_builder &g, cudnnReduceTensorOp_t how, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    if (g.failed) return;
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = gb_create(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    GB_SET(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    GB_SET(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &how);
    if (!gb_finalize(g, rd, "reduction descriptor")) return;
    cudnnBackendDescriptor_t op = gb_create(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    GB_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    GB_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    GB_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    if (gb_finalize(g, op, "reduction operation")) g.ops.push_back(op);
}

// y = x viewed with y's dims and strides (transposes here).
void gb_reshape(graph_builder &g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    if (g.failed) return;
    cudnnBackendDescriptor_t op = gb_create(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    GB_SET(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    GB_SET(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    if (gb_finalize(g, op, "reshape operation")) g.ops.push_back(op);
}

// Causal mask on scores s (B, H, Sq, Sk): keep col <= row (+ Sk − Sq when bottom-right).
cudnnBackendDescriptor_t gb_causal(graph_builder &g, cudnnBackendDescriptor_t s, const shape4 &sh,
                                   bool bottom_right, int Sq, int Sk) {
    cudnnBackendDescriptor_t row = gb_virtual(g, CUDNN_DATA_INT32, sh), col = gb_virtual(g, CUDNN_DATA_INT32, sh);
    gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, row, 2);
    gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, col, 3);
    if (bottom_right) {
        cudnnBackendDescriptor_t r1 = gb_virtual(g, CUDNN_DATA_INT32, sh), r2 = gb_virtual(g, CUDNN_DATA_INT32, sh);
        gb_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_INT32, row, gb_i32(g, Sk), nullptr, r1);
        gb_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_INT32, r1, gb_i32(g, Sq), nullptr, r2);
        row = r2;
    }
    cudnnBackendDescriptor_t keep = gb_virtual(g, CUDNN_DATA_BOOLEAN, sh), out = gb_virtual(g, CUDNN_DATA_FLOAT, sh);
    gb_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, nullptr, keep);
    gb_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, gb_f32(g, -INFINITY), keep, out);
    return out;
}

// Sliding window on s: keep col + shift > row, shift = window (− Sk + Sq when bottom-right).
cudnnBackendDescriptor_t gb_window(graph_builder &g, cudnnBackendDescriptor_t s, const shape4 &sh, float shift) {
    cudnnBackendDescriptor_t row = gb_virtual(g, CUDNN_DATA_FLOAT, sh), col = gb_virtual(g, CUDNN_DATA_FLOAT, sh);
    gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, row, 2);
    gb_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, s, nullptr, nullptr, col, 3);
    cudnnBackendDescriptor_t cw = gb_virtual(g, CUDNN_DATA_FLOAT, sh);
    gb_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, col, gb_f32(g, shift), nullptr, cw);
    cudnnBackendDescriptor_t keep = gb_virtual(g, CUDNN_DATA_BOOLEAN, sh), out = gb_virtual(g, CUDNN_DATA_FLOAT, sh);
    gb_pointwise(g, CUDNN_POINTWISE_CMP_GT, CUDNN_DATA_BOOLEAN, cw, row, nullptr, keep);
    gb_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, gb_f32(g, -INFINITY), keep, out);
    return out;
}

// (B, H, S, D) in our (B, S, H, D) memory; its transpose (B, H, D, S).
shape4 bshd(int64_t B, int64_t H, int64_t S, int64_t D, int64_t batch_stride) {
    return shape4{{B, H, S, D}, {batch_stride, D, H * D, 1}};
}
shape4 transposed(const shape4 &a) {
    return shape4{{a.d[0], a.d[1], a.d[3], a.d[2]}, {a.s[0], a.s[1], a.s[3], a.s[2]}};
}
shape4 dense(int64_t a, int64_t b, int64_t c, int64_t d) {
    return shape4{{a, b, c, d}, {b * c * d, c * d, d, 1}};
}

void build_fwd_graph(graph_builder &g, const plan_key &k) {
    const int64_t B = k.B, Hq = k.Hq, Hk = k.Hkv, Sq = k.Tq, Sk = k.Tk, D = k.D;
    const shape4 q_sh = bshd(B, Hq, Sq, D, Sq * Hq * D), v_sh = bshd(B, Hk, Sk, D, k.kv_bs);
    const shape4 s_sh = dense(B, Hq, Sq, Sk), r_sh = dense(B, Hq, Sq, 1);
    cudnnBackendDescriptor_t Q = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_Q);
    cudnnBackendDescriptor_t KT = gb_io(g, CUDNN_DATA_BFLOAT16, transposed(v_sh), UID_K);
    cudnnBackendDescriptor_t V = gb_io(g, CUDNN_DATA_BFLOAT16, v_sh, UID_V);
    cudnnBackendDescriptor_t O = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_O);
    cudnnBackendDescriptor_t stats =
        k.stats ? gb_io(g, CUDNN_DATA_FLOAT, r_sh, UID_STATS) : gb_virtual(g, CUDNN_DATA_FLOAT, r_sh);
    cudnnBackendDescriptor_t scale = gb_scalar(g, CUDNN_DATA_FLOAT, 0.0f, 0, UID_SCALE);

    cudnnBackendDescriptor_t s0 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh), s1 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    gb_matmul(g, Q, KT, s0);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s0, scale, nullptr, s1);
    cudnnBackendDescriptor_t s = gb_causal(g, s1, s_sh, Sq != Sk, k.Tq, k.Tk);
    if (k.window > 0) s = gb_window(g, s, s_sh, (float)(k.window - k.Tk + k.Tq));

    cudnnBackendDescriptor_t mx = gb_virtual(g, CUDNN_DATA_FLOAT, r_sh), sub = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    cudnnBackendDescriptor_t ex = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh), sum = gb_virtual(g, CUDNN_DATA_FLOAT, r_sh);
    cudnnBackendDescriptor_t lg = gb_virtual(g, CUDNN_DATA_FLOAT, r_sh), P = gb_virtual(g, CUDNN_DATA_BFLOAT16, s_sh);
    gb_reduce(g, CUDNN_REDUCE_TENSOR_MAX, s, mx);
    gb_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s, mx, nullptr, sub);
    gb_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, sub, nullptr, nullptr, ex);
    gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, ex, sum);
    gb_pointwise(g, CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, sum, nullptr, nullptr, lg);
    gb_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, mx, lg, nullptr, stats);
    gb_pointwise(g, CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, ex, sum, nullptr, P);
    gb_matmul(g, P, V, O);
}

void build_bwd_graph(graph_builder &g, const plan_key &k) {
    const int64_t B = k.B, Hq = k.Hq, Hk = k.Hkv, S = k.Tq, D = k.D;
    const shape4 q_sh = bshd(B, Hq, S, D, S * Hq * D), k_sh = bshd(B, Hk, S, D, S * Hk * D);
    const shape4 s_sh = dense(B, Hq, S, S), st_sh = transposed(s_sh), r_sh = dense(B, Hq, S, 1);
    const shape4 full_sh = dense(B, Hq, S, D);  // per-query-head dK / dV and the dQ accumulator
    cudnnBackendDescriptor_t Q = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_Q);
    cudnnBackendDescriptor_t KT = gb_io(g, CUDNN_DATA_BFLOAT16, transposed(k_sh), UID_K);
    cudnnBackendDescriptor_t VT = gb_io(g, CUDNN_DATA_BFLOAT16, transposed(k_sh), UID_V);
    cudnnBackendDescriptor_t O = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_O);
    cudnnBackendDescriptor_t dO = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_DO);
    cudnnBackendDescriptor_t stats = gb_io(g, CUDNN_DATA_FLOAT, r_sh, UID_STATS);
    cudnnBackendDescriptor_t dQ = gb_io(g, CUDNN_DATA_BFLOAT16, q_sh, UID_DQ);
    cudnnBackendDescriptor_t dK = gb_io(g, CUDNN_DATA_BFLOAT16, k_sh, UID_DK);
    cudnnBackendDescriptor_t dV = gb_io(g, CUDNN_DATA_BFLOAT16, k_sh, UID_DV);
    cudnnBackendDescriptor_t scale = gb_scalar(g, CUDNN_DATA_FLOAT, 0.0f, 0, UID_SCALE);

    // softmax_sum (B, Hq, S, 1) = rowsum(dO ∘ O), kept in the workspace.
    const shape4 doo_sh = {{B, Hq, S, D}, {Hq * S * D, S * D, Hq * D, 1}};
    cudnnBackendDescriptor_t doo = gb_virtual(g, CUDNN_DATA_FLOAT, doo_sh), rs = gb_virtual(g, CUDNN_DATA_FLOAT, r_sh);
    cudnnBackendDescriptor_t ssum = gb_io(g, CUDNN_DATA_FLOAT, r_sh, UID_SSUM);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dO, O, nullptr, doo);
    gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, doo, rs);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, rs, gb_f32(g, 1.0f), nullptr, ssum);

    // E = exp(scale · Q Kᵀ − Stats), masked.
    cudnnBackendDescriptor_t s0 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh), s1 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    cudnnBackendDescriptor_t s2 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    gb_matmul(g, Q, KT, s0);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s0, scale, nullptr, s1);
    gb_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, s1, stats, nullptr, s2);
    cudnnBackendDescriptor_t sm = gb_causal(g, s2, s_sh, false, k.Tq, k.Tk);
    if (k.window > 0) sm = gb_window(g, sm, s_sh, (float)k.window);
    cudnnBackendDescriptor_t E = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    gb_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, sm, nullptr, nullptr, E);

    // dV = Eᵀ dO (summed over the query heads of a group).
    cudnnBackendDescriptor_t Et = gb_virtual(g, CUDNN_DATA_BFLOAT16, st_sh);
    gb_reshape(g, E, Et);
    if (Hq == Hk) {
        gb_matmul(g, Et, dO, dV);
    } else {
        cudnnBackendDescriptor_t dVf = gb_virtual(g, CUDNN_DATA_BFLOAT16, full_sh);
        gb_matmul(g, Et, dO, dVf);
        gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, dVf, dV);
    }

    // dS = (dO Vᵀ − softmax_sum) ∘ E · scale.
    cudnnBackendDescriptor_t dp = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh), dp1 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    cudnnBackendDescriptor_t dp2 = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh), dS = gb_virtual(g, CUDNN_DATA_FLOAT, s_sh);
    gb_matmul(g, dO, VT, dp);
    gb_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, dp, ssum, nullptr, dp1);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dp1, E, nullptr, dp2);
    gb_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dp2, scale, nullptr, dS);

    // dK = dSᵀ Q (summed over the group).
    cudnnBackendDescriptor_t dSt = gb_virtual(g, CUDNN_DATA_BFLOAT16, st_sh);
    gb_reshape(g, dS, dSt);
    if (Hq == Hk) {
        gb_matmul(g, dSt, Q, dK);
    } else {
        cudnnBackendDescriptor_t dKf = gb_virtual(g, CUDNN_DATA_BFLOAT16, full_sh);
        gb_matmul(g, dSt, Q, dKf);
        gb_reduce(g, CUDNN_REDUCE_TENSOR_ADD, dKf, dK);
    }

    // dQ = dS K through the fp32 accumulator in the workspace.
    cudnnBackendDescriptor_t Kr = gb_virtual(g, CUDNN_DATA_BFLOAT16, k_sh);
    gb_reshape(g, KT, Kr);
    cudnnBackendDescriptor_t dQacc = gb_io(g, CUDNN_DATA_FLOAT, full_sh, UID_DQACC);
    gb_matmul(g, dS, Kr, dQacc);
    gb_pointwise(g, CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, dQacc, nullptr, nullptr, dQ);
}

// Operation graph, heuristics mode A, the first engine config that finalizes. With a
// handle for execution; with a device-properties descriptor instead (and no handle)
// the same steps run without a GPU, which checks a graph offline.
bool build_plan(graph_builder &g, cudnnHandle_t handle, cudnnBackendDescriptor_t devprop,
                cudnnBackendDescriptor_t *plan_out, int64_t *workspace) {
    if (g.failed) return false;
    cudnnBackendDescriptor_t graph = gb_create(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    GB_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)g.ops.size(), g.ops.data());
    if (handle) GB_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    if (!gb_finalize(g, graph, "operation graph")) return false;

    cudnnBackendDescriptor_t heur = gb_create(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    GB_SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    GB_SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
#if CUDNN_VERSION >= 91900  // device-properties attributes (offline checks only)
    if (devprop) GB_SET(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &devprop);
#endif
    if (!gb_finalize(g, heur, "engine heuristics")) return false;
    int64_t n = 0;
    PN_CHECK_CUDNN(
        cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, nullptr));
    if (n <= 0) {
        snprintf(g.why, sizeof g.why, "heuristics (mode A) found no engine for the graph");
        g.failed = true;
        return false;
    }
    std::vector<cudnnBackendDescriptor_t> cfgs((size_t)n);
    for (int64_t i = 0; i < n; i++) cfgs[(size_t)i] = gb_create(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    PN_CHECK_CUDNN(
        cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfgs.data()));
    char first_why[512] = "";
    for (int64_t i = 0; i < got; i++) {
        cudnnBackendDescriptor_t plan = gb_create(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        if (handle) GB_SET(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
#if CUDNN_VERSION >= 91900  // device-properties attributes (offline checks only)
        if (devprop) GB_SET(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &devprop);
#endif
        GB_SET(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[(size_t)i]);
        if (gb_finalize(g, plan, "execution plan")) {
            int64_t ws = 0;
            PN_CHECK_CUDNN(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                                    nullptr, &ws));
            *plan_out = plan;
            *workspace = ws;
            return true;
        }
        if (!first_why[0]) snprintf(first_why, sizeof first_why, "%s", g.why);
        g.failed = false;  // try the next engine config
    }
    snprintf(g.why, sizeof g.why, "none of the %lld engine configs finalized (first: %s)", (long long)got, first_why);
    g.failed = true;
    return false;
}

void destroy_all(std::vector<cudnnBackendDescriptor_t> &v) {
    for (size_t i = v.size(); i-- > 0;) cudnnBackendDestroyDescriptor(v[i]);
    v.clear();
}

void plan_clear(attn_plan &p) {
    destroy_all(p.owned);
    p.used = false;
    p.ok = false;
    p.plan = nullptr;
}

void cudnn_init_locked() {
    if (g_handle) return;
    const size_t v = cudnnGetVersion();
    if (v / 10000 != CUDNN_MAJOR || v < 90600) {
        char have[32], built[32];
        cudnn_version_text(v, have, sizeof have);
        cudnn_version_text(CUDNN_VERSION, built, sizeof built);
        fprintf(stderr,
                "postnas: device error: %s: cuDNN %s is loaded, but the attention graphs need cuDNN 9.6 or newer "
                "(built against %s)\n"
                "postnas: hint: install cuDNN >= 9.6, or set POSTNAS_ATTN_BACKEND=fallback to use the built-in "
                "attention kernel\n",
                __FILE__, have, built);
        exit(PN_CUDA_EXIT);
    }
    PN_CHECK_CUDNN(cudnnCreate(&g_handle));
}

const char *key_text(const plan_key &k, char *buf, size_t n) {
    snprintf(buf, n, "%s B%d Tq%d Tk%d Hq%d Hkv%d D%d window %d", k.bwd ? "bwd" : "fwd", k.B, k.Tq, k.Tk, k.Hq, k.Hkv,
             k.D, k.window);
    return buf;
}

// The plan for k (built on first use), or an entry with ok == false. Caller holds g_mu.
attn_plan *plan_get_locked(const plan_key &k) {
    for (int i = 0; i < N_PLANS; i++)
        if (g_plans[i].used && key_eq(g_plans[i].key, k)) return &g_plans[i];
    cudnn_init_locked();
    attn_plan &p = g_plans[g_next_plan];
    g_next_plan = (g_next_plan + 1) % N_PLANS;
    plan_clear(p);
    p.used = true;
    p.key = k;
    p.why[0] = 0;
    char text[128];
    if (k.D % 8 != 0) {
        snprintf(p.why, sizeof p.why, "head dim %d is not a multiple of 8", k.D);
    } else {
        graph_builder g;
        if (k.bwd)
            build_bwd_graph(g, k);
        else
            build_fwd_graph(g, k);
        p.ok = build_plan(g, g_handle, nullptr, &p.plan, &p.workspace);
        p.owned.swap(g.owned);
        p.nscalars = g.nscalars;
        memcpy(p.scalars, g.scalars, sizeof g.scalars);
        if (p.ok)
            g_plans_built++;
        else
            snprintf(p.why, sizeof p.why, "%s", g.why);
    }
    if (!p.ok)
        fprintf(stderr, "postnas: warning: cuDNN attention (%s): %s; using the built-in kernel for this shape\n",
                key_text(k, text, sizeof text), p.why);
    return &p;
}

// Runs a plan with the given (uid, pointer) tensors plus the scale and the plan's constants.
void plan_execute(attn_plan &p, int n_io, const int64_t *io_uids, void *const *io_ptrs, float scale, void *ws) {
    int64_t uids[24];
    void *ptrs[24];
    int n = 0;
    for (int i = 0; i < n_io; i++) uids[n] = io_uids[i], ptrs[n++] = io_ptrs[i];
    uids[n] = UID_SCALE, ptrs[n++] = &scale;
    for (int i = 0; i < p.nscalars; i++) uids[n] = p.scalars[i].uid, ptrs[n++] = &p.scalars[i].v;
    cudnnBackendDescriptor_t pack = nullptr;
    PN_CHECK_CUDNN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    PN_CHECK_CUDNN(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    PN_CHECK_CUDNN(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    PN_CHECK_CUDNN(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    PN_CHECK_CUDNN(cudnnBackendFinalize(pack));
    PN_CHECK_CUDNN(cudnnSetStream(g_handle, pn_stream()));
    PN_CHECK_CUDNN(cudnnBackendExecute(g_handle, p.plan, pack));
    PN_CHECK_CUDNN(cudnnBackendDestroyDescriptor(pack));
}

void *scratch(size_t bytes) { return bytes ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, bytes) : nullptr; }

bool cudnn_fwd_locked(const plan_key &k, float scale, const pn_bf16 *q, const pn_bf16 *kk, const pn_bf16 *v,
                      pn_bf16 *o, float *lse, const char **why) {
    attn_plan *p = plan_get_locked(k);
    if (!p->ok) {
        *why = p->why;
        return false;
    }
    const int64_t uids[5] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS};
    void *const ptrs[5] = {(void *)q, (void *)kk, (void *)v, (void *)o, (void *)lse};
    void *ws = scratch((size_t)p->workspace);
    plan_execute(*p, k.stats ? 5 : 4, uids, ptrs, scale, ws);
    pn_cuda_free(ws);
    return true;
}

bool cudnn_bwd_locked(const plan_key &k, float scale, const pn_bf16 *q, const pn_bf16 *kk, const pn_bf16 *v,
                      const pn_bf16 *o, const pn_bf16 *dout, const float *lse, pn_bf16 *dq, pn_bf16 *dk,
                      pn_bf16 *dv, const char **why) {
    attn_plan *p = plan_get_locked(k);
    if (!p->ok) {
        *why = p->why;
        return false;
    }
    const int64_t rows = (int64_t)k.B * k.Hq * k.Tq;
    void *ssum = scratch((size_t)rows * sizeof(float));
    void *dq_acc = scratch((size_t)(rows * k.D) * sizeof(float));
    void *ws = scratch((size_t)p->workspace);
    const int64_t uids[11] = {UID_Q, UID_K, UID_V, UID_O, UID_DO, UID_STATS, UID_DQ, UID_DK, UID_DV, UID_SSUM,
                              UID_DQACC};
    void *const ptrs[11] = {(void *)q,  (void *)kk, (void *)v,  (void *)o, (void *)dout, (void *)lse,
                            (void *)dq, (void *)dk, (void *)dv, ssum,      dq_acc};
    plan_execute(*p, 11, uids, ptrs, scale, ws);
    pn_cuda_free(ws);
    pn_cuda_free(dq_acc);
    pn_cuda_free(ssum);
    return true;
}

#endif  // POSTNAS_HAVE_CUDNN

// Why cuDNN cannot take this call at all (NULL: it may), for pointer-level reasons the
// plan key does not capture.
const char *cudnn_pointer_problem(std::initializer_list<const void *> ptrs, int64_t kv_bs) {
    for (const void *p : ptrs)
        if (p && !aligned16(p)) return "a tensor pointer is not 16-byte aligned";
    if (kv_bs % 8 != 0) return "the KV batch stride is not a multiple of 8 elements";
    return nullptr;
}

[[noreturn]] void forced_cudnn_die(const char *what, const char *why) {
    fprintf(stderr,
            "postnas: device error: %s: POSTNAS_ATTN_BACKEND=cudnn, but cuDNN cannot run this attention %s: %s\n",
            __FILE__, what, why);
    exit(PN_CUDA_EXIT);
}

void note_fallback_once(const char *why) {
    static bool said = false;
    if (said) return;
    said = true;
    fprintf(stderr, "postnas: warning: cuDNN attention skipped (%s); using the built-in kernel\n", why);
}

}  // namespace

extern "C" void pn_cuda_attn_backend_set(pn_cuda_attn_backend backend) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_backend_override = (int)backend;
}

extern "C" pn_cuda_attn_backend pn_cuda_attn_last_backend(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_last;
}

extern "C" int pn_cuda_attn_plans_built(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_plans_built;
}

extern "C" int pn_cuda_attn_cudnn_version(void) {
#ifdef POSTNAS_HAVE_CUDNN
    return (int)cudnnGetVersion();
#else
    return 0;
#endif
}

extern "C" void pn_cuda_attn_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                                 const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                                 pn_bf16 *o, float *lse) {
    if (B < 0 || Tq < 0 || Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || D < 1 || D > 256 || Tk < Tq)
        attn_shape_die("forward with bad shape", B, Tq, Tk, Hq, Hkv, D);
    if (B == 0 || Tq == 0) return;
    const int64_t dense = (int64_t)Tk * Hkv * D, kv_bs = kv_batch_stride ? kv_batch_stride : dense;
    if (kv_bs < dense) attn_shape_die("forward with kv_batch_stride < Tk * Hkv * D", B, Tq, Tk, Hq, Hkv, D);
    {
        std::lock_guard<std::mutex> lock(g_mu);
        const pn_cuda_attn_backend choice = backend_choice_locked();
        if (choice != PN_CUDA_ATTN_FALLBACK) {
            const char *why = cudnn_pointer_problem({q, k, v, o, lse}, kv_bs);
#ifdef POSTNAS_HAVE_CUDNN
            if (!why) {
                const plan_key key = {0, B, Tq, Tk, Hq, Hkv, D, window > 0 && window < Tk ? window : 0, lse != nullptr,
                                      kv_bs};
                if (cudnn_fwd_locked(key, scale, q, k, v, o, lse, &why)) {
                    g_last = PN_CUDA_ATTN_CUDNN;
                    return;
                }
                if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("forward", why);
            } else {
                if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("forward", why);
                note_fallback_once(why);
            }
#else
            why = "postnas was built without cuDNN";
            if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("forward", why);
            note_fallback_once(why);
#endif
        }
        g_last = PN_CUDA_ATTN_FALLBACK;
    }
    pn_cuda_attn_fallback_fwd(B, Tq, Tk, Hq, Hkv, D, window, scale, q, k, v, kv_bs, o, lse);
}

extern "C" void pn_cuda_attn_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale, const pn_bf16 *q,
                                 const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o, const pn_bf16 *dout,
                                 const float *lse, pn_bf16 *dq, pn_bf16 *dk, pn_bf16 *dv) {
    if (B < 0 || T < 0 || Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || D < 1 || D > 256)
        attn_shape_die("backward with bad shape", B, T, T, Hq, Hkv, D);
    if (B == 0 || T == 0) return;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        const pn_cuda_attn_backend choice = backend_choice_locked();
        if (choice != PN_CUDA_ATTN_FALLBACK) {
            const char *why = cudnn_pointer_problem({q, k, v, o, dout, lse, dq, dk, dv}, 8);
#ifdef POSTNAS_HAVE_CUDNN
            if (!why) {
                const plan_key key = {1, B, T, T, Hq, Hkv, D, window > 0 && window < T ? window : 0, 1,
                                      (int64_t)T * Hkv * D};
                if (cudnn_bwd_locked(key, scale, q, k, v, o, dout, lse, dq, dk, dv, &why)) {
                    g_last = PN_CUDA_ATTN_CUDNN;
                    return;
                }
                if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("backward", why);
            } else {
                if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("backward", why);
                note_fallback_once(why);
            }
#else
            why = "postnas was built without cuDNN";
            if (choice == PN_CUDA_ATTN_CUDNN) forced_cudnn_die("backward", why);
            note_fallback_once(why);
#endif
        }
        g_last = PN_CUDA_ATTN_FALLBACK;
    }
    pn_cuda_attn_fallback_bwd(B, T, Hq, Hkv, D, window, scale, q, k, v, o, dout, lse, dq, dk, dv);
}

extern "C" void pn_cuda_attn_release(void) {
    std::lock_guard<std::mutex> lock(g_mu);
#ifdef POSTNAS_HAVE_CUDNN
    for (int i = 0; i < N_PLANS; i++) plan_clear(g_plans[i]);
    g_next_plan = 0;
    if (g_handle) {
        PN_CHECK_CUDNN(cudnnDestroy(g_handle));
        g_handle = nullptr;
    }
#endif
}
