// ops_rope.c — rotary position embedding, rotate-half convention (HF Llama/Qwen).
//
// Pair (x_i, x_{i+D/2}) is rotated by angle p · inv_freq_i. The angles are formed
// exactly as transformers does — inv_freq = 1 / theta^(2i/D) and p · inv_freq in
// fp32 — because HF keeps RoPE in fp32 even when the model runs in float64; at long
// positions the fp32 rounding of the angle is the dominant difference, so matching
// it (rather than using exact double angles) is what makes us agree with the
// pretrained model. cos/sin of that fp32 angle are taken in double.
// Backward is the transpose: rotation by the negative angle.
#include "kernels/ops.h"
#include "core/common.h"
#include <math.h>

static void rope_apply(float *x, int B, int T, int H, int D, int64_t pos0, float theta, float sign) {
    const int half = D / 2;
    PN_ASSERT(D % 2 == 0);
    float inv_freq[512];
    PN_ASSERT(half <= 512);
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)D;
        inv_freq[i] = 1.0f / powf(theta, expo);
    }
#pragma omp parallel for schedule(static) if ((int64_t)T * H * D > 16384)
    for (int t = 0; t < T; t++) {
        float cs[512], sn[512];
        float p = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float ang = p * inv_freq[i];
            cs[i] = (float)cos((double)ang);
            sn[i] = sign * (float)sin((double)ang);
        }
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                float *r = x + (((int64_t)b * T + t) * H + h) * D;
                for (int i = 0; i < half; i++) {
                    float x1 = r[i], x2 = r[i + half];
                    r[i] = x1 * cs[i] - x2 * sn[i];
                    r[i + half] = x2 * cs[i] + x1 * sn[i];
                }
            }
    }
}

void pn_rope_fwd(float *x, int B, int T, int H, int D, int64_t pos0, float theta) {
    rope_apply(x, B, T, H, D, pos0, theta, 1.0f);
}

void pn_rope_bwd(float *dx, int B, int T, int H, int D, int64_t pos0, float theta) {
    rope_apply(dx, B, T, H, D, pos0, theta, -1.0f);
}
