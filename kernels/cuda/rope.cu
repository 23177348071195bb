// rope.cu — rotary position embedding, rotate-half (HF Llama/Qwen), in place.
//
// The angles must be the CPU op's bits: at long positions the fp32 rounding of
// p · inv_freq is larger than any later error, so inv_freq is formed on the host with
// the same expression as kernels/cpu/ops_rope.c and passed by value (a kernel
// parameter of up to 512 floats), the angle is the same single fp32 product, and its
// cos/sin are taken in double and rounded, as the CPU does. One block per (b, t) row:
// it computes the D/2 cos/sin pairs once into shared memory and applies them to all
// H heads, so the double-precision trig costs B·T·D/2, not B·T·H·D/2. With D/2 a
// multiple of 8 each thread rotates 8 pairs per 16-byte access (bf16) or two (fp32).
// The forward works on bf16 activations, the backward (the inverse rotation) on the
// fp32 gradient.
#include "kernels/cuda/common.cuh"
#include <math.h>

#define ROPE_MAX_HALF 512

struct rope_freqs {
    float inv_freq[ROPE_MAX_HALF];
};

template <typename T, int VEC>
__global__ void rope_kernel(T *x, int T_len, int H, int D, int64_t pos0, float sign, const rope_freqs fr) {
    __shared__ float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    const int half_d = D / 2;
    const int64_t row = blockIdx.x;  // b·T + t
    const int t = (int)(row % T_len);
    const float p = (float)(pos0 + t);
    for (int i = threadIdx.x; i < half_d; i += blockDim.x) {
        const float ang = p * fr.inv_freq[i];
        double s, c;
        sincos((double)ang, &s, &c);
        cs[i] = (float)c;
        sn[i] = sign * (float)s;
    }
    __syncthreads();
    const int per_head = half_d / VEC;
    T *xr = x + row * (int64_t)H * D;
    for (int j = threadIdx.x; j < H * per_head; j += blockDim.x) {
        const int h = j / per_head, i = (j % per_head) * VEC;
        T *a = xr + (int64_t)h * D + i, *b = a + half_d;
        if (VEC == 8) {
            float x1[8], x2[8], o1[8], o2[8];
            load8(a, x1);
            load8(b, x2);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                o1[k] = x1[k] * cs[i + k] - x2[k] * sn[i + k];
                o2[k] = x2[k] * cs[i + k] + x1[k] * sn[i + k];
            }
            store8(a, o1);
            store8(b, o2);
        } else {
            const float x1 = to_f32(*a), x2 = to_f32(*b);
            from_f32(a, x1 * cs[i] - x2 * sn[i]);
            from_f32(b, x2 * cs[i] + x1 * sn[i]);
        }
    }
}

static rope_freqs rope_freqs_make(int D, float theta) {
    rope_freqs fr;
    memset(&fr, 0, sizeof fr);
    for (int i = 0; i < D / 2; i++) {
        float expo = (float)(2 * i) / (float)D;
        fr.inv_freq[i] = 1.0f / powf(theta, expo);
    }
    return fr;
}

template <typename T>
static void rope_launch(T *x, int B, int T_len, int H, int D, int64_t pos0, float theta, float sign) {
    if (B <= 0 || T_len <= 0 || H <= 0) return;
    if (D <= 0 || D % 2 != 0 || D / 2 > ROPE_MAX_HALF) {
        fprintf(stderr, "postnas: internal error: %s:%d: rope head dim %d (want even, <= %d)\n", __FILE__, __LINE__, D,
                2 * ROPE_MAX_HALF);
        exit(1);
    }
    const rope_freqs fr = rope_freqs_make(D, theta);
    const int half_d = D / 2;
    const bool vec = half_d % 8 == 0 && pn_aligned16(x);
    const int threads = pn_row_threads((int64_t)H * (vec ? half_d / 8 : half_d), 256);
    const unsigned rows = (unsigned)((int64_t)B * T_len);
    if (vec)
        rope_kernel<T, 8><<<rows, threads, 0, pn_stream()>>>(x, T_len, H, D, pos0, sign, fr);
    else
        rope_kernel<T, 1><<<rows, threads, 0, pn_stream()>>>(x, T_len, H, D, pos0, sign, fr);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rope_fwd(pn_bf16 *x, int B, int T, int H, int D, int64_t pos0, float theta) {
    rope_launch(as_bf(x), B, T, H, D, pos0, theta, 1.0f);
}

extern "C" void pn_cuda_rope_bwd(float *dx, int B, int T, int H, int D, int64_t pos0, float theta) {
    rope_launch(dx, B, T, H, D, pos0, theta, -1.0f);
}
