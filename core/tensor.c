// tensor.c — dtype table, views and float conversions (see tensor.h).
#include "tensor.h"
#include <math.h>

static const struct {
    const char *name;
    size_t size;
} g_dtypes[PN_DTYPE_COUNT] = {
    [PN_F32] = {"F32", 4}, [PN_BF16] = {"BF16", 2}, [PN_F16] = {"F16", 2}, [PN_F64] = {"F64", 8},
    [PN_I32] = {"I32", 4}, [PN_I64] = {"I64", 8},   [PN_U16] = {"U16", 2}, [PN_U32] = {"U32", 4},
    [PN_U8] = {"U8", 1},   [PN_I8] = {"I8", 1},     [PN_BOOL] = {"BOOL", 1},
};

size_t pn_dtype_size(pn_dtype dt) {
    PN_ASSERT(dt >= 0 && dt < PN_DTYPE_COUNT);
    return g_dtypes[dt].size;
}

const char *pn_dtype_name(pn_dtype dt) {
    PN_ASSERT(dt >= 0 && dt < PN_DTYPE_COUNT);
    return g_dtypes[dt].name;
}

int pn_dtype_from_name(const char *name) {
    for (int i = 0; i < PN_DTYPE_COUNT; i++)
        if (strcmp(name, g_dtypes[i].name) == 0) return i;
    return -1;
}

pn_tensor pn_tensor_make(pn_dtype dt, int ndim, const int64_t *shape, void *data) {
    PN_ASSERT(ndim >= 0 && ndim <= PN_MAX_DIMS);
    pn_tensor t;
    memset(&t, 0, sizeof(t));
    t.dtype = dt;
    t.device = PN_CPU;
    t.ndim = ndim;
    t.data = data;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.strides[i] = stride;
        stride *= shape[i];
    }
    return t;
}

int64_t pn_tensor_numel(const pn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t pn_tensor_nbytes(const pn_tensor *t) { return (size_t)pn_tensor_numel(t) * pn_dtype_size(t->dtype); }

int pn_tensor_is_contiguous(const pn_tensor *t) {
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != stride) return 0;
        stride *= t->shape[i];
    }
    return 1;
}

pn_tensor pn_tensor_slice(const pn_tensor *t, int dim, int64_t start, int64_t len) {
    PN_ASSERT(dim >= 0 && dim < t->ndim && start >= 0 && len >= 0 && start + len <= t->shape[dim]);
    pn_tensor v = *t;
    v.shape[dim] = len;
    v.data = (char *)t->data + (size_t)(start * t->strides[dim]) * pn_dtype_size(t->dtype);
    return v;
}

pn_tensor pn_tensor_reshape(const pn_tensor *t, int ndim, const int64_t *shape) {
    PN_ASSERT(pn_tensor_is_contiguous(t));
    pn_tensor v = pn_tensor_make(t->dtype, ndim, shape, t->data);
    v.device = t->device;
    PN_ASSERT(pn_tensor_numel(&v) == pn_tensor_numel(t));
    return v;
}

const char *pn_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

float pn_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pn_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

float pn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pn_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // overflow -> inf
    if (absu < 0x38800000u) {                                     // subnormal or zero in f16
        float af;
        memcpy(&af, &absu, 4);
        float scaled = af * 16777216.0f;  // 2^24: units of the smallest f16 subnormal
        uint32_t m = (uint32_t)nearbyintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((absu >> 23) - 127 + 15);
    uint32_t mant = absu & 0x7fffffu;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

int pn_convert_to_f32(float *dst, const void *src, pn_dtype src_dt, size_t n) {
    switch (src_dt) {
    case PN_F32: memcpy(dst, src, n * 4); return 0;
    case PN_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, (const char *)src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    case PN_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const char *)src + 2 * i, 2);
            dst[i] = pn_bf16_to_f32(h);
        }
        return 0;
    case PN_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const char *)src + 2 * i, 2);
            dst[i] = pn_f16_to_f32(h);
        }
        return 0;
    default: return -1;
    }
}
