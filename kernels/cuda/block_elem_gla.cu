// block_elem_gla.cu — RetNet's constant per-head decay as a (N, H) tensor
// (pn_cuda_block_elem_gla.h). A grid-stride fill; the value is computed in double
// (log1p, exact power of two) and rounded once, the CPU block's formula.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_block_elem_gla.h"

__global__ void retnet_decay_fill_kernel(float *g, int64_t n, int H) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int h = (int)(i % H);
        g[i] = (float)log1p(-ldexp(1.0, -5 - h));
    }
}

extern "C" void pn_cuda_retnet_decay_fill(float *g, int64_t N, int H) {
    const int64_t n = N * (int64_t)H;
    if (n <= 0) return;
    retnet_decay_fill_kernel<<<pn_grid_for(n, 256), 256, 0, pn_stream()>>>(g, n, H);
    PN_CHECK_LAUNCH();
}
