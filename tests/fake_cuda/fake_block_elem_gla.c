// fake_block_elem_gla.c — fake (CPU) twin of kernels/cuda/block_elem_gla.cu: RetNet's
// constant per-head decay written as a (N, H) tensor with the CPU block's formula
// (blocks/retnet.c), so the fake build of the retnet CUDA block links and runs.
#include "kernels/cuda/pn_cuda_block_elem_gla.h"
#include <math.h>

void pn_cuda_retnet_decay_fill(float *g, int64_t N, int H) {
    for (int64_t m = 0; m < N; m++)
        for (int h = 0; h < H; h++) g[m * H + h] = (float)log1p(-ldexp(1.0, -5 - h));
}
