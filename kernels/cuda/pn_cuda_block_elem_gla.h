// pn_cuda_block_elem_gla.h — extern "C" entry point of the one small op the GLA-family
// CUDA blocks need beyond pn_cuda_block_elem.h (kernels/cuda/block_elem_gla.cu).
//
// RetNet's decay is a constant per head, g_h = ln(1 − 2^(−5−h)) (blocks/retnet.c); the
// recurrence reads it as a (N, H) fp32 tensor, which this op fills on the device so a
// forward needs no host round trip. The value is formed in double and rounded to float,
// as the CPU block does, so both see the same bits. Queued on the backend stream.
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// g (N, H) fp32: g[n, h] = (float)log1p(−2^(−5−h)) for every row n.
void pn_cuda_retnet_decay_fill(float *g, int64_t N, int H);

#ifdef __cplusplus
}
#endif
